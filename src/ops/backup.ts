/**
 * Backups that restore (issue 13). A snapshot is a directory named by its UTC time
 * (`2026-11-27T01-02-03Z/`) holding each database as a gzip file, copied online with
 * SQLite's backup API while the server runs, and a `manifest.json` written last: a
 * snapshot without one is incomplete and ignored. The manifest names, for each file, its
 * sizes, the SHA-256 of its compressed and uncompressed bytes and its row counts, which
 * `verify` and `restore` check after decompressing, together with PRAGMA integrity_check.
 *
 * app.db (feeds, entries) and queue.db (the journal of raw mail, jobs) are backed up;
 * cache.db is not: it holds rendered feed documents that are rebuilt on demand.
 */
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { pipeline } from 'node:stream/promises';
import { createGunzip, createGzip } from 'node:zlib';
import type { Stores } from '../store/index.js';
import { holdDataDirExclusive, inspectDatabaseFile, sqliteVersion, type CopyProgress } from '../store/backup.js';
import { MANIFEST, type BackupTarget } from './backup-target.js';
import type { SpaceGuard } from './storage-guard.js';

/**
 * The databases a snapshot holds, in the order they are copied: queue.db first. A worker
 * stores a message's entry in app.db before it deletes the ingest job in queue.db, so with
 * this order every message of the copied journal whose job is gone has its entry in the
 * copied app.db, and a job still pending in the copy runs again after a restore (ingest is
 * idempotent). The other order could lose a message processed between the two copies.
 */
export const BACKED_UP: { name: 'app.db' | 'queue.db' }[] = [{ name: 'queue.db' }, { name: 'app.db' }];

/** Files moved aside by a restore besides the restored ones: cache.db is rebuilt from the restored app.db. */
const ALSO_SET_ASIDE = ['cache.db'];

export interface ManifestFile {
  name: string;
  /** The object in the snapshot: `<name>.gz`. */
  object: string;
  size: number;
  sha256: string;
  compressedSize: number;
  compressedSha256: string;
  rowCounts: Record<string, number>;
}

export interface Manifest {
  format: 1;
  snapshot: string;
  createdAt: string;
  feedmailVersion: string;
  sqliteVersion: string;
  files: ManifestFile[];
}

/** What long operations report: the step (one per file and phase) and how far it is, in bytes. */
export interface StepProgress {
  step: string;
  done: number;
  total: number;
}

export type ProgressListener = (p: StepProgress) => void;

/** The version in package.json, one level above both src/ and dist/. */
export function feedmailVersion(): string {
  try {
    const pkg = JSON.parse(fs.readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version?: string };
    return pkg.version ?? 'unknown';
  } catch {
    return 'unknown';
  }
}

/** `2026-11-27T01-02-03Z`: a UTC time that sorts as text and is safe in paths and S3 keys. */
export function snapshotName(ms: number): string {
  return new Date(ms).toISOString().replace(/\.\d{3}Z$/, 'Z').replace(/:/g, '-');
}

/** The time a snapshot name stands for, or undefined when it is not one. */
export function snapshotTime(name: string): number | undefined {
  const m = /^(\d{4}-\d{2}-\d{2})T(\d{2})-(\d{2})-(\d{2})Z$/.exec(name);
  if (!m) return undefined;
  const t = Date.parse(`${m[1]}T${m[2]}:${m[3]}:${m[4]}Z`);
  return Number.isNaN(t) ? undefined : t;
}

/** Work directories older than this were left by a backup, verify or restore that was killed. */
const STALE_WORK_MS = 24 * 3600_000;

/**
 * A temporary directory inside the data directory: same filesystem (restores rename from it),
 * never tmpfs. Those a killed run left behind a day ago or more are removed first.
 */
function workDir(dataDir: string, kind: string): string {
  fs.mkdirSync(dataDir, { recursive: true });
  for (const name of fs.readdirSync(dataDir)) {
    if (!/^\.(backup|verify|restore)-/.test(name)) continue;
    const dir = path.join(dataDir, name);
    try {
      if (Date.now() - fs.statSync(dir).mtimeMs > STALE_WORK_MS) fs.rmSync(dir, { recursive: true, force: true });
    } catch {
      // Gone already, or not ours to remove: it does no harm.
    }
  }
  return fs.mkdtempSync(path.join(dataDir, `.${kind}-`));
}

/** Streams `from` through `transform` into `to`, hashing and counting both sides. */
async function transformFile(from: string, to: string, transform: NodeJS.ReadWriteStream, onBytes?: (bytesIn: number) => void) {
  const inHash = createHash('sha256');
  const outHash = createHash('sha256');
  let inBytes = 0;
  let outBytes = 0;
  const input = fs.createReadStream(from);
  input.on('data', (c: Buffer | string) => {
    inHash.update(c);
    inBytes += c.length;
    onBytes?.(inBytes);
  });
  transform.on('data', (c: Buffer) => {
    outHash.update(c);
    outBytes += c.length;
  });
  await pipeline(input, transform, fs.createWriteStream(to));
  return { inSha256: inHash.digest('hex'), inBytes, outSha256: outHash.digest('hex'), outBytes };
}

async function hashFile(file: string, onBytes?: (bytes: number) => void): Promise<{ sha256: string; bytes: number }> {
  const hash = createHash('sha256');
  let bytes = 0;
  for await (const chunk of fs.createReadStream(file)) {
    hash.update(chunk as Buffer);
    bytes += (chunk as Buffer).length;
    onBytes?.(bytes);
  }
  return { sha256: hash.digest('hex'), bytes };
}

/** The data directory has no room for a backup's temporary copy without going below FEEDMAIL_MIN_FREE_BYTES. */
export class BackupSpaceError extends Error {}

export interface SnapshotResult {
  snapshot: string;
  manifest: Manifest;
  /** Compressed bytes stored. */
  bytes: number;
}

/**
 * Takes a snapshot of app.db and queue.db while the server may be running and stores it in
 * `target`. Each copy is checked (integrity_check) and counted before it is uploaded.
 */
export async function takeSnapshot(stores: Pick<Stores, 'dataDir' | 'app' | 'queue'>, target: BackupTarget, now: number, onProgress?: ProgressListener, space?: SpaceGuard): Promise<SnapshotResult> {
  const snapshot = snapshotName(now);
  if (await target.getText(`${snapshot}/${MANIFEST}`) !== undefined) throw new Error(`backup: a snapshot named ${snapshot} already exists in ${target.description}`);
  const work = workDir(stores.dataDir, 'backup');
  try {
    const files: ManifestFile[] = [];
    for (const { name } of BACKED_UP) {
      const store = name === 'app.db' ? stores.app : stores.queue;
      const copy = path.join(work, name);
      // The copy is made in the data directory: it must not take the room mail needs (FEEDMAIL_MIN_FREE_BYTES).
      const release = space ? space.reserve(store.fileBytes()) : () => undefined;
      if (!release) throw new BackupSpaceError(`not enough free disk space in ${stores.dataDir} for the temporary copy of ${name} (${store.fileBytes()} bytes) above FEEDMAIL_MIN_FREE_BYTES`);
      try {
        await store.copyTo(copy, (p: CopyProgress) => onProgress?.({ step: `copy ${name}`, done: p.doneBytes, total: p.totalBytes }));
      } finally {
        release();
      }
      const size = fs.statSync(copy).size;
      onProgress?.({ step: `copy ${name}`, done: size, total: size });
      const inspection = await inspectDatabaseFile(copy);
      if (inspection.integrity.join() !== 'ok') throw new Error(`backup: the copy of ${name} fails integrity_check: ${inspection.integrity.slice(0, 5).join('; ')}`);
      const gz = `${copy}.gz`;
      const h = await transformFile(copy, gz, createGzip({ level: 6 }), (done) => onProgress?.({ step: `compress ${name}`, done, total: size }));
      await fs.promises.rm(copy);
      await target.putFile(`${snapshot}/${name}.gz`, gz, (() => {
        let sent = 0;
        return (bytes: number) => {
          sent += bytes;
          onProgress?.({ step: `upload ${name}.gz`, done: sent, total: h.outBytes });
        };
      })());
      await fs.promises.rm(gz);
      files.push({ name, object: `${name}.gz`, size, sha256: h.inSha256, compressedSize: h.outBytes, compressedSha256: h.outSha256, rowCounts: inspection.rowCounts });
    }
    const manifest: Manifest = {
      format: 1, snapshot, createdAt: new Date(now).toISOString(), feedmailVersion: feedmailVersion(), sqliteVersion: sqliteVersion(), files,
    };
    // Last: only now does the snapshot count.
    await target.putText(`${snapshot}/${MANIFEST}`, `${JSON.stringify(manifest, null, 2)}\n`);
    return { snapshot, manifest, bytes: files.reduce((n, f) => n + f.compressedSize, 0) };
  } finally {
    await fs.promises.rm(work, { recursive: true, force: true });
  }
}

/** Complete snapshots (with a manifest), oldest first. */
export async function listSnapshots(target: BackupTarget): Promise<string[]> {
  return (await target.completeSnapshots()).filter((n) => snapshotTime(n) !== undefined).sort();
}

/** The newest complete snapshot taken at or before `at` (ms); undefined when there is none. */
export async function pickSnapshot(target: BackupTarget, at = Number.POSITIVE_INFINITY): Promise<string | undefined> {
  return (await listSnapshots(target)).filter((n) => snapshotTime(n)! <= at).at(-1);
}

/** A snapshot whose manifest is missing, unreadable or not feedmail's. */
export class DamagedSnapshotError extends Error {}

function parseManifest(text: string, snapshot: string): Manifest {
  let m: Manifest;
  try {
    m = JSON.parse(text) as Manifest;
  } catch {
    throw new DamagedSnapshotError(`${snapshot}/${MANIFEST} is not valid JSON`);
  }
  const fileOk = (f: ManifestFile) => f && typeof f.name === 'string' && typeof f.object === 'string' && /^[\w.-]+$/.test(f.object)
    && Number.isSafeInteger(f.size) && Number.isSafeInteger(f.compressedSize) && /^[0-9a-f]{64}$/.test(f.sha256) && /^[0-9a-f]{64}$/.test(f.compressedSha256)
    && typeof f.rowCounts === 'object';
  if (m?.format !== 1 || !Array.isArray(m.files) || !m.files.every(fileOk)) throw new DamagedSnapshotError(`${snapshot}/${MANIFEST} is not a feedmail manifest (format 1)`);
  return m;
}

export async function readManifest(target: BackupTarget, snapshot: string): Promise<Manifest> {
  const text = await target.getText(`${snapshot}/${MANIFEST}`);
  if (text === undefined) throw new DamagedSnapshotError(`no complete snapshot named ${snapshot} in ${target.description}`);
  return parseManifest(text, snapshot);
}

export interface Verification {
  snapshot: string;
  manifest: Manifest;
  /** One line per problem, each naming its file; empty when the snapshot is sound. */
  problems: string[];
  /** Per file, what was checked. */
  checked: { name: string; size: number; rows: number }[];
}

/**
 * Downloads a snapshot into `dir` and checks every file: compressed size and SHA-256,
 * decompressed size and SHA-256, PRAGMA integrity_check and row counts against the
 * manifest. The decompressed databases are left in `dir` under their names.
 */
export async function verifySnapshotInto(target: BackupTarget, snapshot: string, dir: string, onProgress?: ProgressListener): Promise<Verification> {
  const manifest = await readManifest(target, snapshot);
  const problems: string[] = [];
  const checked: Verification['checked'] = [];
  for (const name of BACKED_UP.map((b) => b.name)) {
    if (!manifest.files.some((f) => f.name === name)) problems.push(`${name}: missing from the manifest`);
  }
  for (const f of manifest.files) {
    if (!BACKED_UP.some((b) => b.name === f.name)) {
      problems.push(`${f.name}: not a database feedmail backs up`);
      continue;
    }
    const gz = path.join(dir, f.object);
    onProgress?.({ step: `download ${f.object}`, done: 0, total: f.compressedSize });
    if (!(await target.getFile(`${snapshot}/${f.object}`, gz))) {
      problems.push(`${f.object}: missing from the snapshot`);
      continue;
    }
    const db = path.join(dir, f.name);
    try {
      const stored = await hashFile(gz, (done) => onProgress?.({ step: `check ${f.object}`, done, total: f.compressedSize }));
      if (stored.bytes !== f.compressedSize || stored.sha256 !== f.compressedSha256) {
        problems.push(`${f.object}: checksum does not match the manifest (${stored.bytes} bytes, SHA-256 ${stored.sha256.slice(0, 12)}…; expected ${f.compressedSize} bytes, ${f.compressedSha256.slice(0, 12)}…); the file is damaged`);
        continue;
      }
      let h: Awaited<ReturnType<typeof transformFile>>;
      try {
        h = await transformFile(gz, db, createGunzip(), (done) => onProgress?.({ step: `decompress ${f.object}`, done, total: f.compressedSize }));
      } catch (err) {
        problems.push(`${f.object}: does not decompress (${(err as Error).message}); the file is damaged`);
        continue;
      }
      if (h.outBytes !== f.size || h.outSha256 !== f.sha256) {
        problems.push(`${f.name}: decompressed bytes do not match the manifest's checksum`);
        continue;
      }
    } finally {
      await fs.promises.rm(gz, { force: true });
    }
    const inspection = await inspectDatabaseFile(db);
    if (inspection.integrity.join() !== 'ok') {
      problems.push(`${f.name}: integrity_check failed: ${inspection.integrity.slice(0, 5).join('; ')}`);
      continue;
    }
    const tables = new Set([...Object.keys(f.rowCounts), ...Object.keys(inspection.rowCounts)]);
    const differing = [...tables].filter((t) => f.rowCounts[t] !== inspection.rowCounts[t]);
    if (differing.length > 0) {
      problems.push(`${f.name}: row counts differ from the manifest in ${differing.map((t) => `${t} (${inspection.rowCounts[t] ?? 'missing'} vs ${f.rowCounts[t] ?? 'missing'})`).join(', ')}`);
      continue;
    }
    checked.push({ name: f.name, size: f.size, rows: Object.values(inspection.rowCounts).reduce((a, b) => a + b, 0) });
  }
  return { snapshot, manifest, problems, checked };
}

/** Verifies a snapshot in a temporary directory of the data directory and removes what it downloaded. */
export async function verifySnapshot(dataDir: string, target: BackupTarget, snapshot: string, onProgress?: ProgressListener): Promise<Verification> {
  const work = workDir(dataDir, 'verify');
  try {
    return await verifySnapshotInto(target, snapshot, work, onProgress);
  } finally {
    await fs.promises.rm(work, { recursive: true, force: true });
  }
}

export class RestoreRefusedError extends Error {}

export interface RestoreOptions {
  /** Newest snapshot at or before this time (ms); default: the newest. */
  at?: number;
  /** Restore only these databases (e.g. only app.db, keeping a queue.db that survived for `feedmail replay`). */
  only?: string[];
  now?: number;
  onProgress?: ProgressListener;
}

export interface RestoreResult {
  snapshot: string;
  restored: string[];
  /** Where the files that were in the data directory went. */
  asideDir: string;
  setAside: string[];
  verification: Verification;
}

/**
 * Restores a snapshot into the data directory: refuses while a server or worker uses it
 * (the data directory's lock), verifies the snapshot into temporary files there, moves the
 * current files (with their -wal and -shm) into `pre-restore-<time>/` and the restored ones
 * into place. Nothing in the data directory changes unless the snapshot passed every check.
 */
export async function restoreSnapshot(dataDir: string, target: BackupTarget, options: RestoreOptions = {}): Promise<RestoreResult> {
  const names = BACKED_UP.map((b) => b.name).filter((n) => !options.only || options.only.includes(n));
  if (names.length === 0) throw new RestoreRefusedError(`nothing to restore: --only takes ${BACKED_UP.map((b) => b.name).join(' or ')}`);
  const lock = holdDataDirExclusive(dataDir);
  if (!lock) throw new RestoreRefusedError(`a feedmail server or worker is using ${dataDir}: stop it (and every "feedmail worker") before restoring`);
  try {
    const snapshot = await pickSnapshot(target, options.at);
    if (!snapshot) {
      throw new RestoreRefusedError(options.at === undefined
        ? `no complete snapshot in ${target.description}`
        : `no complete snapshot taken at or before ${new Date(options.at).toISOString()} in ${target.description}`);
    }
    const work = workDir(dataDir, 'restore');
    try {
      const verification = await verifySnapshotInto(target, snapshot, work, options.onProgress).catch((err: unknown) => {
        throw err instanceof DamagedSnapshotError ? new RestoreRefusedError(`snapshot ${snapshot} cannot be restored; nothing was changed: ${err.message}\nRestore an earlier snapshot with --at <snapshot> (see "feedmail backup list").`) : err;
      });
      if (verification.problems.length > 0) {
        throw new RestoreRefusedError(`snapshot ${snapshot} failed verification; nothing was changed:\n  ${verification.problems.join('\n  ')}\nRestore an earlier snapshot with --at <snapshot> (see "feedmail backup list").`);
      }
      // A new directory each time: a second restore must not overwrite what the first set aside.
      const stem = path.join(dataDir, `pre-restore-${snapshotName(options.now ?? Date.now())}`);
      let asideDir = stem;
      for (let n = 2; fs.existsSync(asideDir); n++) asideDir = `${stem}-${n}`;
      fs.mkdirSync(asideDir);
      const setAside: string[] = [];
      for (const base of [...names, ...(names.includes('app.db') ? ALSO_SET_ASIDE : [])]) {
        for (const suffix of ['', '-wal', '-shm', '-journal']) {
          const from = path.join(dataDir, base + suffix);
          if (!fs.existsSync(from)) continue;
          fs.renameSync(from, path.join(asideDir, base + suffix));
          setAside.push(base + suffix);
        }
      }
      for (const name of names) fs.renameSync(path.join(work, name), path.join(dataDir, name));
      const dirHandle = fs.openSync(dataDir, 'r');
      try {
        fs.fsyncSync(dirHandle);
      } finally {
        fs.closeSync(dirHandle);
      }
      if (setAside.length === 0) fs.rmdirSync(asideDir);
      return { snapshot, restored: names, asideDir, setAside, verification };
    } finally {
      await fs.promises.rm(work, { recursive: true, force: true });
    }
  } finally {
    lock.release();
  }
}

/**
 * Which snapshots retention keeps: the newest of each of the newest `hourly` hours and of
 * each of the newest `daily` days (UTC), and always the newest snapshot.
 */
export function snapshotsToKeep(names: string[], hourly: number, daily: number): Set<string> {
  const newestFirst = names.filter((n) => snapshotTime(n) !== undefined).sort().reverse();
  const keep = new Set<string>(newestFirst.slice(0, 1));
  for (const [bucketMs, count] of [[3_600_000, hourly], [86_400_000, daily]] as const) {
    const seen = new Set<number>();
    for (const name of newestFirst) {
      const bucket = Math.floor(snapshotTime(name)! / bucketMs);
      if (seen.has(bucket)) continue;
      if (seen.size >= count) break;
      seen.add(bucket);
      keep.add(name);
    }
  }
  return keep;
}

/** Deletes the complete snapshots retention does not keep; returns their names. */
export async function pruneSnapshots(target: BackupTarget, hourly: number, daily: number): Promise<string[]> {
  const names = await listSnapshots(target);
  const keep = snapshotsToKeep(names, hourly, daily);
  const removed = names.filter((n) => !keep.has(n));
  for (const name of removed) await target.removeSnapshot(name);
  return removed;
}
