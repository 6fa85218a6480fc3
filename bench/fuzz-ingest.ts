/**
 * Fuzzed mail through the whole path: mutated messages are sent over SMTP to a
 * real server, and every message it acknowledged must end up stored as an entry
 * or recorded as a failed job with its error; the server must keep answering.
 *
 *   node --import tsx bench/fuzz-ingest.ts [--messages 10000] [--seed 24301] [--connections 4]
 */
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import { pathToFileURL } from 'node:url';
import nodemailer from 'nodemailer';
import { parseIngestPayload } from '../src/store/journal.js';
import { createFeed, fixture, startTestServer } from '../test/support/helpers.js';
import { cases } from '../test/support/mutate.js';
import { numberArg } from './args.js';

export interface FuzzIngestOptions {
  messages: number;
  seed: number;
  connections: number;
  log?: (line: string) => void;
}

export interface FuzzIngestResult {
  sent: number;
  acknowledged: number;
  refused: number;
  stored: number;
  storedAsDuplicate: number;
  failedWithError: number;
  unaccounted: string[];
  stillServing: boolean;
  seconds: number;
}

export async function runFuzzIngest(o: FuzzIngestOptions): Promise<FuzzIngestResult> {
  const log = o.log ?? (() => undefined);
  const started = Date.now();
  // Every case goes to one feed: no messages-per-day limit, so each is processed.
  const server = await startTestServer({ feedsPerHourPerClient: '0', processingTimeoutMs: '5000', feedMessagesPerDay: '0' });
  const fixtures = fs.readdirSync(new URL('../test/fixtures/', import.meta.url)).filter((f) => f.endsWith('.eml')).sort()
    .map((name) => ({ name, raw: fixture(name) }));
  const transport = nodemailer.createTransport({ host: '127.0.0.1', port: server.smtpPort, pool: true, maxConnections: o.connections, ignoreTLS: true });
  const acked = new Map<number, string>();
  let refused = 0;
  try {
    const feed = await createFeed(server.base);
    const pending = new Set<Promise<void>>();
    let sent = 0;
    for (const c of cases(fixtures, o.messages, o.seed)) {
      const what = `#${c.id} ${c.fixture} ${c.mutations.join('+')}`;
      const p = transport.sendMail({ envelope: { from: 'fuzz@example.com', to: feed.address }, raw: c.raw }).then(
        (info) => {
          const id = /queued as (\d+)/.exec(info.response)?.[1];
          if (id) acked.set(Number(id), what);
        },
        () => { refused++; },
      ).finally(() => pending.delete(p));
      pending.add(p);
      sent++;
      if (pending.size >= o.connections * 4) await Promise.race(pending);
      if (sent % 1000 === 0) log(`sent ${sent}/${o.messages}, ${acked.size} acknowledged, ${refused} refused`);
    }
    await Promise.all(pending);
    log(`all sent: ${acked.size} acknowledged, ${refused} refused; waiting for the queue to drain`);
    for (;;) {
      const q = await server.app.stores.queue.queueStats();
      if (q.ready === 0 && q.claimed === 0) break;
      await new Promise((r) => setTimeout(r, 200));
    }
    const stillServing = (await fetch(`${server.base}/healthz`)).ok && (await fetch(feed.feeds.atom)).ok;

    const { app, queue } = server.app.stores;
    const uids = new Set<string>();
    const rawHashes = new Set<string | null>();
    for (let page = await app.entriesAfter(0, 500); page.length; page = await app.entriesAfter(page.at(-1)!.id, 500)) {
      for (const e of page) {
        uids.add(e.journal_uid);
        rawHashes.add(e.raw_hash);
      }
    }
    const failed = new Map((await queue.jobsInState('failed', 1_000_000)).map((j) => [parseIngestPayload(JSON.parse(j.payload)).journalId, j.last_error]));
    let stored = 0;
    let storedAsDuplicate = 0;
    let failedWithError = 0;
    const unaccounted: string[] = [];
    for (const [id, what] of acked) {
      const row = await queue.journalById(id);
      if (row && uids.has(row.uid)) stored++;
      else if (row && rawHashes.has(createHash('sha256').update(row.raw).digest('hex'))) storedAsDuplicate++;
      else if (failed.get(id)) failedWithError++;
      else unaccounted.push(`journal row ${id} (${what})`);
    }
    return { sent, acknowledged: acked.size, refused, stored, storedAsDuplicate, failedWithError, unaccounted, stillServing, seconds: Math.round((Date.now() - started) / 1000) };
  } finally {
    transport.close();
    await server.stop();
  }
}


if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  if (process.argv.includes('--help')) {
    process.stdout.write('Usage: node --import tsx bench/fuzz-ingest.ts [--messages 10000] [--seed 24301] [--connections 4]\n');
    process.exit(0);
  }
  const r = await runFuzzIngest({ messages: numberArg('messages', 10_000), seed: numberArg('seed', 24301), connections: numberArg('connections', 4), log: (l) => process.stdout.write(`${l}\n`) });
  const { unaccounted, ...counts } = r;
  process.stdout.write(`${JSON.stringify(counts)}\n`);
  for (const u of unaccounted.slice(0, 20)) process.stdout.write(`unaccounted: ${u}\n`);
  const ok = unaccounted.length === 0 && r.stillServing;
  process.stdout.write(`${ok ? 'PASS' : 'FAIL'}: ${r.acknowledged} acknowledged, ${r.stored} stored, ${r.storedAsDuplicate} identical to an earlier one, ${r.failedWithError} failed with their error, ${unaccounted.length} unaccounted\n`);
  process.exit(ok ? 0 : 1);
}
