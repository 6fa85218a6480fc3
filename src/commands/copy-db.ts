/** `feedmail copy-db`: copy an instance's data between SQLite and PostgreSQL (issue 15), resumably, and verify it. */
import fs from 'node:fs';
import path from 'node:path';
import type { Config } from '../config.js';
import type { Logger } from '../log.js';
import { existingDataProblem } from '../ops/data-dir.js';
import type { CopyRow, CopyTable } from '../store/copy.js';
import { keyOf } from '../store/copy.js';
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

/** A URL without its password, for messages. */
function shown(where: string): string {
  if (!isUrl(where)) return where;
  try {
    const u = new URL(where);
    u.password = '';
    return u.toString();
  } catch {
    return 'the PostgreSQL URL';
  }
}

async function open(where: string, config: Config, role: 'source' | 'target'): Promise<Stores> {
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
  if ((isUrl(fromArg) ? fromArg : path.resolve(fromArg)) === (isUrl(toArg) ? toArg : path.resolve(toArg))) {
    throw new UsageError('copy-db refused: --from and --to are the same database');
  }
  if (!isUrl(toArg) && fs.existsSync(toArg) && !fs.statSync(toArg).isDirectory()) throw new UsageError(`copy-db refused: the target ${toArg} is not a directory`);

  const source = await open(fromArg, config, 'source');
  let target: Stores;
  try {
    target = await open(toArg, config, 'target');
  } catch (err) {
    await source.close();
    throw err;
  }
  const progress = createProgress({ unit: 'rows' });
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
        for (;;) {
          const rows: CopyRow[] = await from.copyRowsAfter(spec, after, spec.batch);
          if (rows.length === 0) break;
          await to.insertCopiedRows(spec, rows);
          after = keyOf(spec, rows.at(-1)!);
          done += rows.length;
          progress.update(Math.min(done, total));
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
    for (const [i, { from, to, spec }] of tables.entries()) {
      const [a, b] = [await from.copyChecksum(spec), await to.copyChecksum(spec)];
      if (a.rows !== b.rows) mismatches.push(`${spec.table}: the source holds ${a.rows} rows, the target ${b.rows}`);
      else if (a.checksum !== b.checksum) mismatches.push(`${spec.table}: the same ${a.rows} rows, but their content differs (checksum ${a.checksum.slice(0, 12)} ≠ ${b.checksum.slice(0, 12)})`);
      verifying.update(i + 1);
    }
    verifying.stop();
    if (mismatches.length > 0) {
      process.stderr.write(`feedmail: copy-db: the target does not match the source:\n${mismatches.map((m) => `  ${m}\n`).join('')}`
        + 'Was feedmail still running on the source? Stop it and run copy-db again with --resume.\n');
      log.error({ mismatches: mismatches.length }, 'copy-db: verification failed');
      return 1;
    }
    const summary = ['feeds', 'entries', 'blobs', 'journal'].map((t) => `${copied.get(t) ?? 0} ${t === 'journal' ? 'journaled messages' : t}`).join(', ');
    process.stdout.write(`Copied ${summary} (${tables.length} tables) from ${shown(fromArg)} to ${shown(toArg)}; `
      + 'every table\'s row count and checksum match.\n');
    log.info({ tables: tables.length }, 'copy-db: done');
    return 0;
  } finally {
    progress.stop();
    await Promise.all([source.close(), target.close()]);
  }
}
