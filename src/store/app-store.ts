/** app.db behind one object: feeds, entries, their bodies and parts. Methods read like questions and verbs; the SQL is in the modules they bind. */
import path from 'node:path';
import { FeedmailError, StoreError } from '../errors.js';
import * as copy from './copy.js';
import * as entries from './entries.js';
import * as feeds from './feeds.js';
import { groupCommit } from './group-commit.js';
import * as icons from './icons.js';
import * as parts from './parts.js';
import type { AppSchema } from './schema.js';
import * as search from './search.js';
import * as senderRules from './sender-rules.js';
import * as serverKeys from './server-keys.js';
import { Store } from './store.js';
import * as websub from './websub.js';

export class AppStore extends Store<AppSchema> {
  // Feeds
  readonly createFeed = this.timed('create a feed', feeds.createFeed);
  readonly feedByInboxToken = this.op('find a feed by its inbox address', feeds.feedByInboxToken);
  readonly feedByFeedToken = this.op('find a feed by its feed URL', feeds.feedByFeedToken);
  readonly feedByManageToken = this.op('find a feed by its manage link', feeds.feedByManageToken);
  readonly feedById = this.op('find a feed by id', feeds.feedById);
  readonly feedsWithRawMessage = this.op('find the feeds that received a message', feeds.feedsWithRawMessage);
  readonly feedsIdleFor = this.timed('list idle feeds', feeds.feedsIdleFor);
  readonly renameFeed = this.timed('rename a feed', feeds.renameFeed);
  readonly markFetched = this.timed('record a feed fetch', feeds.markFetched);
  /** Deletes a feed from app.db only; Stores.removeFeed removes it everywhere. */
  readonly deleteFeed = this.op('delete a feed', feeds.deleteFeed);
  readonly deleteFeedCreationsOlderThan = this.timed('delete old feed creations', feeds.deleteFeedCreationsOlderThan);
  readonly rotateInboxToken = this.op('rotate a feed\'s inbox address', feeds.rotateInboxToken);
  readonly rotateFeedToken = this.timed('rotate a feed\'s URL', feeds.rotateFeedToken);
  readonly setEntryLimits = this.timed('set a feed\'s entry limits', feeds.setEntryLimits);
  readonly setFeedIcon = this.timed('set a feed\'s icon', icons.setFeedIcon);
  readonly deleteFeedIcon = this.timed('remove a feed\'s icon', icons.deleteFeedIcon);
  readonly feedIcon = this.op('read a feed\'s icon', icons.feedIcon);
  readonly feedIconTag = this.op('find a feed\'s icon', icons.feedIconTag);

  // Sender rules (store/sender-rules.ts)
  readonly addSenderRule = this.timed('add a sender rule', senderRules.addSenderRule);
  readonly senderRulesOfFeed = this.op('list a feed\'s sender rules', senderRules.senderRulesOfFeed);
  readonly removeSenderRule = this.op('remove a sender rule', senderRules.removeSenderRule);

  // Entries
  readonly insertEntry = this.timed('store an entry', entries.insertEntry);
  readonly insertEntries = this.timed('store entries', entries.insertEntries);
  readonly importEntries = this.timed('import entries', entries.importEntries);
  /**
   * As insertEntry, committed in one transaction with the other entries stored at the same
   * moment (store/group-commit.ts): ingest stores many messages a second with one fsync per group.
   */
  readonly storeEntry = groupCommit(async (items: entries.NewEntry[]) => (await this.insertEntries(items))
    .map((o) => ('error' in o && !(o.error instanceof FeedmailError) ? { error: new StoreError('store an entry', path.basename(this.file), o.error) } : o)));
  readonly replaceEntryContent = this.timed('replace an entry\'s content', entries.replaceEntryContent);
  readonly entriesOfFeed = this.op('list a feed\'s entries', entries.entriesOfFeed);
  readonly entrySummariesOfFeed = this.op('list a feed\'s entry summaries', entries.entrySummariesOfFeed);
  readonly entrySummaryOfFeed = this.op('find a feed\'s entry', entries.entrySummaryOfFeed);
  readonly documentEntriesOfFeed = this.op('read a feed\'s entries for its document', entries.documentEntriesOfFeed);
  readonly entryByShareToken = this.op('find an entry by its share link', entries.entryByShareToken);
  readonly countEntries = this.op('count a feed\'s entries', entries.countEntries);
  readonly countAllEntries = this.op('count all entries', entries.countAllEntries);
  readonly entriesAfter = this.op('page through entries', entries.entriesAfter);
  readonly feedBytes = this.op('measure a feed', entries.feedBytes);
  readonly entriesOfJournalUids = this.op('find a feed\'s entries by message', entries.entriesOfJournalUids);
  readonly trimFeeds = this.timed('trim feeds', entries.trimFeeds);
  readonly trimFeed = this.timed('trim a feed', entries.trimFeed);
  /** Deletes an entry from app.db only; Stores.removeEntry also forgets its raw mail. */
  readonly deleteEntry = this.timed('delete an entry', entries.deleteEntry);
  readonly sendersOfFeed = this.op('list a feed\'s senders', entries.sendersOfFeed);
  readonly senderAddressesOfFeed = this.op('list a feed\'s sender addresses', entries.senderAddressesOfFeed);
  readonly documentEntriesOfSender = this.op('read a sender\'s entries for its document', entries.documentEntriesOfSender);

  // Search (the index follows entries by itself: see the migration "full-text search")
  readonly searchEntries = this.op('search a feed', search.searchEntries);
  readonly checkSearchIndex = this.op('check the search index', search.checkSearchIndex);
  readonly rebuildSearchIndex = this.op('rebuild the search index', search.rebuildSearchIndex);
  readonly searchIndexBytes = this.op('measure the search index', search.searchIndexBytes);

  // Parts and blobs
  readonly partsOfEntry = this.op('list an entry\'s parts', parts.partsOfEntry);
  readonly partsOfEntries = this.op('list entries\' parts', parts.partsOfEntries);
  readonly partOfEntry = this.op('find an entry\'s part', parts.partOfEntry);
  readonly blobByHash = this.op('read a blob', parts.blobByHash);
  readonly deleteOrphanBlobs = this.op('delete unused blobs', parts.deleteOrphanBlobs);

  // WebSub subscriptions (store/websub.ts)
  readonly countWebsubSubscriptions = this.timed('count a feed\'s WebSub subscriptions', websub.countWebsubSubscriptions);
  readonly websubSubscriptionExists = this.timed('find a WebSub subscription', websub.websubSubscriptionExists);
  readonly upsertWebsubSubscription = this.timed('store a WebSub subscription', websub.upsertWebsubSubscription);
  readonly deleteWebsubSubscription = this.timed('delete a WebSub subscription', websub.deleteWebsubSubscription);
  readonly deleteWebsubSubscriptionById = this.timed('delete a WebSub subscription', websub.deleteWebsubSubscriptionById);
  readonly liveWebsubSubscriptionsOfFeed = this.timed('list a feed\'s WebSub subscriptions', websub.liveWebsubSubscriptionsOfFeed);
  readonly hasLiveWebsubSubscriptions = this.timed('find a feed\'s WebSub subscriptions', websub.hasLiveWebsubSubscriptions);
  readonly websubSubscriptionById = this.timed('read a WebSub subscription', websub.websubSubscriptionById);
  readonly websubSubscriptionsOfFeed = this.timed('list a feed\'s WebSub subscriptions', websub.websubSubscriptionsOfFeed);
  readonly deleteExpiredWebsubSubscriptions = this.timed('delete expired WebSub subscriptions', websub.deleteExpiredWebsubSubscriptions);

  /** A key feedmail keeps for itself (store/server-keys.ts). */
  readonly serverKey = this.timed('read a server key', serverKeys.serverKey);

  /** How many feeds, entries, bodies and blobs app.db holds (for operators, benchmarks and tests). */
  readonly rowCounts = this.op('count rows', entries.rowCounts);

  /** What `feedmail copy-db` copies out of this database (store/copy.ts). */
  override readonly copyTables = copy.APP_COPY_TABLES;
}
