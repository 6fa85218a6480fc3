/**
 * Deletes the rows that are only kept for a while: raw mail past the journal retention
 * (FEEDMAIL_JOURNAL_RETENTION_DAYS, never a row an ingest job still needs), the slots of
 * recurring tasks, the records of feed creations that the per-client limit counts, feeds'
 * recent deliveries after DELIVERIES_KEPT_MS and the hourly message counts the
 * messages-per-day window no longer reads, WebSub subscriptions whose lease ran out, and the
 * live pages' entry notifications after a day.
 */
import type { TaskDefinition } from '../task.js';
import { DAY, HOUR, type TaskDeps } from './deps.js';

/**
 * The task's name before it said all it does. A job queued under it before an upgrade
 * must still run: a job no runner claims would wait forever and keep /readyz failing.
 */
export const PRUNE_OLD_ROWS_FORMER_NAME = 'drop-old-journal';

/**
 * A slot row only has to outlive its task's period (a day at most) for the (task, run_at)
 * key to keep a second process from running the slot again; a week is a wide margin.
 */
const RECURRING_SLOTS_KEPT_MS = 7 * DAY;
/** The creation limit counts the last hour (store/feeds.ts:createFeed); older rows are never counted again. */
const FEED_CREATIONS_KEPT_MS = 2 * HOUR;
/**
 * A feed's recent deliveries are its newest 100 (each write trims); this also forgets those
 * of a quiet feed after a while, and any row a delivery racing its feed's deletion left.
 */
export const DELIVERIES_KEPT_MS = 90 * DAY;

/** Live pages that reconnect are sent what they missed from these rows (web/live.ts); a day is plenty. */
export const NOTIFICATIONS_KEPT_MS = DAY;

export function pruneOldRowsTask({ stores, config, log }: TaskDeps): TaskDefinition {
  return {
    name: 'prune-old-rows',
    everyMs: HOUR,
    handler: async () => {
      const n = await stores.queue.deleteJournalOlderThan(config.journalRetentionDays * DAY);
      await stores.queue.deleteRecurringRunsOlderThan(RECURRING_SLOTS_KEPT_MS);
      await stores.app.deleteFeedCreationsOlderThan(FEED_CREATIONS_KEPT_MS);
      await stores.queue.pruneIntakeRecords(DELIVERIES_KEPT_MS);
      await stores.app.deleteExpiredWebsubSubscriptions();
      await stores.queue.deleteNotificationsOlderThan(NOTIFICATIONS_KEPT_MS);
      if (n) log.info({ deleted: n }, 'maintenance: dropped old journal rows');
    },
  };
}
