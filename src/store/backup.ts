/**
 * What backups need from the databases (issue 13): a consistent online copy of a live
 * database (SQLite's backup API, never a file copy of a WAL database), a look inside a
 * copied file (integrity check, row counts), the record of successful backups, and the
 * data directory's lock that keeps a restore and a running server apart.
 */
import fs from 'node:fs';
import { createRequire } from 'node:module';
import { Worker } from 'node:worker_threads';
import path from 'node:path';
import Database from 'better-sqlite3';
import type { Kysely } from 'kysely';
import type { QueueSchema } from './schema.js';

export interface CopyProgress {
  doneBytes: number;
  totalBytes: number;
}

/** Pages per backup step: large enough to finish quickly, small enough that the event loop gets turns. */
const PAGES_PER_STEP = 1024;

/**
 * Copies a live database into `file` with SQLite's online backup API: the copy is one
 * consistent state of the database even while other connections and processes write.
 * Writes through this same connection (the server's own scheduled backup) are carried into
 * the copy as it goes; a write by another process restarts the copy, and after such a
 * restart the rest is copied in one step (one read transaction), so a busy server cannot
 * keep the copy from ever finishing. The copy is then switched to a rollback journal (a
 * single self-contained file).
 */
export async function copyDatabase(raw: Database.Database, file: string, onProgress?: (p: CopyProgress) => void): Promise<void> {
  const pageSize = raw.pragma('page_size', { simple: true }) as number;
  let lastRemaining = Number.POSITIVE_INFINITY;
  let allAtOnce = false;
  await raw.backup(file, {
    progress: (p) => {
      if (p.remainingPages > lastRemaining) allAtOnce = true;
      lastRemaining = p.remainingPages;
      onProgress?.({ doneBytes: (p.totalPages - p.remainingPages) * pageSize, totalBytes: p.totalPages * pageSize });
      return allAtOnce ? 0x7fffffff : PAGES_PER_STEP;
    },
  });
  const copy = new Database(file);
  try {
    copy.pragma('journal_mode = DELETE');
  } finally {
    copy.close();
  }
}

export interface FileInspection {
  /** ['ok'] when SQLite finds the file sound, else what it found. */
  integrity: string[];
  rowCounts: Record<string, number>;
}

/**
 * What runs in the inspecting thread (plain CommonJS, so it needs no loader): opens the file,
 * runs PRAGMA integrity_check and counts the rows of every ordinary table (virtual tables
 * are counted through their shadow tables).
 */
const INSPECT_THREAD = `
const { parentPort, workerData } = require('node:worker_threads');
const Database = require(workerData.driver);
let db;
try {
  db = new Database(workerData.file, { fileMustExist: true });
  const integrity = db.pragma('integrity_check').map((r) => r.integrity_check);
  const tables = db.prepare("SELECT name FROM sqlite_schema WHERE type = 'table' AND name NOT LIKE 'sqlite_%' AND sql NOT LIKE 'CREATE VIRTUAL%' ORDER BY name").all();
  const rowCounts = {};
  for (const { name } of tables) rowCounts[name] = Number(db.prepare('SELECT count(*) AS n FROM "' + name.replace(/"/g, '""') + '"').get().n);
  parentPort.postMessage({ integrity, rowCounts });
} catch (err) {
  parentPort.postMessage({ integrity: [String(err && err.message || err)], rowCounts: {} });
} finally {
  if (db) db.close();
}
`;

/**
 * Checks a database file nobody else uses (a snapshot copy): PRAGMA integrity_check and the
 * row counts. It runs in a thread of its own, because on a large file it takes seconds and
 * the scheduled backup runs inside the server.
 */
export function inspectDatabaseFile(file: string): Promise<FileInspection> {
  return new Promise((resolve) => {
    const worker = new Worker(INSPECT_THREAD, { eval: true, workerData: { file, driver: createRequire(import.meta.url).resolve('better-sqlite3') } });
    worker.once('message', (r: FileInspection) => resolve(r));
    worker.once('error', (err) => resolve({ integrity: [`unable to check: ${err.message}`], rowCounts: {} }));
    worker.once('exit', (code) => resolve({ integrity: [`the checking thread exited (${code})`], rowCounts: {} }));
  });
}

/** The SQLite library version feedmail runs with. */
export function sqliteVersion(): string {
  const db = new Database(':memory:');
  try {
    return String((db.prepare('SELECT sqlite_version() AS v').get() as { v: string }).v);
  } finally {
    db.close();
  }
}

export interface BackupRun {
  finishedAt: number;
  snapshot: string;
  target: string;
  bytes: number;
}

export async function recordBackup(db: Kysely<QueueSchema>, now: number, run: Omit<BackupRun, 'finishedAt'>): Promise<void> {
  await db.insertInto('backup_runs').values({ finished_at: now, snapshot: run.snapshot, target: run.target, bytes: run.bytes }).execute();
  // Only the recent history is worth keeping.
  await db.deleteFrom('backup_runs').where('id', 'not in', db.selectFrom('backup_runs').select('id').orderBy('id', 'desc').limit(100)).execute();
}

/** The newest successful backup, if any. */
export async function lastBackup(db: Kysely<QueueSchema>): Promise<BackupRun | undefined> {
  const row = await db.selectFrom('backup_runs').selectAll().orderBy('finished_at', 'desc').orderBy('id', 'desc').limit(1).executeTakeFirst();
  return row && { finishedAt: row.finished_at, snapshot: row.snapshot, target: row.target, bytes: row.bytes };
}

/**
 * The data directory's lock, `feedmail.lock`: an empty SQLite file used only for its file
 * locks, which the operating system drops when a process dies (no stale pid files). Every
 * `serve` and `worker` holds a shared lock while it runs; `feedmail restore` takes it
 * exclusively, so it refuses to run beside a server and no server starts during a restore.
 */
export const DATA_DIR_LOCK = 'feedmail.lock';

export interface HeldLock {
  release(): void;
}

function openLock(dataDir: string): Database.Database {
  fs.mkdirSync(dataDir, { recursive: true });
  const db = new Database(path.join(dataDir, DATA_DIR_LOCK));
  db.pragma('busy_timeout = 0');
  return db;
}

function held(db: Database.Database): HeldLock {
  let released = false;
  return {
    release() {
      if (released) return;
      released = true;
      try {
        if (db.inTransaction) db.exec('ROLLBACK');
      } finally {
        db.close();
      }
    },
  };
}

/** The shared lock a running server holds; undefined when a restore holds the directory. */
export function holdDataDirShared(dataDir: string): HeldLock | undefined {
  const db = openLock(dataDir);
  try {
    db.exec('BEGIN');
    // A read inside the open transaction takes the shared lock and keeps it until the end.
    db.prepare('SELECT count(*) FROM sqlite_schema').get();
    return held(db);
  } catch (err) {
    db.close();
    if ((err as { code?: string }).code?.startsWith('SQLITE_BUSY')) return undefined;
    throw err;
  }
}

/** The exclusive lock of a restore; undefined while a server (or another restore) holds the directory. */
export function holdDataDirExclusive(dataDir: string): HeldLock | undefined {
  const db = openLock(dataDir);
  try {
    db.exec('BEGIN EXCLUSIVE');
    return held(db);
  } catch (err) {
    db.close();
    if ((err as { code?: string }).code?.startsWith('SQLITE_BUSY')) return undefined;
    throw err;
  }
}
