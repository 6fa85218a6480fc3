/** queue.db behind one object: the inbound journal, recent deliveries, the job queue, recurring slots and webhook replays. */
import * as copy from './copy.js';
import * as backups from './backup.js';
import * as deliveries from './deliveries.js';
import { GroupCommit, groupCommit } from './group-commit.js';
import * as jobs from './jobs.js';
import * as journal from './journal.js';
import type { JournalInput } from './journal.js';
import * as notifications from './notifications.js';
import type { QueueSchema } from './schema.js';
import { Store } from './store.js';
import * as replays from './webhook-replays.js';

export class QueueStore extends Store<QueueSchema> {
  // Journal
  readonly #journalOne = this.timed('journal a message', journal.journalMessage);
  readonly #journalGroup = new GroupCommit<JournalInput, number>({
    commitMany: this.timed('journal messages', journal.journalMessages),
    commitOne: this.#journalOne,
    maxItems: 64,
    maxSize: 8 * 1024 * 1024,
    sizeOf: (input) => input.raw.length,
  });

  /**
   * Journals a message durably (see journal.journalMessage) and resolves with its id once
   * committed. Messages arriving together share one commit (store/group-commit.ts); a large
   * one is written on its own, in pieces.
   */
  journalMessage(input: JournalInput): Promise<number> {
    if (input.raw.length > journal.LARGEST_GROUPED_BYTES) {
      return this.#journalOne(input).then((id) => {
        this.#journalGroup.stats.commits++;
        this.#journalGroup.stats.items++;
        return id;
      });
    }
    // Received now, not when its group is committed.
    return this.#journalGroup.submit({ ...input, receivedAt: input.receivedAt ?? this.clock.now() });
  }

  readonly journalById = this.op('read a journaled message', journal.journalById);
  readonly journalAfter = this.op('page through the journal', journal.journalAfter);
  readonly deleteJournalOlderThan = this.timed('delete old journal rows', journal.deleteJournalOlderThan);
  readonly deleteJournalOfFeed = this.op('delete a feed\'s journal rows', journal.deleteJournalOfFeed);
  readonly deleteJournalOfEntry = this.op('delete a deleted entry\'s journal row', journal.deleteJournalOfEntry);
  readonly failedIngestsOfFeed = this.op('list a feed\'s failed messages', journal.failedIngestsOfFeed);

  /** Journal commits by this process so far, and the messages they held (more messages than commits: grouped). */
  journalCommitStats(): { commits: number; messages: number } {
    return { commits: this.#journalGroup.stats.commits, messages: this.#journalGroup.stats.items };
  }

  // Recent deliveries and messages per day (store/deliveries.ts)
  readonly recordRefusal = this.timed('record a refused delivery', deliveries.recordRefusal);
  readonly deliveriesOfFeed = this.op('list a feed\'s recent deliveries', deliveries.deliveriesOfFeed);
  readonly messagesInWindow = this.timed('count a feed\'s messages of the last 24 hours', deliveries.messagesInWindow);
  readonly deleteDeliveriesOfFeed = this.op('delete a feed\'s deliveries', deliveries.deleteDeliveriesOfFeed);
  readonly pruneIntakeRecords = this.timed('delete old deliveries and counts', deliveries.pruneIntakeRecords);

  // Jobs. Claims, leases and finishes commit without an fsync of their own (relaxed): one
  // lost in a power cut only runs an idempotent job again. A job is finished only after what
  // it stored was committed durably (app.db is synchronous=FULL), so no stored entry can be
  // lost while its job is gone.
  readonly enqueueJob = this.timed('enqueue a job', jobs.enqueueJob);
  readonly claimJobs = this.relaxedTimed('claim jobs', jobs.claimJobs);
  readonly renewLeases = this.relaxedTimed('renew leases', jobs.renewLeases);
  readonly finishJob = this.relaxed('finish a job', jobs.finishJob);
  readonly retryJobAfter = this.timed('schedule a job\'s retry', jobs.retryJobAfter);
  readonly retryJobWithoutCharge = this.timed('schedule a job\'s retry', jobs.retryJobWithoutCharge);
  readonly failJobForGood = this.timed('fail a job', jobs.failJobForGood);
  readonly failJobAfterCrashes = this.timed('fail a job', jobs.failJobAfterCrashes);
  readonly releaseLeases = this.relaxedTimed('release leases', jobs.releaseLeases);
  readonly jobsInState = this.op('list jobs', jobs.jobsInState);
  readonly jobById = this.op('read a job', jobs.jobById);
  readonly retryFailedJobs = this.timed('retry failed jobs', jobs.retryFailedJobs);
  readonly discardFailedJobs = this.op('discard failed jobs', jobs.discardFailedJobs);
  readonly queueStats = this.timed('count jobs', jobs.queueStats);
  readonly claimRecurringSlot = this.timed('claim a recurring slot', jobs.claimRecurringSlot);
  readonly firstRecurringRun = this.op('read the first recurring slot', jobs.firstRecurringRun);
  readonly deleteRecurringRunsOlderThan = this.timed('delete old recurring slots', jobs.deleteRecurringRunsOlderThan);

  // Webhook replays
  readonly deliveryAccepted = this.timed('look up a webhook delivery', replays.deliveryAccepted);
  readonly recordDelivery = this.timed('record a webhook delivery', replays.recordDelivery);

  // Entry notifications for live pages (issue 11, web/live.ts)
  readonly recordNotification = this.relaxedTimed('record an entry notification', notifications.recordNotification);
  readonly recordNotifications = this.relaxedTimed('record entry notifications', notifications.recordNotifications);
  /** As recordNotification, committed together with the notifications recorded at the same moment (store/group-commit.ts). */
  readonly notifyEntry = groupCommit((items: { feedId: number; entryId: number }[]) => this.recordNotifications(items));
  readonly lastNotificationId = this.op('read the newest notification id', notifications.lastNotificationId);
  readonly notificationsAfter = this.op('read new notifications', notifications.notificationsAfter);
  readonly notificationsOfFeedAfter = this.op('read a feed\'s missed notifications', notifications.notificationsOfFeedAfter);
  readonly notificationsOfFeedSince = this.op('read a feed\'s recent notifications', notifications.notificationsOfFeedSince);
  readonly deleteNotificationsOlderThan = this.timed('delete old notifications', notifications.deleteNotificationsOlderThan);
  /** Calls `onNew` when any instance records a notification (PostgreSQL's LISTEN/NOTIFY); on SQLite never: poll. Resolves to the stop function. */
  onNotifications(onNew: () => void): Promise<() => Promise<void>> {
    return this.listen(notifications.NOTIFICATION_CHANNEL, onNew);
  }

  // Backups (issue 13, ops/backup.ts)
  readonly recordBackup = this.timed('record a backup', backups.recordBackup);
  readonly lastBackup = this.op('read the last backup', backups.lastBackup);

  /** What `feedmail copy-db` copies out of this database (store/copy.ts). */
  override readonly copyTables = copy.QUEUE_COPY_TABLES;
}
