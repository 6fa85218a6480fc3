/** queue.db behind one object: the inbound journal, recent deliveries, the job queue, recurring slots and webhook replays. */
import * as backups from './backup.js';
import * as deliveries from './deliveries.js';
import { groupCommit } from './group-commit.js';
import * as jobs from './jobs.js';
import * as journal from './journal.js';
import * as notifications from './notifications.js';
import type { QueueSchema } from './schema.js';
import { SqliteStore } from './sqlite-store.js';
import * as replays from './webhook-replays.js';

export class QueueStore extends SqliteStore<QueueSchema> {
  // Journal
  readonly journalMessage = this.timed('journal a message', journal.journalMessage);
  readonly journalById = this.op('read a journaled message', journal.journalById);
  readonly journalAfter = this.op('page through the journal', journal.journalAfter);
  readonly deleteJournalOlderThan = this.timed('delete old journal rows', journal.deleteJournalOlderThan);
  readonly deleteJournalOfFeed = this.op('delete a feed\'s journal rows', journal.deleteJournalOfFeed);
  readonly deleteJournalOfEntry = this.op('delete a deleted entry\'s journal row', journal.deleteJournalOfEntry);
  readonly failedIngestsOfFeed = this.op('list a feed\'s failed messages', journal.failedIngestsOfFeed);

  // Recent deliveries and messages per day (store/deliveries.ts)
  readonly recordRefusal = this.timed('record a refused delivery', deliveries.recordRefusal);
  readonly deliveriesOfFeed = this.op('list a feed\'s recent deliveries', deliveries.deliveriesOfFeed);
  readonly messagesInWindow = this.timed('count a feed\'s messages of the last 24 hours', deliveries.messagesInWindow);
  readonly deleteDeliveriesOfFeed = this.op('delete a feed\'s deliveries', deliveries.deleteDeliveriesOfFeed);
  readonly pruneIntakeRecords = this.timed('delete old deliveries and counts', deliveries.pruneIntakeRecords);

  // Jobs
  readonly enqueueJob = this.timed('enqueue a job', jobs.enqueueJob);
  readonly claimJobs = this.timed('claim jobs', jobs.claimJobs);
  readonly renewLeases = this.timed('renew leases', jobs.renewLeases);
  readonly finishJob = this.op('finish a job', jobs.finishJob);
  readonly retryJobAfter = this.timed('schedule a job\'s retry', jobs.retryJobAfter);
  readonly retryJobWithoutCharge = this.timed('schedule a job\'s retry', jobs.retryJobWithoutCharge);
  readonly failJobForGood = this.timed('fail a job', jobs.failJobForGood);
  readonly failJobAfterCrashes = this.timed('fail a job', jobs.failJobAfterCrashes);
  readonly releaseLeases = this.timed('release leases', jobs.releaseLeases);
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
  readonly recordNotification = this.timed('record an entry notification', notifications.recordNotification);
  readonly recordNotifications = this.timed('record entry notifications', notifications.recordNotifications);
  /** As recordNotification, committed together with the notifications recorded at the same moment (store/group-commit.ts). */
  readonly notifyEntry = groupCommit((items: { feedId: number; entryId: number }[]) => this.recordNotifications(items));
  readonly lastNotificationId = this.op('read the newest notification id', notifications.lastNotificationId);
  readonly notificationsAfter = this.op('read new notifications', notifications.notificationsAfter);
  readonly notificationsOfFeedAfter = this.op('read a feed\'s missed notifications', notifications.notificationsOfFeedAfter);
  readonly notificationsOfFeedSince = this.op('read a feed\'s recent notifications', notifications.notificationsOfFeedSince);
  readonly deleteNotificationsOlderThan = this.timed('delete old notifications', notifications.deleteNotificationsOlderThan);

  // Backups (issue 13, ops/backup.ts)
  readonly recordBackup = this.timed('record a backup', backups.recordBackup);
  readonly lastBackup = this.op('read the last backup', backups.lastBackup);
}
