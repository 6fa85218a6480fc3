/**
 * The one path every message takes, top to bottom:
 *   1. receiveMessage: a transport (mail/smtp.ts, a webhook provider served by
 *      web/routes/inbound.ts) hands over the raw bytes and their recipients;
 *      recipients are resolved to feeds (SMTP resolves each at RCPT TO with
 *      resolveRecipient, to refuse it on its own) and de-duplicated, and those whose
 *      feed refuses the sender (mail/sender-rules.ts) or is at a limit are dropped;
 *   2. the raw bytes are journaled together with an ingest job, durably: only
 *      then may the sender hear "250" / 2xx;
 *   3. later, a worker processes the message once and stores one entry per feed,
 *      idempotently (one entry per journal row and feed): ingestJournalRow, run as the
 *      `ingest` task by jobs/tasks/ingest.ts.
 */
import {
  FeedDailyLimitError, FeedFullError, isDiskFull, ReplayedDeliveryError, SenderBlockedError, StorageFullError, TemporaryFailureError, UnknownRecipientError,
} from '../errors.js';
import type { Logger } from '../log.js';
import { hashContent, type ContentHashes } from '../store/entries.js';
import type { SpaceGuard } from '../ops/storage-guard.js';
import type { Feed } from '../store/feeds.js';
import type { AppStore, QueueStore, Stores } from '../store/index.js';
import type { JournalInput, JournalRow } from '../store/journal.js';
import { recordRefusal, shownFacts } from './deliveries.js';
import { readHead, type MessageHead } from './head.js';
import { senderKey } from '../feeds/senders.js';
import { DELIVERY_MAX_ATTEMPTS, WEBSUB_DELIVER_TASK } from '../jobs/tasks/websub.js';
import { PREFETCH_IMAGES_TASK, PREFETCH_MAX_IMAGES } from '../jobs/tasks/prefetch-images.js';
import { remoteImageUrls } from '../web/presenters.js';
import type { ProcessPool } from './process-pool.js';
import { senderVerdict, type SenderAddress, type SenderVerdict } from './sender-rules.js';
import type { ProcessedForRecipients } from './process.js';

/** A feed's email address, as shown to its owner: the inverse of feedForAddress. */
export function inboxAddress(feed: Pick<Feed, 'inbox_token'>, domains: string[]): string {
  return `${feed.inbox_token}@${domains[0]}`;
}

/** Maps an address to its feed: `<inbox-token>[+anything]@<one of our domains>`, any case. */
export async function feedForAddress(app: AppStore, address: string, domains: string[]): Promise<Feed | undefined> {
  const at = address.lastIndexOf('@');
  if (at <= 0) return undefined;
  const domain = address.slice(at + 1).toLowerCase().replace(/\.$/, '');
  if (!domains.includes(domain)) return undefined;
  const local = address.slice(0, at).toLowerCase().replace(/^"|"$/g, '');
  return app.feedByInboxToken(local.split('+')[0] ?? '');
}

export interface RecipientLimits {
  mailDomains: string[];
  /** A feed holding this many bytes or more takes no new mail until it has room again. */
  feedMaxBytes: number;
  /** Messages a feed takes in a rolling 24 hours (counted per hour); 0: no limit. */
  feedMessagesPerDay: number;
}

/** What receiving needs; SmtpDeps and WebDeps both fit it as they are. */
export interface ReceiveDeps {
  config: RecipientLimits;
  stores: Pick<Stores, 'app' | 'queue'>;
  log: Logger;
  /** The data directory's free space: each message's bytes are set aside before they are written. */
  space?: SpaceGuard;
  /** Called after a message is journaled, to wake the local job runner. */
  onAccepted?: () => void;
  /** Counters of the transport, for /metrics. */
  counters?: ReceiveCounters;
}

export interface ReceiveCounters {
  /** Messages journaled (and so acknowledged). */
  accepted: number;
  /** Messages that could not be journaled: the sender was told to retry. */
  tempFailed: number;
  /** Recipients refused ("do not retry") because their feed's sender rules refuse the sender. */
  blocked: number;
  /** Recipients deferred because their feed is over its storage quota. */
  feedFull: number;
  /** Recipients deferred because their feed took FEEDMAIL_FEED_MESSAGES_PER_DAY messages in 24 hours. */
  overDailyLimit: number;
}

/**
 * What is known of a message when one of its recipients is checked: at RCPT TO the
 * envelope sender only; once the message is there, its head (From:, Subject:) and size.
 */
export interface SenderFacts {
  /** The envelope sender, '' when there is none. */
  mailFrom: string;
  head?: MessageHead;
  size?: number;
}

/** The feed an address names, or UnknownRecipientError (550 5.1.1 / 422, "do not retry"). */
async function feedOfRecipient(deps: Pick<ReceiveDeps, 'config' | 'stores'>, address: string): Promise<Feed> {
  const feed = await feedForAddress(deps.stores.app, address, deps.config.mailDomains);
  if (!feed) throw new UnknownRecipientError();
  return feed;
}

function sizeText(bytes: number): string {
  const mib = bytes / 1024 ** 2;
  return mib >= 1024 ? `${(mib / 1024).toFixed(mib % 1024 === 0 ? 0 : 1)} GB` : `${mib.toFixed(mib % 1 === 0 ? 0 : 1)} MB`;
}

/**
 * Refuses the message for this feed when the feed's sender rules refuse its sender
 * (SenderBlockedError), or when `limits` and the feed is at one of its limits
 * (FeedFullError, FeedDailyLimitError): counts the refusal and lists it in the feed's
 * recent deliveries first. `feeds`: every recipient feed known so far, whose secrets the
 * listed text must not show.
 */
async function admit(deps: Pick<ReceiveDeps, 'config' | 'stores' | 'log' | 'counters'>, feed: Feed, facts: SenderFacts, limits: boolean, feeds: Feed[]): Promise<void> {
  const shown = { sender: facts.head?.from[0] ?? facts.mailFrom, subject: facts.head?.subject ?? null, size: facts.size ?? null };
  const rules = await deps.stores.app.senderRulesOfFeed(feed.id);
  if (rules.length > 0) {
    const addresses = senderAddresses(facts.mailFrom, facts.head?.from ?? []);
    // A header too long to read to its end may hide a From: address further on (the parser
    // that makes entries stops at the same bound): a feed with rules does not take it.
    const verdict: SenderVerdict = facts.head?.cut
      ? { refused: true, reason: 'the header is too long to check the sender' }
      : senderVerdict(rules, addresses, facts.head !== undefined);
    if (verdict.refused) {
      if (deps.counters) deps.counters.blocked++;
      await recordRefusal(deps, feed, { ...shown, outcome: 'blocked', detail: verdict.reason }, feeds);
      throw new SenderBlockedError();
    }
  }
  if (!limits) return;
  const { feedMaxBytes, feedMessagesPerDay } = deps.config;
  if (await deps.stores.app.feedBytes(feed.id) >= feedMaxBytes) {
    if (deps.counters) deps.counters.feedFull++;
    await recordRefusal(deps, feed, { ...shown, outcome: 'over_limit', detail: `over the storage quota of ${sizeText(feedMaxBytes)}` }, feeds);
    throw new FeedFullError();
  }
  if (feedMessagesPerDay > 0 && (await deps.stores.queue.messagesInWindow(feed.id)).messages >= feedMessagesPerDay) {
    if (deps.counters) deps.counters.overDailyLimit++;
    await recordRefusal(deps, feed, { ...shown, outcome: 'over_limit', detail: `over the limit of ${feedMessagesPerDay} messages in 24 hours` }, feeds);
    throw new FeedDailyLimitError(feedMessagesPerDay);
  }
}

/**
 * The feed an address delivers to, checked as SMTP's RCPT TO and the webhooks need it:
 * throws UnknownRecipientError (550 5.1.1 / 422, "do not retry"), SenderBlockedError
 * (550 5.7.1 / 422, "do not retry") when a block rule matches what is known of the sender
 * yet, or FeedFullError / FeedDailyLimitError (452 4.2.2 / 507, retry later) when the
 * message must not be taken for it. The counts are read here, before the message: mail
 * that passed this check is journaled whatever arrives meanwhile, so parallel deliveries
 * can take a feed past its messages per day by as many as had passed it, and never lose
 * one that was acknowledged.
 */
export async function resolveRecipient(deps: Pick<ReceiveDeps, 'config' | 'stores' | 'log' | 'counters'>, address: string, facts: SenderFacts = { mailFrom: '' }): Promise<Feed> {
  const feed = await feedOfRecipient(deps, address);
  await admit(deps, feed, facts, true, [feed]);
  return feed;
}

/** A recipient as the transport names it. */
export interface Recipient {
  address: string;
  /**
   * The feed it resolved to, when the transport resolved it already (SMTP does, at
   * RCPT TO, so each recipient gets its own reply): its limits are not checked again,
   * only its sender rules against the message's From: header.
   */
  feedId?: number;
}

export interface InboundMessage {
  /** Which transport it came by, kept in the journal: `smtp`, `deliver` (the command), or `webhook:<provider>`. */
  source: 'smtp' | 'deliver' | `webhook:${string}`;
  /** The envelope sender, '' when the transport has none. */
  mailFrom: string;
  recipients: Recipient[];
  raw: Buffer;
  /** The SMTP session, so the log line joins the session's other lines. */
  sessionId?: string;
  /** A signed webhook delivery's replay key: remembered in the message's own journal commit. */
  replay?: JournalInput['replay'];
}

export interface ReceivedMessage {
  journalId: number;
  /** The feeds it was journaled for, each once. */
  feedIds: number[];
  /** Addresses that are no feed here (webhooks list them as `rejected`). */
  unknown: string[];
  /** Addresses whose feed refuses the sender (webhooks list them as `rejected` too). */
  blocked: string[];
  /** Addresses whose feed is at a limit (webhooks list them as `deferred`). */
  full: string[];
}

/**
 * Takes a message from any transport: resolves and de-duplicates its recipients, drops
 * those whose feed refuses the sender (its envelope sender or From: header; the refusal
 * is listed in that feed's recent deliveries, nothing is stored for it), journals it for
 * the others, wakes the runner, counts and logs it. Resolves once the message is durable,
 * so the transport may acknowledge it. Rejects, with nothing journaled, with
 * UnknownRecipientError when no recipient is a feed, SenderBlockedError when every feed
 * refuses the sender, FeedFullError when the ones left are all at a limit (whichever
 * applies first: a full feed may take the message later), StorageFullError or
 * TemporaryFailureError when the journal could not be written (the sender should retry).
 */
export async function receiveMessage(deps: ReceiveDeps, message: InboundMessage): Promise<ReceivedMessage> {
  const head = readHead(message.raw);
  const facts: SenderFacts = { mailFrom: message.mailFrom, head, size: message.raw.length };
  // Every recipient's feed first: what is listed for one feed must not show another's secrets.
  const recipients: { address: string; feed: Feed; checked: boolean }[] = [];
  const unknown: string[] = [];
  for (const recipient of message.recipients) {
    const feed = recipient.feedId !== undefined
      ? await deps.stores.app.feedById(recipient.feedId)
      : await feedForAddress(deps.stores.app, recipient.address, deps.config.mailDomains);
    // A feed deleted since RCPT TO is no feed any more.
    if (!feed) unknown.push(recipient.address);
    else if (!recipients.some((r) => r.feed.id === feed.id)) recipients.push({ address: recipient.address, feed, checked: recipient.feedId !== undefined });
  }
  const feeds = recipients.map((r) => r.feed);
  const admitted: Feed[] = [];
  const blocked: string[] = [];
  const full: string[] = [];
  let limit: FeedFullError | undefined;
  for (const { address, feed, checked } of recipients) {
    try {
      await admit(deps, feed, facts, !checked, feeds);
      admitted.push(feed);
    } catch (err) {
      if (err instanceof SenderBlockedError) blocked.push(address);
      else if (err instanceof FeedFullError) {
        full.push(address);
        limit ??= err;
      } else throw err;
    }
  }

  const { source, sessionId } = message;
  // Fixed keys, the same for every transport; no address, which would carry a feed's inbox secret.
  const logged = { source, sessionId, bytes: message.raw.length, feeds: admitted.length, unknown: unknown.length, blocked: blocked.length, full: full.length };
  if (admitted.length === 0) {
    if (limit) throw limit;
    if (blocked.length > 0) {
      deps.log.info(logged, 'mail: message refused, every recipient feed refuses its sender');
      throw new SenderBlockedError();
    }
    throw new UnknownRecipientError('No recipient is a feed here; do not retry');
  }

  const feedIds = admitted.map((f) => f.id);
  const { sender, subject } = shownFacts(feeds, { sender: head.from[0] ?? message.mailFrom, subject: head.subject, size: null });
  let journalId: number;
  try {
    journalId = await journal(deps.stores.queue, { source, mailFrom: message.mailFrom, feedIds, raw: message.raw, delivery: { sender, subject }, replay: message.replay }, deps.space);
  } catch (err) {
    if (deps.counters) deps.counters.tempFailed++;
    deps.log.error({ err, ...logged }, 'mail: unable to journal message');
    throw err;
  }
  if (deps.counters) deps.counters.accepted++;
  deps.log.info({ journalId, ...logged }, 'mail: message accepted');
  deps.onAccepted?.();
  return { journalId, feedIds, unknown, blocked, full };
}

/**
 * Makes a message durable. Resolves with the journal id once the message and
 * its job are committed; rejects with StorageFullError or TemporaryFailureError,
 * which the transports answer with 452/451 or 503 so the sender retries.
 */
async function journal(queue: QueueStore, input: JournalInput, space?: SpaceGuard): Promise<number> {
  // The bytes are set aside before writing, so messages arriving together cannot jointly
  // take the disk below the minimum that each one alone would have respected.
  const release = space ? space.reserve(input.raw.length) : () => undefined;
  if (!release) throw new StorageFullError();
  try {
    return await queue.journalMessage(input);
  } catch (err) {
    if (isDiskFull(err)) throw new StorageFullError({ cause: err });
    // The same signed webhook delivery committed first by another process: a replay (409).
    if (err instanceof ReplayedDeliveryError) throw err;
    throw new TemporaryFailureError('Temporary failure storing the message, try again later', { cause: err });
  } finally {
    release();
  }
}

export interface IngestDeps {
  app: AppStore;
  queue: QueueStore;
  processor: ProcessPool;
  log: Logger;
  /** The data directory's free space; asked again right before storing. */
  space?: SpaceGuard;
  /** Told the seconds from the message's journaling (just before its 250) to its stored entries, for /metrics. */
  observeMailToEntry?: (seconds: number) => void;
  /** Fetch a stored message's remote images into the image proxy's cache at once (jobs/tasks/prefetch-images.ts). */
  prefetchImages?: boolean;
}

/** Handler of the `ingest` job. Safe to run more than once for the same journal row. */
export async function ingestJournalRow(deps: IngestDeps, journalId: number, signal?: AbortSignal): Promise<{ stored: number }> {
  const row = await deps.queue.journalById(journalId);
  if (!row) {
    deps.log.warn({ journalId }, 'ingest: journal row is gone (retention ran before processing?)');
    return { stored: 0 };
  }
  const feedIds = JSON.parse(row.feed_ids) as number[];
  const found = await Promise.all(feedIds.map((id) => deps.app.feedById(id)));
  if (found.every((f) => f === undefined)) {
    // Every feed of it was deleted, possibly by another instance after this message passed its
    // recipient check but before the delete's journal cleanup: drop its raw mail and delivery
    // records now, as the delete would have (issue 15). Only when no feed holds those ids.
    for (const id of feedIds) {
      await deps.queue.deleteJournalOfFeed(id);
      await deps.queue.deleteDeliveriesOfFeed(id);
    }
    return { stored: 0 };
  }
  const feeds = found.filter((f): f is Feed => f !== undefined);
  if (feeds.length === 0) return { stored: 0 };
  // Parsing, sanitizing and removing every recipient's secrets all happen in a processing thread,
  // under its time bound: the main thread only stores the result.
  const secrets = feeds.map((f) => ({ inboxToken: f.inbox_token, feedToken: f.feed_token }));
  const processed = await deps.processor.process(row.raw, secrets);
  const hashes = await hashContent(row.raw, processed);
  // Shutting down, or another process took the job over: leave the storing to the next run.
  signal?.throwIfAborted();
  // The space guard at MAIL FROM ran before this message grew into an entry; ask again so
  // ingest never writes the disk past the minimum (the job waits for space, using no attempts).
  // The entry is written to the WAL and then copied into app.db by the checkpoint, so until
  // that checkpoint it takes the disk twice: reserve that, and checkpoint before letting go.
  const release = deps.space ? deps.space.reserve(2 * hashes.bytes) : () => undefined;
  if (!release) throw new StorageFullError();
  try {
    const stored = await storeForFeeds(deps, feeds, row, processed, hashes, journalId);
    if (stored > 0 && deps.prefetchImages) await enqueueImagePrefetch(deps, row, processed, journalId);
    if (hashes.bytes > LARGE_ENTRY_BYTES) await deps.app.checkpointPassive();
    // received_at was taken by the same clock as every row's time, just before the 250.
    if (stored > 0) deps.observeMailToEntry?.(Math.max(0, deps.queue.clock.now() - row.received_at) / 1000);
    return { stored };
  } finally {
    release();
  }
}

/** Entries larger than this are checkpointed into app.db before their space reservation ends. */
const LARGE_ENTRY_BYTES = 1024 * 1024;

async function storeForFeeds(deps: IngestDeps, feeds: Feed[], row: JournalRow, processed: ProcessedForRecipients, hashes: ContentHashes, journalId: number): Promise<number> {
  let stored = 0;
  // The sender's addresses, read once for every feed that has sender rules (most have none).
  let senders: SenderAddress[] | undefined;
  const sendersOf = () => (senders ??= senderAddresses(row.mail_from, [processed.fromAddress, ...readHead(row.raw).from]));
  for (const [i, feed] of feeds.entries()) {
    // SQLite calls complete synchronously, so without this the stores for all recipients
    // would run as one long turn of the event loop.
    if (i > 0) await new Promise((resolve) => setImmediate(resolve));
    if (await refusedOnProcessing(deps, feed, feeds, row, processed, sendersOf, journalId)) continue;
    const content = { ...processed, confirmUrl: processed.confirmUrls[i] ?? null };
    // Committed together with the entries of other messages stored at the same moment (one fsync for all).
    const entry = await deps.app.storeEntry({ feedId: feed.id, journalUid: row.uid, receivedAt: row.received_at, raw: row.raw, content, hashes });
    if (entry) {
      stored++;
      deps.log.info({ feedId: feed.id, entryId: entry.id, journalId, note: entry.note ?? undefined }, 'ingest: entry stored');
      await enqueueWebsubDeliveries(deps, feed, { id: entry.id, from_address: content.fromAddress });
      // Open pages of the feed hear of it (web/live.ts); the entry is stored whether or not this is.
      await deps.queue.notifyEntry({ feedId: feed.id, entryId: entry.id }).catch((err: unknown) => deps.log.warn({ err, feedId: feed.id }, 'ingest: unable to notify live pages'));
    }
  }
  return stored;
}

/**
 * One job that fetches the message's remote images into the image proxy's cache now, so
 * their first fetch tells the sender nothing about when anyone reads it. The HTML is the
 * same for every recipient feed, so one job per message. Logged, not thrown, on failure:
 * the images are then fetched when first viewed.
 */
async function enqueueImagePrefetch(deps: IngestDeps, row: JournalRow, processed: ProcessedForRecipients, journalId: number): Promise<void> {
  try {
    const urls = remoteImageUrls(processed.html).slice(0, PREFETCH_MAX_IMAGES);
    if (urls.length === 0) return;
    await deps.queue.enqueueJob({ task: PREFETCH_IMAGES_TASK, payload: { urls }, maxAttempts: 1, idempotencyKey: `images:${row.uid}` });
  } catch (err) {
    deps.log.warn({ err, journalId }, 'ingest: unable to enqueue the image prefetch');
  }
}

/**
 * One delivery job per live WebSub subscription whose topic the entry changed (the whole
 * feed, or its sender's). A failure here is logged, not thrown: the entry is stored, and
 * retrying the ingest would not store it again.
 */
async function enqueueWebsubDeliveries(deps: IngestDeps, feed: Feed, entry: { id: number; from_address: string }): Promise<void> {
  try {
    const subs = await deps.app.liveWebsubSubscriptionsOfFeed(feed.id);
    if (subs.length === 0) return;
    const key = senderKey(feed.id, entry.from_address);
    for (const sub of subs) {
      if (sub.sender_key !== null && sub.sender_key !== key) continue;
      await deps.queue.enqueueJob({
        task: WEBSUB_DELIVER_TASK, payload: { subscriptionId: sub.id, entryId: entry.id },
        maxAttempts: DELIVERY_MAX_ATTEMPTS, idempotencyKey: `websub:${sub.id}:${entry.id}`,
      });
    }
  } catch (err) {
    deps.log.warn({ err, feedId: feed.id, entryId: entry.id }, 'ingest: unable to enqueue WebSub deliveries');
  }
}

/**
 * The feed's sender rules once more, on the whole message: intake decided before its "250"
 * with its own bounded header reader (head.ts), and the parser that makes the entry reads
 * every address however the header was padded, folded or encoded. A sender the rules refuse
 * is not stored for the feed; it is listed as blocked in the feed's recent deliveries, so
 * nothing accepted disappears unseen.
 */
async function refusedOnProcessing(
  deps: IngestDeps, feed: Feed, feeds: Feed[], row: JournalRow, processed: ProcessedForRecipients, sendersOf: () => SenderAddress[], journalId: number,
): Promise<boolean> {
  const rules = await deps.app.senderRulesOfFeed(feed.id);
  if (rules.length === 0) return false;
  const verdict = senderVerdict(rules, sendersOf(), true);
  if (!verdict.refused) return false;
  await recordRefusal({ stores: { queue: deps.queue }, log: deps.log }, feed, {
    sender: processed.fromAddress || row.mail_from, subject: processed.subject, size: row.raw.length,
    outcome: 'blocked', detail: `${verdict.reason}, found when the message was processed`,
  }, feeds);
  deps.log.info({ feedId: feed.id, journalId }, 'ingest: not stored, the feed refuses the sender');
  return true;
}

/** A sender's addresses as the sender rules match them: the envelope sender and the From: addresses. */
function senderAddresses(mailFrom: string, from: string[]): SenderAddress[] {
  return [
    { address: mailFrom.trim().toLowerCase(), where: 'envelope sender' },
    ...from.map((address) => ({ address: address.trim().toLowerCase(), where: 'From: header' as const })),
  ];
}
