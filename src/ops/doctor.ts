/**
 * `feedmail doctor`: what an operator checks first, read without starting
 * anything. The data directory's filesystem (the same judgement as the start's
 * preflight, see storage-guard.ts) and free space, the SQLite library, each
 * database's journal mode and WAL size, the job queue, and the last backup;
 * each problem comes with what to do about it.
 *
 * The databases are opened read-only and only when they exist: a directory
 * without data is reported as such, never created or migrated, and a running
 * server is not blocked (a WAL reader takes no write lock).
 */
import fs from 'node:fs';
import path from 'node:path';
import type { Config } from '../config.js';
import { messageWithCauses } from '../errors.js';
import { loadTlsCredentials } from '../mail/smtp-tls.js';
import { openStores, sqliteVersion, type Stores } from '../store/index.js';
import { sizeText } from '../web/routes/manage-common.js';
import { dataDirState, PARTIAL_FIX, partialDetail } from './data-dir.js';
import { MAX_QUEUE_LAG_MS } from './readiness.js';
import { DiskSpace, mountOf, unsafeStorageReason } from './storage-guard.js';

export type CheckStatus = 'ok' | 'note' | 'problem';

export interface DoctorCheck {
  name: string;
  status: CheckStatus;
  detail: string;
  /** What to do about a problem (or a note). */
  fix?: string;
}

export interface DoctorReport {
  dataDir: string;
  /** False when any check found a problem. */
  healthy: boolean;
  checks: DoctorCheck[];
}

/** The directory itself, or its nearest parent that exists (what a first start would create it in). */
function nearestExisting(dir: string): string {
  let d = dir;
  while (!fs.existsSync(d) && path.dirname(d) !== d) d = path.dirname(d);
  return d;
}

function filesystemCheck(config: Config, existing: string): DoctorCheck {
  const mount = mountOf(existing);
  const reason = unsafeStorageReason(existing);
  if (reason) {
    return {
      name: 'filesystem', status: 'problem',
      detail: reason
        + (config.allowUnsafeStorage ? ' (FEEDMAIL_ALLOW_UNSAFE_STORAGE lets the server start anyway)' : ''),
      fix: 'Put the data directory on a local persistent disk (for example /var/lib/feedmail, see docs/deploy.md) and point '
        + 'FEEDMAIL_DATA_DIR at it. Move the data with "feedmail backup" and "feedmail restore", or stop the server and move '
        + 'app.db, queue.db and cache.db together with their -wal files.',
    };
  }
  if (!mount) return { name: 'filesystem', status: 'note', detail: 'unknown (/proc/self/mountinfo is not readable here)' };
  return { name: 'filesystem', status: 'ok', detail: `${mount.fsType} at ${mount.mountPoint} (persistent, local)` };
}

function spaceCheck(config: Config, existing: string): DoctorCheck {
  const disk = new DiskSpace(existing, config.minFreeBytes);
  const free = disk.freeBytes();
  if (!Number.isFinite(free)) return { name: 'free space', status: 'note', detail: 'unknown (statfs failed)' };
  const detail = `${sizeText(free)} free, minimum ${sizeText(config.minFreeBytes)} (FEEDMAIL_MIN_FREE_BYTES)`;
  if (disk.hasSpace()) return { name: 'free space', status: 'ok', detail };
  return {
    name: 'free space', status: 'problem', detail: `${detail}: new mail is deferred with 452 until there is more`,
    fix: 'Free space on that disk (or grow it). Deleting feeds frees space inside the databases, which the maintenance task '
      + 'returns to the disk. Lowering FEEDMAIL_MIN_FREE_BYTES only helps if the disk will not fill up completely.',
  };
}

async function databaseChecks(config: Config, stores: Stores): Promise<DoctorCheck[]> {
  const checks: DoctorCheck[] = [];
  for (const store of [stores.app, stores.queue, stores.cache]) {
    const name = path.basename(store.file);
    try {
      const { journalMode } = store.durability();
      const wal = store.walBytes();
      const detail = `journal mode ${journalMode}, ${sizeText(store.fileBytes())}, WAL ${sizeText(wal)}`;
      if (journalMode !== 'wal') {
        checks.push({ name, status: 'problem', detail, fix: `Start "feedmail serve" once: it switches ${name} to WAL, which lets readers and the writer work at the same time and keeps "250" durable.` });
      } else if (wal > 2 * config.walMaxBytes) {
        checks.push({
          name, status: 'problem', detail: `${detail}, over twice FEEDMAIL_WAL_MAX_BYTES (${sizeText(config.walMaxBytes)})`,
          fix: 'A long-lived reader keeps the WAL from being checkpointed: close open sqlite3 shells and file-copying backup tools '
            + '(use "feedmail backup" or Litestream instead). feedmail truncates the WAL at its next checkpoint once no reader holds it.',
        });
      } else {
        checks.push({ name, status: 'ok', detail });
      }
    } catch (err) {
      checks.push({ name, status: 'problem', detail: `unable to read: ${messageWithCauses(err)}`, fix: `Check the file with: sqlite3 ${store.file} "PRAGMA integrity_check"; if it is damaged, restore it with "feedmail restore".` });
    }
  }
  return checks;
}

/**
 * With FEEDMAIL_DATABASE_URL: the connection, the server's version, each schema's migrations
 * and durability, the queue; backups are PostgreSQL's own (pg_dump, base backups).
 */
async function postgresChecks(config: Config): Promise<{ checks: DoctorCheck[]; backup: DoctorCheck }> {
  const backup: DoctorCheck = { name: 'backups', status: 'note', detail: 'PostgreSQL: back it up with pg_dump or base backups ("feedmail backup" says how)' };
  const stores = openStores(config.dataDir, { databaseUrl: config.databaseUrl, readOnly: true, poolMax: 1 });
  try {
    try {
      await stores.ready();
    } catch (err) {
      return {
        checks: [{ name: 'PostgreSQL', status: 'problem', detail: `unable to use FEEDMAIL_DATABASE_URL: ${messageWithCauses(err)}`, fix: 'Check that the server runs and that FEEDMAIL_DATABASE_URL names it, its database, a user and password that may connect; a new database is set up by the first "feedmail serve".' }],
        backup,
      };
    }
    const checks: DoctorCheck[] = [{ name: 'PostgreSQL', status: 'ok', detail: `server ${stores.app.serverVersion()}` }];
    for (const store of [stores.app, stores.queue, stores.cache]) {
      const m = store.migrations()!;
      const { synchronous } = store.durability();
      const detail = `${m.applied} of ${m.known} migrations`;
      if (m.applied < m.known) checks.push({ name: store.file, status: 'note', detail: `${detail}: the next "feedmail serve" applies the rest` });
      else if (store !== stores.cache && synchronous === 'OFF') checks.push({ name: store.file, status: 'problem', detail: `${detail}, synchronous_commit = off`, fix: 'Set synchronous_commit to on for this database or user: with it off, a crash of the server can lose mail feedmail has already accepted.' });
      else checks.push({ name: store.file, status: 'ok', detail });
    }
    checks.push(await queueCheck(stores));
    return { checks, backup };
  } finally {
    await stores.close();
  }
}

async function queueCheck(stores: Stores): Promise<DoctorCheck> {
  try {
    const q = await stores.queue.queueStats();
    const detail = `${q.ready} waiting, ${q.claimed} running, ${q.failed} failed; oldest waiting ${Math.round(q.oldestReadyAgeMs / 1000)} s`;
    if (q.failed > 0) {
      const byTask = new Map<string, number>();
      for (const j of await stores.queue.jobsInState('failed')) byTask.set(j.task, (byTask.get(j.task) ?? 0) + 1);
      return {
        name: 'jobs', status: 'problem', detail: `${detail} (${[...byTask].map(([t, n]) => `${n} ${t}`).join(', ')})`,
        fix: 'Run "feedmail jobs list" to see why they failed, then "feedmail jobs retry --all" (after fixing the cause) or '
          + '"feedmail jobs discard <id>". A failed ingest job is mail that did not become an entry yet; its raw message is kept.',
      };
    }
    if (q.oldestReadyAgeMs > MAX_QUEUE_LAG_MS) {
      return {
        name: 'jobs', status: 'problem', detail: `${detail}: mail is not turning into entries`,
        fix: 'Check that "feedmail serve" (or "feedmail worker") is running with FEEDMAIL_WORKER_CONCURRENCY above 0, and read its log.',
      };
    }
    return { name: 'jobs', status: 'ok', detail };
  } catch (err) {
    return { name: 'jobs', status: 'problem', detail: `unable to read the queue: ${messageWithCauses(err)}`, fix: 'Start "feedmail serve" once to bring queue.db up to date, or restore it with "feedmail restore".' };
  }
}

/** A certificate with less time than this left should have been renewed by now (ACME clients renew at 30 days). */
const CERT_RENEWAL_OVERDUE_MS = 14 * 86_400_000;

/** The STARTTLS pair, when configured: that it loads as the server would load it, and how long it lasts. */
function tlsCheck(config: Config, now = Date.now()): DoctorCheck {
  if (config.smtpTlsCert === '') {
    return { name: 'SMTP TLS', status: 'note', detail: 'STARTTLS is off', fix: 'Set FEEDMAIL_SMTP_TLS_CERT and FEEDMAIL_SMTP_TLS_KEY so senders can deliver over TLS (see docs/deploy.md).' };
  }
  let validTo: Date;
  try {
    ({ validTo } = loadTlsCredentials({ certFile: config.smtpTlsCert, keyFile: config.smtpTlsKey }));
  } catch (err) {
    return {
      name: 'SMTP TLS', status: 'problem', detail: `the certificate and key do not load: ${(err as Error).message}`,
      fix: `Check that ${config.smtpTlsCert} and ${config.smtpTlsKey} are readable by feedmail's user, are PEM, and that the key belongs to the certificate.`,
    };
  }
  const left = validTo.getTime() - now;
  const detail = `STARTTLS with ${config.smtpTlsCert}, valid until ${validTo.toISOString()}`;
  if (left <= 0) return { name: 'SMTP TLS', status: 'problem', detail: `${detail}: expired`, fix: 'Renew the certificate; feedmail picks up the new files by itself.' };
  if (left < CERT_RENEWAL_OVERDUE_MS) {
    return { name: 'SMTP TLS', status: 'problem', detail: `${detail}: ${Math.floor(left / 86_400_000)} day(s) left`, fix: 'Renewal looks stuck: check your ACME client (e.g. "certbot renew --dry-run") and its deploy hook; feedmail picks up the new files by itself.' };
  }
  return { name: 'SMTP TLS', status: 'ok', detail };
}

/**
 * The last backup: the one place the doctor learns about backups. It reads whether they
 * are configured (FEEDMAIL_BACKUP_TO); the time of the last successful backup, and the
 * judgement of its age (older than twice FEEDMAIL_BACKUP_EVERY is a problem, as for
 * /readyz), belong here too.
 */
export async function backupCheck(config: Config, stores: Stores | undefined, now = Date.now()): Promise<DoctorCheck> {
  const target = config.backupTo;
  if (target === '') {
    return {
      name: 'backups', status: 'note', detail: 'not configured',
      fix: 'Set FEEDMAIL_BACKUP_TO (a directory or s3://bucket/prefix) for scheduled snapshots, or replicate with Litestream; see docs/operations.md.',
    };
  }
  // Only the kind of target is shown: an address may carry credentials.
  const kind = target.startsWith('s3://') ? 'S3' : 'a directory';
  let last: Awaited<ReturnType<Stores['queue']['lastBackup']>>;
  try {
    last = await stores?.queue.lastBackup();
  } catch {
    // A queue.db from before backups were recorded (the server migrates it at its next start).
    last = undefined;
  }
  const every = sizeOfDuration(config.backupEveryMs);
  if (!last) {
    return {
      name: 'backups', status: 'problem', detail: `configured (to ${kind}, every ${every}), but no backup has succeeded yet`,
      fix: 'Check the server log for "backup" errors, or take one now with "feedmail backup --to <target>".',
    };
  }
  const age = now - last.finishedAt;
  const detail = `last ${new Date(last.finishedAt).toISOString()} (${sizeOfDuration(age)} ago, ${sizeText(last.bytes)}), every ${every} to ${kind}`;
  // The same bound as /readyz: twice the schedule.
  if (age > 2 * config.backupEveryMs) {
    return { name: 'backups', status: 'problem', detail, fix: 'Scheduled backups are failing or the server is not running: check the log for "backup" errors and run "feedmail backup verify".' };
  }
  return { name: 'backups', status: 'ok', detail };
}

/** 90 s, 25 min, 3.5 h, 2.0 d: a duration as an operator reads it. */
function sizeOfDuration(ms: number): string {
  const s = ms / 1000;
  if (s < 120) return `${Math.round(s)} s`;
  if (s < 7200) return `${Math.round(s / 60)} min`;
  if (s < 172800) return `${(s / 3600).toFixed(1)} h`;
  return `${(s / 86400).toFixed(1)} d`;
}

export async function diagnose(config: Config): Promise<DoctorReport> {
  const dataDir = config.dataDir;
  const existing = nearestExisting(dataDir);
  const checks: DoctorCheck[] = [];
  const exists = existing === dataDir;
  checks.push(exists
    ? { name: 'data directory', status: 'ok', detail: dataDir }
    : { name: 'data directory', status: 'note', detail: `${dataDir} does not exist yet; the first "feedmail serve" creates it (checked below: ${existing})` });
  checks.push(filesystemCheck(config, existing));
  checks.push(spaceCheck(config, existing));
  checks.push({ name: 'SQLite', status: 'ok', detail: `version ${sqliteVersion()}` });

  const state = dataDirState(dataDir);
  // Read from queue.db when it can be opened.
  let backup: DoctorCheck | undefined;
  if (config.databaseUrl) {
    const { checks: pgChecks, backup: pgBackup } = await postgresChecks(config);
    checks.push(...pgChecks);
    backup = pgBackup;
  } else if (state.kind === 'empty') {
    checks.push({ name: 'databases', status: 'note', detail: 'no data yet: the first "feedmail serve" creates app.db, queue.db and cache.db' });
  } else if (state.kind === 'partial') {
    checks.push({ name: 'databases', status: 'problem', detail: partialDetail(state), fix: PARTIAL_FIX });
  } else if (!fs.existsSync(path.join(dataDir, 'cache.db'))) {
    // What a restore leaves: cache.db only holds rendered feeds.
    checks.push({ name: 'databases', status: 'note', detail: 'app.db and queue.db present, cache.db missing: the next "feedmail serve" creates it (the databases are checked once it exists)' });
  } else {
    let stores: Stores | undefined;
    try {
      stores = openStores(dataDir, { readOnly: true, walMaxBytes: config.walMaxBytes });
    } catch (err) {
      checks.push({ name: 'databases', status: 'problem', detail: `unable to open: ${messageWithCauses(err)}`, fix: 'Check the files\' owner and permissions (the doctor needs to read them), or restore them with "feedmail restore".' });
    }
    if (stores) {
      try {
        checks.push(...await databaseChecks(config, stores), await queueCheck(stores));
        backup = await backupCheck(config, stores);
      } finally {
        await stores.close();
      }
    }
  }
  checks.push(backup ?? await backupCheck(config, undefined));
  checks.push(tlsCheck(config));
  return { dataDir, healthy: checks.every((c) => c.status !== 'problem'), checks };
}

/** The report as the terminal shows it. */
export function doctorText(report: DoctorReport): string {
  const label: Record<CheckStatus, string> = { ok: 'ok', note: 'note', problem: 'PROBLEM' };
  const width = Math.max(...report.checks.map((c) => c.name.length));
  const lines = [`feedmail doctor: ${report.dataDir}`, ''];
  for (const c of report.checks) {
    lines.push(`  ${label[c.status].padEnd(7)}  ${c.name.padEnd(width)}  ${c.detail}`);
    if (c.fix) lines.push(`  ${''.padEnd(7)}  ${''.padEnd(width)}  → ${c.fix}`);
  }
  const problems = report.checks.filter((c) => c.status === 'problem').length;
  lines.push('', problems === 0 ? 'No problems found.' : `${problems} problem${problems === 1 ? '' : 's'} found.`);
  return `${lines.join('\n')}\n`;
}
