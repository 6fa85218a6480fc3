/**
 * What /readyz answers: whether this process can do its job now. Not ready when
 * the databases cannot be written, the disk is below its free-space minimum (new
 * mail is deferred), or the oldest due job has waited too long (the runners are
 * stuck or too few).
 */
import { messageWithCauses } from '../errors.js';
import type { Stores } from '../store/index.js';
import type { DiskSpace } from './storage-guard.js';

/** A due job that has waited longer than this means mail is no longer turning into entries. */
export const MAX_QUEUE_LAG_MS = 10 * 60_000;

export interface Readiness {
  ok: boolean;
  /** One line per check, for the person reading the answer. */
  checks: Record<string, string>;
}

export async function readiness(stores: Stores, disk: DiskSpace, minFreeBytes: number): Promise<Readiness> {
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
  const q = await stores.queue.queueStats();
  checks.queue = `${q.ready} ready, ${q.claimed} running, ${q.failed} failed, oldest waiting ${Math.round(q.oldestReadyAgeMs / 1000)} s`;
  if (q.oldestReadyAgeMs > MAX_QUEUE_LAG_MS) ok = false;
  return { ok, checks };
}
