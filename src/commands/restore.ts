/** `feedmail restore`: put a verified snapshot back into the data directory (issue 13; ops/backup.ts). */
import type { Config } from '../config.js';
import type { Logger } from '../log.js';
import { BACKED_UP, restoreSnapshot, RestoreRefusedError, snapshotTime } from '../ops/backup.js';
import { POSTGRES_BACKUP_TEXT, printVerification, storageProblem, takeOption, targetOf, UsageError } from './backup.js';
import { createProgress, followSteps } from './progress.js';

export const RESTORE_HELP = `Usage: feedmail restore --from <dir | s3://bucket/prefix> [--at <time>] [--only app.db|queue.db] [settings]

Restores the newest complete snapshot taken at or before --at (default: the newest) into
the data directory (FEEDMAIL_DATA_DIR / --data-dir):

  1. refuses while a feedmail server or worker uses the data directory (they hold the
     lock file feedmail.lock in it; stop them first), and keeps them from starting meanwhile;
  2. downloads the snapshot into temporary files in the data directory and verifies it:
     checksums, integrity_check, row counts (as "feedmail backup verify");
  3. only then moves the current files (with their -wal and -shm files, and cache.db,
     which is rebuilt) into <data>/pre-restore-<time>/ and the restored ones into place;
  4. prints what it did. Delete the pre-restore directory once the server runs well.

  --from   Where the snapshots are (default: FEEDMAIL_BACKUP_TO)
  --at     A time such as 2026-11-27T01:30:00Z, or a snapshot name from "feedmail backup list"
  --only   Restore only this database. With --only app.db, a queue.db that survived stays,
           and "feedmail replay --since <snapshot time>" then brings back the mail received
           after the snapshot.

The FEEDMAIL_S3_* settings give the endpoint, region, path style and credentials for s3://.
`;

/** A time given on the command line: ISO 8601 (with a zone, or UTC) or a snapshot name. */
export function parseTime(raw: string, option: string): number {
  const asSnapshot = snapshotTime(raw);
  if (asSnapshot !== undefined) return asSnapshot;
  // A date and time without a zone is UTC (Date.parse would read it as local time).
  const iso = /T[\d:.]+$/.test(raw) ? `${raw}Z` : raw;
  const t = Date.parse(iso);
  if (Number.isNaN(t)) throw new UsageError(`${option} must be a time such as 2026-11-27T01:30:00Z or a snapshot name, not "${raw}"`);
  return t;
}

export async function runRestore(config: Config, log: Logger, argv: string[]): Promise<number> {
  if (config.databaseUrl) {
    process.stdout.write(POSTGRES_BACKUP_TEXT);
    return 1;
  }
  const args = [...argv];
  const fromArg = takeOption(args, '--from');
  const atRaw = takeOption(args, '--at');
  const only = takeOption(args, '--only');
  if (args.length > 0) throw new UsageError(`unknown option "${args[0]}"; see "feedmail restore --help"`);

  if (only !== undefined && !BACKED_UP.some((b) => b.name === only)) throw new UsageError(`--only takes ${BACKED_UP.map((b) => b.name).join(' or ')}`);
  const at = atRaw === undefined ? undefined : parseTime(atRaw, '--at');
  const target = targetOf(config, fromArg, '--from');
  const progress = createProgress({ unit: 'bytes' });
  try {
    const r = await restoreSnapshot(config.dataDir, target, { at, only: only ? [only] : undefined, onProgress: followSteps(progress) });
    progress.stop();
    process.stdout.write(`Verified snapshot ${r.snapshot} from ${target.description}:\n`);
    printVerification(r.verification);
    if (r.setAside.length > 0) process.stdout.write(`Moved the previous files aside to ${r.asideDir}: ${r.setAside.join(', ')}\n`);
    else process.stdout.write(`The data directory held no databases to set aside.\n`);
    process.stdout.write(`Restored ${[...r.restored].sort().join(' and ')} into ${config.dataDir}.\n`);
    if (only === 'app.db') process.stdout.write(`Run "feedmail replay --since ${r.snapshot}" to bring back mail received after the snapshot.\n`);
    process.stdout.write('Start feedmail again; delete the pre-restore directory once it runs well.\n');
    log.info({ snapshot: r.snapshot, restored: r.restored, asideDir: r.setAside.length > 0 ? r.asideDir : undefined }, 'restore: done');
    return 0;
  } catch (err) {
    progress.stop();
    if (err instanceof RestoreRefusedError) {
      process.stderr.write(`feedmail: restore refused: ${err.message}\n`);
      return 1;
    }
    const problem = storageProblem(err);
    if (!problem) throw err;
    process.stderr.write(`feedmail: restore failed, nothing was changed: ${problem}\n`);
    return 1;
  }
}
