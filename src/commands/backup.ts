/** `feedmail backup`: take, list and verify snapshots (issue 13; the work is in ops/backup.ts). */
import { backupTarget, type Config } from '../config.js';
import type { Logger } from '../log.js';
import { openTarget } from '../ops/backup-target.js';
import { existingDataProblem } from '../ops/data-dir.js';
import { DiskSpace } from '../ops/storage-guard.js';
import { BackupSpaceError, DamagedSnapshotError, listSnapshots, readManifest, snapshotTime, takeSnapshot, verifySnapshot, type Verification } from '../ops/backup.js';
import { openStores } from '../store/index.js';
import { sizeText } from '../web/routes/manage-common.js';
import { createProgress, followSteps } from './progress.js';

export const BACKUP_HELP = `Usage: feedmail backup [--to <dir | s3://bucket/prefix>] [settings]
       feedmail backup list [--to <dir | s3://bucket/prefix>] [settings]
       feedmail backup verify [<snapshot>] [--to <dir | s3://bucket/prefix>] [settings]

  (no action)  Take a snapshot of app.db and queue.db now. Safe while the server runs and
               mail arrives: each database is copied with SQLite's online backup API, checked
               with integrity_check, compressed (gzip) and stored as <UTC time>/ with a
               manifest.json written last (sizes, SHA-256s, row counts, versions).
               cache.db is not backed up: it only holds rendered feeds.
  list         Show the complete snapshots, oldest first
  verify       Download a snapshot (the newest when none is named), check every file's
               checksums, decompress it, run integrity_check and compare the row counts
               with the manifest; exits 1 and names the file when anything differs

  --to         Where snapshots are kept (default: FEEDMAIL_BACKUP_TO). For s3:// the
               FEEDMAIL_S3_* settings give the endpoint, region, path style and credentials.

Progress goes to stderr (a bar on a terminal, log lines otherwise); results to stdout.
Uses the data directory from FEEDMAIL_DATA_DIR / --data-dir.

Scheduled backups: set FEEDMAIL_BACKUP_TO on the server (see FEEDMAIL_BACKUP_EVERY,
FEEDMAIL_BACKUP_KEEP_HOURLY and FEEDMAIL_BACKUP_KEEP_DAILY in "feedmail --help").
`;

export class UsageError extends Error {}

/** Takes `--name value` or `--name=value` out of `args`. */
export function takeOption(args: string[], name: string): string | undefined {
  const i = args.findIndex((a) => a === name || a.startsWith(`${name}=`));
  if (i < 0) return undefined;
  const arg = args[i]!;
  if (arg.includes('=')) {
    args.splice(i, 1);
    return arg.slice(name.length + 1);
  }
  const value = args[i + 1];
  if (value === undefined || value.startsWith('--')) throw new UsageError(`${name} needs a value`);
  args.splice(i, 2);
  return value;
}

/** The target named by `option` (checked by FEEDMAIL_BACKUP_TO's own rule), else FEEDMAIL_BACKUP_TO. */
export function targetOf(config: Config, given: string | undefined, option: string) {
  const where = given === undefined ? config.backupTo : checkedTarget(given, option);
  if (!where) throw new UsageError(`say where the snapshots are: ${option} <dir | s3://bucket/prefix>, or set FEEDMAIL_BACKUP_TO`);
  return openTarget(where, config);
}

/** A --to / --from value under the same rule as FEEDMAIL_BACKUP_TO. */
export function checkedTarget(given: string, option: string): string {
  try {
    return backupTarget(given);
  } catch (err) {
    throw new UsageError(`${option} ${(err as Error).message}`);
  }
}

export function printVerification(v: Verification, out: NodeJS.WritableStream = process.stdout): void {
  for (const c of v.checked) out.write(`  ${c.name}: ok (${sizeText(c.size)}, ${c.rows} rows, integrity_check ok, checksums match)\n`);
  for (const p of v.problems) out.write(`  PROBLEM ${p}\n`);
}

/**
 * A storage failure said in one line instead of a stack: what an S3 store answered (the
 * SDK's errors carry a name, a message and the HTTP status), or an endpoint that cannot be
 * reached. Undefined for anything else.
 */
export function storageProblem(err: unknown): string | undefined {
  if (err instanceof BackupSpaceError) return err.message;
  const e = err as { name?: string; message?: string; code?: string; $metadata?: { httpStatusCode?: number } } | undefined;
  if (e?.name === 'CredentialsProviderError') return 'no S3 credentials: set FEEDMAIL_S3_ACCESS_KEY_ID and FEEDMAIL_S3_SECRET_ACCESS_KEY (or give the AWS SDK its usual AWS_* variables, profile or instance role)';
  if (e?.$metadata?.httpStatusCode !== undefined) return `the S3 store answered ${e.$metadata.httpStatusCode} (${e.name}: ${e.message}); check the bucket, FEEDMAIL_S3_* and the credentials`;
  if (e?.$metadata !== undefined) return `cannot reach the S3 store (${e.message}); check FEEDMAIL_S3_ENDPOINT`;
  if (e?.code === 'ECONNREFUSED' || e?.code === 'ENOTFOUND' || e?.code === 'ETIMEDOUT') return `cannot reach the storage (${e.code}: ${e.message}); check FEEDMAIL_S3_ENDPOINT`;
  if (e?.code === 'EACCES' || e?.code === 'ENOSPC' || e?.code === 'EROFS') return `cannot write there (${e.code}: ${e.message})`;
  return undefined;
}

/** What `feedmail backup` and `restore` say with FEEDMAIL_DATABASE_URL set: the data is PostgreSQL's to back up. */
export const POSTGRES_BACKUP_TEXT = `FEEDMAIL_DATABASE_URL is set: feeds, entries and the journal are in PostgreSQL, which backs them up itself.
Take backups with PostgreSQL's tools, e.g.
  pg_dump --format=custom --file=feedmail.dump "$FEEDMAIL_DATABASE_URL"      (a consistent dump, while feedmail runs)
  pg_restore --clean --if-exists --dbname="$FEEDMAIL_DATABASE_URL" feedmail.dump
or continuous archiving (pg_basebackup and WAL archiving) for point-in-time recovery.
The schemas are feedmail_app, feedmail_queue and feedmail_cache; feedmail_cache may be left out (it is rebuilt on demand).
`;

export async function runBackup(config: Config, log: Logger, argv: string[]): Promise<number> {
  if (config.databaseUrl) {
    process.stdout.write(POSTGRES_BACKUP_TEXT);
    return 1;
  }
  try {
    return await backupCommand(config, log, argv);
  } catch (err) {
    const problem = storageProblem(err);
    if (!problem) throw err;
    process.stderr.write(`feedmail: backup failed: ${problem}\n`);
    return 1;
  }
}

async function backupCommand(config: Config, log: Logger, argv: string[]): Promise<number> {
  const args = [...argv];
  const to = takeOption(args, '--to');
  const action = args[0] && !args[0].startsWith('--') ? args.shift()! : 'create';
  const snapshotArg = action === 'verify' && args[0] && !args[0].startsWith('--') ? args.shift() : undefined;
  if (args.length > 0) throw new UsageError(`unknown option "${args[0]}"; see "feedmail backup --help"`);
  if (!['create', 'list', 'verify'].includes(action)) throw new UsageError(`unknown backup action "${action}"; see "feedmail backup --help"`);
  const target = targetOf(config, to, '--to');

  if (action === 'list') {
    const names = await listSnapshots(target);
    if (names.length === 0) {
      process.stdout.write(`No complete snapshots in ${target.description}.\n`);
      return 0;
    }
    for (const name of names) {
      const m = await readManifest(target, name).catch(() => undefined);
      const bytes = m ? m.files.reduce((n, f) => n + f.compressedSize, 0) : 0;
      const entries = m?.files.find((f) => f.name === 'app.db')?.rowCounts.entries;
      process.stdout.write(`${name}  ${m ? `${sizeText(bytes)}  ${entries ?? '?'} entries  feedmail ${m.feedmailVersion}` : '(unreadable manifest)'}\n`);
    }
    process.stdout.write(`${names.length} snapshot(s) in ${target.description}.\n`);
    return 0;
  }

  if (action === 'verify') {
    const snapshot = snapshotArg ?? (await listSnapshots(target)).at(-1);
    if (!snapshot) {
      process.stdout.write(`No complete snapshots in ${target.description}.\n`);
      return 1;
    }
    if (snapshotTime(snapshot) === undefined) throw new UsageError(`"${snapshot}" is not a snapshot name (e.g. 2026-11-27T01-02-03Z); see "feedmail backup list"`);
    const progress = createProgress({ unit: 'bytes' });
    let v: Verification;
    try {
      v = await verifySnapshot(config.dataDir, target, snapshot, followSteps(progress));
    } catch (err) {
      if (!(err instanceof DamagedSnapshotError)) throw err;
      process.stdout.write(`  PROBLEM ${err.message}\nSnapshot ${snapshot} cannot be verified: do not restore it.\n`);
      return 1;
    } finally {
      progress.stop();
    }
    process.stdout.write(`Snapshot ${snapshot} in ${target.description}:\n`);
    printVerification(v);
    if (v.problems.length > 0) {
      process.stdout.write(`Snapshot ${snapshot} is damaged: do not restore it.\n`);
      return 1;
    }
    process.stdout.write(`Snapshot ${snapshot} is sound.\n`);
    return 0;
  }

  // A mistyped or unmounted data directory must not become an empty "newest" snapshot.
  const notThere = existingDataProblem(config.dataDir);
  if (notThere) {
    process.stderr.write(`feedmail: backup refused: ${notThere}\n`);
    return 1;
  }
  const stores = openStores(config.dataDir, { databaseUrl: config.databaseUrl, walMaxBytes: config.walMaxBytes, existingOnly: true });
  const progress = createProgress({ unit: 'bytes' });
  try {
    const started = Date.now();
    const r = await takeSnapshot(stores, target, stores.queue.clock.now(), followSteps(progress), new DiskSpace(config.dataDir, config.minFreeBytes));
    progress.stop();
    await stores.queue.recordBackup({ snapshot: r.snapshot, target: target.description, bytes: r.bytes });
    log.info({ snapshot: r.snapshot, target: target.description, bytes: r.bytes }, 'backup: snapshot stored');
    for (const f of r.manifest.files) {
      process.stdout.write(`  ${f.name}: ${sizeText(f.size)} -> ${sizeText(f.compressedSize)} (${Object.values(f.rowCounts).reduce((a, b) => a + b, 0)} rows)\n`);
    }
    process.stdout.write(`Stored snapshot ${r.snapshot} in ${target.description} (${sizeText(r.bytes)}, ${((Date.now() - started) / 1000).toFixed(1)} s).\n`);
    return 0;
  } finally {
    progress.stop();
    await stores.close();
  }
}
