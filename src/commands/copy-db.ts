/** `feedmail copy-db`: copy an instance's data between SQLite and PostgreSQL (issue 15), resumably, and verify it. */
import dns from 'node:dns/promises';
import fs from 'node:fs';
import path from 'node:path';
import type { Config } from '../config.js';
import type { Logger } from '../log.js';
import { existingDataProblem } from '../ops/data-dir.js';
import type { CopyRow, CopyTable } from '../store/copy.js';
import { keyOf } from '../store/copy.js';
import { DATA_DIR_LOCK, holdDataDirExclusive, type HeldLock } from '../store/backup.js';
import { openStores, type Stores } from '../store/index.js';
import { takeOption, UsageError } from './backup.js';
import { createProgress } from './progress.js';

export const COPY_DB_HELP = `Usage: feedmail copy-db --from <data dir | postgres://…> --to <postgres://… | data dir> [--resume]

Copies everything feedmail keeps from one database to another: SQLite (a data directory
holding app.db and queue.db) to PostgreSQL, PostgreSQL back to SQLite, or SQLite to
SQLite. Feeds, entries, their bodies and attachments, sender rules, WebSub subscriptions,
the inbound journal (raw mail), pending jobs and recent deliveries keep their ids, so feed
URLs, manage links and share links keep working. The cache is not copied (it refills).

Stop feedmail on the source first: mail received during the copy would be missing from
the target, and the verification at the end would fail.

The copy goes table by table in batches ordered by primary key, with a progress bar.
Interrupted (Ctrl-C, a lost connection), run the same command again with --resume: it
continues after the last row that reached the target and copies nothing twice. At the
end, every table's row count and content checksum are compared on both sides; a
difference names the table and exits 1.

  --from    The source: a data directory, or a postgres:// (postgresql://) URL
  --to      The target: a new or empty data directory, or a postgres:// URL of an empty
            database (the schemas feedmail_app, feedmail_queue, feedmail_cache are created)
  --resume  The target is the one an interrupted copy-db of this source left: keep what
            it holds and copy the rest. Without it, a target holding feeds, entries or mail
            is refused.

Point FEEDMAIL_DATABASE_URL (or FEEDMAIL_DATA_DIR) at the target afterwards.
`;

const isUrl = (s: string) => /^postgres(ql)?:\/\//i.test(s);
/** Anything written like a URL (`scheme://`), e.g. a mistyped `postgress://` or `mysql://`: never taken as a directory. */
const looksLikeUrl = (s: string) => /^[a-z][a-z0-9+.-]*:\/\//i.test(s);

/** A URL (or anything written like one) without its password, for messages. */
function shown(where: string): string {
  if (!looksLikeUrl(where)) return where;
  try {
    const u = new URL(where);
    if (u.password) u.password = '***';
    return u.toString();
  } catch {
    return where.replace(/^([a-z][a-z0-9+.-]*:\/\/[^/@:]*:)[^@]*@/i, '$1***@').replace(/^([a-z][a-z0-9+.-]*:\/\/)[^/@]*@/i, '$1…@');
  }
}

/**
 * Where a postgres:// URL leads: the server's addresses, its port and the database, so the
 * same database written two ways (localhost and 127.0.0.1, with or without :5432) is recognised.
 */
async function databaseIdentity(url: string): Promise<{ addresses: string[]; port: string; database: string }> {
  const u = new URL(url);
  const host = decodeURIComponent(u.hostname || 'localhost').replace(/^\[|\]$/g, '');
  const addresses = await dns.lookup(host, { all: true }).then((a) => a.map((x) => x.address), () => [host]);
  const loopback = addresses.some((a) => a === '::1' || a.startsWith('127.'));
  return {
    addresses: loopback ? ['loopback'] : addresses,
    port: u.port || '5432',
    database: decodeURIComponent(u.pathname.slice(1)) || decodeURIComponent(u.username) || 'postgres',
  };
}

async function sameDatabase(a: string, b: string): Promise<boolean> {
  if (isUrl(a) !== isUrl(b)) return false;
  if (!isUrl(a)) return path.resolve(a) === path.resolve(b) || (fs.existsSync(a) && fs.existsSync(b) && fs.realpathSync(a) === fs.realpathSync(b));
  const [x, y] = [await databaseIdentity(a), await databaseIdentity(b)];
  return x.port === y.port && x.database === y.database && x.addresses.some((h) => y.addresses.includes(h));
}

async function open(where: string, config: Config, role: 'source' | 'target', locks: HeldLock[]): Promise<Stores> {
  let stores: Stores;
  if (isUrl(where)) {
    // The data directory is not used by a PostgreSQL store; the configured one is passed as is.
    stores = openStores(config.dataDir, { databaseUrl: where, existingOnly: role === 'source' });
  } else {
    const dir = path.resolve(where);
    if (role === 'source') {
      const problem = existingDataProblem(dir);
      if (problem) throw new UsageError(`copy-db refused: the source ${problem}`);
    }
    // A server (serve or worker) running on the directory holds feedmail.lock: mail it takes
    // during the copy would be missing from the target. Held until the copy ends, so none starts.
    const lock = holdDataDirExclusive(dir);
    if (!lock) {
      throw new UsageError(`copy-db refused: feedmail is running on the ${role} ${dir} (a serve or worker process holds its ${DATA_DIR_LOCK}). `
        + 'Stop it first (systemctl stop feedmail, docker stop …), then run copy-db again.');
    }
    locks.push(lock);
    stores = openStores(dir, { existingOnly: role === 'source' });
  }
  try {
    await stores.ready();
  } catch (err) {
    await stores.close();
    throw err;
  }
  return stores;
}

type Pair = { name: 'app' | 'queue'; from: Stores['app'] | Stores['queue']; to: Stores['app'] | Stores['queue'] };

function pairs(from: Stores, to: Stores): Pair[] {
  return [{ name: 'app', from: from.app, to: to.app }, { name: 'queue', from: from.queue, to: to.queue }];
}

export async function runCopyDb(config: Config, log: Logger, argv: string[]): Promise<number> {
  const args = [...argv];
  const fromArg = takeOption(args, '--from');
  const toArg = takeOption(args, '--to');
  const resumeAt = args.indexOf('--resume');
  const resume = resumeAt >= 0;
  if (resume) args.splice(resumeAt, 1);
  if (args.length > 0) throw new UsageError(`unknown option "${args[0]}"; see "feedmail copy-db --help"`);
  if (!fromArg || !toArg) throw new UsageError('say what to copy: --from <data dir | postgres://…> --to <postgres://… | data dir>');
  for (const [flag, where] of [['--from', fromArg], ['--to', toArg]] as const) {
    if (looksLikeUrl(where) && !isUrl(where)) {
      throw new UsageError(`copy-db refused: ${flag} ${shown(where)} is neither a postgres:// (postgresql://) URL nor a directory; check the scheme`);
    }
  }
  if (await sameDatabase(fromArg, toArg)) {
    throw new UsageError(`copy-db refused: --from ${shown(fromArg)} and --to ${shown(toArg)} are the same database`);
  }
  if (!isUrl(toArg) && fs.existsSync(toArg) && !fs.statSync(toArg).isDirectory()) throw new UsageError(`copy-db refused: the target ${toArg} is not a directory`);

  const locks: HeldLock[] = [];
  const releaseLocks = () => { for (const lock of locks.splice(0)) lock.release(); };
  let source: Stores;
  let target: Stores;
  try {
    source = await open(fromArg, config, 'source', locks);
    try {
      target = await open(toArg, config, 'target', locks);
    } catch (err) {
      await source.close();
      throw err;
    }
  } catch (err) {
    releaseLocks();
    throw err;
  }
  const progress = createProgress({ unit: 'rows' });
  // Ctrl-C: say what reached the target and how to finish, rather than end silently.
  let at = 'opening the databases';
  const onInterrupt = () => {
    progress.stop();
    process.stderr.write(`\nfeedmail: copy-db interrupted during ${at}. What reached the target is kept; `
      + `run the same command again with --resume to finish (copy-db --from ${shown(fromArg)} --to ${shown(toArg)} --resume).\n`);
    releaseLocks();
    process.exit(130);
  };
  process.once('SIGINT', onInterrupt);
  try {
    if (!resume) {
      const held: string[] = [];
      for (const { to } of pairs(source, target)) {
        for (const spec of to.copyTables) {
          if (spec.sourceWins) continue;
          const n = await to.countCopyRows(spec);
          if (n > 0) held.push(`${n} ${spec.table}`);
        }
      }
      if (held.length > 0) {
        process.stderr.write(`feedmail: copy-db refused: the target ${shown(toArg)} already holds data (${held.join(', ')}). `
          + 'If an interrupted copy-db of this same source left it, run the command again with --resume; otherwise choose an empty target.\n');
        return 1;
      }
    }

    const copied = new Map<string, number>();
    for (const { name, from, to } of pairs(source, target)) {
      for (const spec of from.copyTables) {
        const total = await from.countCopyRows(spec);
        // Rows a server made for itself on the target (server keys) are replaced: the copy starts over for those.
        let after = resume && !spec.sourceWins ? await to.lastCopiedKey(spec) : undefined;
        let done = after === undefined ? 0 : await to.countCopyRows(spec);
        progress.step(`${name}: ${spec.table}`, total);
        progress.update(done);
        at = `${name}: ${spec.table}`;
        for (;;) {
          const rows: CopyRow[] = await from.copyRowsAfter(spec, after, spec.batch);
          if (rows.length === 0) break;
          await to.insertCopiedRows(spec, rows);
          after = keyOf(spec, rows.at(-1)!);
          done += rows.length;
          progress.update(Math.min(done, total));
          at = `${name}: ${spec.table} (${Math.min(done, total)} of ${total} rows copied)`;
          // SQLite work is synchronous: give the event loop a turn so a Ctrl-C is handled between batches.
          await new Promise((resolve) => setImmediate(resolve));
        }
        progress.stop();
        copied.set(spec.table, total);
      }
      await to.fixCopiedIdentities();
    }

    const mismatches: string[] = [];
    const tables = pairs(source, target).flatMap((p) => p.from.copyTables.map((spec: CopyTable) => ({ ...p, spec })));
    const verifying = createProgress({ unit: 'tables' });
    verifying.step('verifying counts and checksums', tables.length);
    at = 'the verification (every row was copied)';
    for (const [i, { from, to, spec }] of tables.entries()) {
      const [a, b] = [await from.copyChecksum(spec), await to.copyChecksum(spec)];
      if (a.rows !== b.rows) mismatches.push(`${spec.table}: the source holds ${a.rows} rows, the target ${b.rows}`);
      else if (a.checksum !== b.checksum) mismatches.push(`${spec.table}: the same ${a.rows} rows, but their content differs (checksum ${a.checksum.slice(0, 12)} ≠ ${b.checksum.slice(0, 12)})`);
      verifying.update(i + 1);
    }
    verifying.stop();
    if (mismatches.length > 0) {
      process.stderr.write(`feedmail: copy-db: the target does not match the source:\n${mismatches.map((m) => `  ${m}\n`).join('')}`
        + 'Was feedmail still running on the source? --resume cannot repair rows that changed after they were copied: stop '
        + 'feedmail on the source, empty the target (PostgreSQL: DROP SCHEMA feedmail_app, feedmail_queue, feedmail_cache CASCADE; '
        + 'a directory: delete it) and run copy-db again without --resume.\n');
      log.error({ mismatches: mismatches.length }, 'copy-db: verification failed');
      return 1;
    }
    const summary = ['feeds', 'entries', 'blobs', 'journal'].map((t) => `${copied.get(t) ?? 0} ${t === 'journal' ? 'journaled messages' : t}`).join(', ');
    process.stdout.write(`Copied ${summary} (${tables.length} tables) from ${shown(fromArg)} to ${shown(toArg)}; `
      + 'every table\'s row count and checksum match.\n');
    log.info({ tables: tables.length }, 'copy-db: done');
    return 0;
  } finally {
    process.removeListener('SIGINT', onInterrupt);
    progress.stop();
    await Promise.all([source.close(), target.close()]);
    releaseLocks();
  }
}
