/**
 * What /readyz answers: whether this process can do its job now. Not ready when
 * the databases cannot be written, the disk is below its free-space minimum (new
 * mail is deferred), or the oldest due job has waited too long (the runners are
 * stuck or too few). With scheduled backups configured (issue 13), also when the last
 * successful backup is older than twice the schedule.
 */
import { messageWithCauses } from '../errors.js';
import { BACKUP_TASK } from '../jobs/tasks/backup.js';
import type { Stores } from '../store/index.js';
import type { DiskSpace } from './storage-guard.js';

/** A due job that has waited longer than this means mail is no longer turning into entries. */
export const MAX_QUEUE_LAG_MS = 10 * 60_000;

export interface Readiness {
  ok: boolean;
  /** One line per check, for the person reading the answer. */
  checks: Record<string, string>;
}

/**
 * Scheduled backups, when configured: their period, and when this process started. Before
 * the first successful backup, the age counts from the first scheduled backup slot that
 * queue.db remembers (any process's, kept 7 days), so a reload or a restart does not reset
 * the alarm; from this process's start only when no slot was scheduled yet.
 */
export interface BackupSchedule {
  everyMs: number;
  since: number;
}

export async function readiness(stores: Stores, disk: DiskSpace, minFreeBytes: number, backups?: BackupSchedule): Promise<Readiness> {
  const checks: Record<string, string> = {};
  let ok = true;
  try {
    await stores.app.checkWritable();
    await stores.queue.checkWritable();
    checks.databases = 'writable';
  } catch (err) {
    ok = false;
    checks.databases = `not writable: ${messageWithCauses(err)}`;
  }
  const free = disk.freeBytes();
  checks.disk = Number.isFinite(free) ? `${free} bytes free` : 'unknown';
  if (!disk.hasSpace()) {
    ok = false;
    checks.disk += ` (below the ${minFreeBytes}-byte minimum: new mail is deferred)`;
  }
  try {
    const q = await stores.queue.queueStats();
    checks.queue = `${q.ready} ready, ${q.claimed} running, ${q.failed} failed, oldest waiting ${Math.round(q.oldestReadyAgeMs / 1000)} s`;
    if (q.oldestReadyAgeMs > MAX_QUEUE_LAG_MS) ok = false;
  } catch (err) {
    // The database unreachable (PostgreSQL down): not ready, said in the answer rather than a 500.
    return { ok: false, checks: { ...checks, queue: `unknown: ${messageWithCauses(err)}` } };
  }
  if (backups) {
    const now = stores.queue.clock.now();
    let last: Awaited<ReturnType<typeof stores.queue.lastBackup>>;
    let firstSlot: number | undefined;
    try {
      last = await stores.queue.lastBackup();
      firstSlot = last ? undefined : await stores.queue.firstRecurringRun(BACKUP_TASK);
    } catch (err) {
      return { ok: false, checks: { ...checks, backup: `unknown: ${messageWithCauses(err)}` } };
    }
    const age = now - (last?.finishedAt ?? firstSlot ?? backups.since);
    checks.backup = last
      ? `last ${last.snapshot}, ${Math.round(age / 1000)} s ago`
      : `none yet (backups are configured; ${firstSlot !== undefined ? 'the first scheduled backup was due' : 'this process started'} ${Math.round(age / 1000)} s ago)`;
    if (age > 2 * backups.everyMs) {
      ok = false;
      checks.backup += ` (older than twice FEEDMAIL_BACKUP_EVERY: backups are failing; see "feedmail jobs list")`;
    }
  }
  return { ok, checks };
}
