/** `feedmail replay`: turn journaled mail into entries again, idempotently (issue 13). */
import { preflight } from '../app.js';
import type { Config } from '../config.js';
import type { Logger } from '../log.js';
import { ingestJournalRow } from '../mail/ingest.js';
import { processPoolFor } from '../mail/process-pool.js';
import { existingDataProblem } from '../ops/data-dir.js';
import { holdDataDirShared } from '../store/backup.js';
import { openStores } from '../store/index.js';
import { takeOption, UsageError } from './backup.js';
import { createProgress } from './progress.js';
import { parseTime } from './restore.js';

export const REPLAY_HELP = `Usage: feedmail replay --since <time> [settings]

Processes again every message in the inbound journal (queue.db) received at or after
--since, and stores the entries that are missing. A message whose entry exists is not
stored twice, so replay is safe to run more than once, and while the server runs.

Use it after "feedmail restore --only app.db" from a snapshot when queue.db survived:
the mail received after the snapshot is still in the journal (for
FEEDMAIL_JOURNAL_RETENTION_DAYS days) and comes back. Entries deleted on purpose do not
come back (deleting an entry deletes its raw mail), but entries trimmed from a feed
past FEEDMAIL_FEED_KEEP_ENTRIES may, until the next trim.

  --since  A time such as 2026-11-27T01:30:00Z, or a snapshot name (2026-11-27T01-30-00Z)

Uses the data directory from FEEDMAIL_DATA_DIR / --data-dir.
`;

export async function runReplay(config: Config, log: Logger, argv: string[]): Promise<number> {
  const args = [...argv];
  const sinceRaw = takeOption(args, '--since');
  if (args.length > 0) throw new UsageError(`unknown option "${args[0]}"; see "feedmail replay --help"`);
  if (sinceRaw === undefined) throw new UsageError('say from when: --since <time>');
  const since = parseTime(sinceRaw, '--since');
  // On PostgreSQL (FEEDMAIL_DATABASE_URL) the data directory holds no database: the journal is in feedmail_queue.
  if (!config.databaseUrl) {
    const notThere = existingDataProblem(config.dataDir);
    if (notThere) {
      process.stderr.write(`feedmail: replay refused: ${notThere}\n`);
      return 1;
    }
    preflight(config);
  }
  // Held while replaying, so it never runs into a restore (store/backup.ts).
  const dirLock = holdDataDirShared(config.dataDir);
  if (!dirLock) {
    process.stderr.write(`feedmail: replay refused: "feedmail restore" is restoring ${config.dataDir}; run it again once that finished\n`);
    return 1;
  }
  let stores: ReturnType<typeof openStores>;
  try {
    stores = openStores(config.dataDir, { databaseUrl: config.databaseUrl, walMaxBytes: config.walMaxBytes, existingOnly: true });
  } catch (err) {
    dirLock.release();
    throw err;
  }
  const processor = processPoolFor(config);
  const progress = createProgress({ unit: 'messages' });
  try {
    // The rows to replay, without their bytes, first: the count is what the progress shows.
    const ids: number[] = [];
    for (let after = 0; ;) {
      const page = await stores.queue.journalAfter(after, 1000);
      if (page.length === 0) break;
      for (const row of page) if (row.received_at >= since) ids.push(row.id);
      after = page.at(-1)!.id;
    }
    progress.step(`replaying messages received since ${new Date(since).toISOString()}`, ids.length);
    let stored = 0;
    let present = 0;
    for (const [i, id] of ids.entries()) {
      const r = await ingestJournalRow({ app: stores.app, queue: stores.queue, processor, log }, id);
      if (r.stored > 0) stored += r.stored;
      else present++;
      progress.update(i + 1);
    }
    progress.stop();
    process.stdout.write(`Replayed ${ids.length} message(s) received since ${new Date(since).toISOString()}: `
      + `${stored} new entr${stored === 1 ? 'y' : 'ies'} stored, ${present} message(s) already stored (or addressed to feeds that are gone).\n`);
    log.info({ messages: ids.length, stored, present }, 'replay: done');
    return 0;
  } finally {
    progress.stop();
    await processor.close();
    await stores.close();
    dirLock.release();
  }
}
