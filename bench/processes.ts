/**
 * Feed reads with `serve --processes 1` and `--processes 2`.
 *
 * For each process count: starts the real server as a child process (test/support/serve-process.ts),
 * creates F feeds and sends M messages to each (waiting until they are entries), then reads the
 * feed documents (JSON, Atom and RSS in turn) for D seconds over C keep-alive connections
 * (bench/lib/http-load.ts), one request at a time per connection, and reports requests per second
 * and latency percentiles. The load generator runs on the same machine and takes CPU of its own.
 * Results: bench/results/processes-<date>.txt (the output as printed).
 *
 *   node --import tsx bench/processes.ts [--seconds 10] [--connections 16] [--feeds 5] [--messages 20] [--processes 1,2] [--worker-concurrency N]
 *
 * --worker-concurrency 0 runs no job runner in the server (then --messages must be 0: nothing would ingest the mail),
 * to tell the cost of the runners' polling of queue.db apart from the web path's.
 */
import os from 'node:os';
import { numberArg } from './args.js';
import { runLoad } from './lib/http-load.js';
import { createFeed, sendRaw, waitForEntries } from '../test/support/helpers.js';
import { startServeProcess } from '../test/support/serve-process.js';

if (process.argv.includes('--help')) {
  process.stdout.write('Usage: node --import tsx bench/processes.ts [--seconds 10] [--connections 16] [--feeds 5] [--messages 20] [--processes 1,2] [--worker-concurrency N]\n');
  process.exit(0);
}

const seconds = numberArg('seconds', 10);
const connections = numberArg('connections', 16);
const feedCount = numberArg('feeds', 5);
const messages = numberArg('messages', 20);
const workerConcurrency = numberArg('worker-concurrency', 2);
const processIndex = process.argv.indexOf('--processes');
const processCounts = (processIndex >= 0 ? process.argv[processIndex + 1]! : '1,2').split(',').map(Number);

interface Result { processes: number; requests: number; errors: number; perSecond: number; p50: number; p90: number; p99: number }

async function run(processes: number): Promise<Result> {
  const server = await startServeProcess({ processes, env: { FEEDMAIL_LOG_LEVEL: 'info', FEEDMAIL_FEED_MESSAGES_PER_DAY: '0', FEEDMAIL_WORKER_CONCURRENCY: String(workerConcurrency) } });
  try {
    const feeds = [];
    for (let f = 0; f < feedCount; f++) feeds.push(await createFeed(server.base, `bench ${f}`));
    for (const feed of feeds) {
      for (let m = 0; m < messages; m++) await sendRaw(server.smtpPort, feed.address, `From: a@example.com\r\nSubject: issue ${m}\r\n\r\n<p>Issue ${m} of the newsletter, with a paragraph of text.</p>\r\n`);
    }
    if (messages > 0) for (const feed of feeds) await waitForEntries(feed.feeds.json, 'json', messages, 120_000);
    const urls = feeds.flatMap((f) => [f.feeds.json, f.feeds.atom, f.feeds.rss]);
    // Warm up: every document rendered and cached, every connection open (bench/lib/http-load.ts: keep-alive raw sockets).
    const r = await runLoad({ port: Number(new URL(server.base).port), requests: urls.map((u) => ({ path: new URL(u).pathname })), connections, seconds, warmupSeconds: 1 });
    return {
      processes, requests: r.requests, errors: r.errors, perSecond: r.perSecond, p50: r.p50, p90: r.p90, p99: r.p99,
    };
  } finally {
    await server.stop();
  }
}

const say = (line: string) => process.stdout.write(`${line}\n`);
say(`processes ${new Date().toISOString()} node ${process.version}, ${os.cpus().length} CPU(s), ${os.cpus()[0]?.model ?? ''}`);
say(`feed reads: ${feedCount} feeds x ${messages} entries, JSON/Atom/RSS in turn, ${connections} keep-alive connections, ${seconds} s per run, FEEDMAIL_WORKER_CONCURRENCY=${workerConcurrency}`);
const results: Result[] = [];
for (const n of processCounts) {
  const r = await run(n);
  results.push(r);
  say(`  --processes ${n}: ${r.requests} requests, ${r.errors} errors, ${r.perSecond.toFixed(0)} req/s, latency p50 ${r.p50.toFixed(1)} ms, p90 ${r.p90.toFixed(1)} ms, p99 ${r.p99.toFixed(1)} ms`);
}
if (results.length >= 2) {
  const [first, last] = [results[0]!, results.at(-1)!];
  say(`  speed-up of --processes ${last.processes} over ${first.processes}: ${(last.perSecond / first.perSecond).toFixed(2)}x`);
}
