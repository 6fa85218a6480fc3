/**
 * Feed reads with `serve --processes 1` and `--processes 2`.
 *
 * For each process count: starts the real server as a child process (test/support/serve-process.ts),
 * creates F feeds and sends M messages to each (waiting until they are entries), then reads the
 * feed documents (JSON, Atom and RSS in turn) for D seconds over C keep-alive connections
 * (node:http Agent), one request at a time per connection, and reports requests per second
 * and latency percentiles. The load generator runs on the same machine and takes CPU of its own.
 * Results: bench/results/processes-<date>.txt (the output as printed).
 *
 *   node --import tsx bench/processes.ts [--seconds 10] [--connections 16] [--feeds 5] [--messages 20] [--processes 1,2] [--worker-concurrency N]
 *
 * --worker-concurrency 0 runs no job runner in the server (then --messages must be 0: nothing would ingest the mail),
 * to tell the cost of the runners' polling of queue.db apart from the web path's.
 */
import http from 'node:http';
import os from 'node:os';
import { numberArg } from './args.js';
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

function get(agent: http.Agent, url: string): Promise<number> {
  return new Promise((resolve, reject) => {
    http.get(url, { agent }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode ?? 0));
      res.on('error', reject);
    }).on('error', reject);
  });
}

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? NaN;
}

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
    const agent = new http.Agent({ keepAlive: true, maxSockets: connections });
    // Warm up: every document rendered and cached, every connection open.
    await Promise.all(urls.map((u) => get(agent, u)));
    const latencies: number[] = [];
    let errors = 0;
    const end = performance.now() + seconds * 1000;
    let next = 0;
    await Promise.all(Array.from({ length: connections }, async () => {
      while (performance.now() < end) {
        const url = urls[next++ % urls.length]!;
        const started = performance.now();
        try {
          if ((await get(agent, url)) !== 200) errors++;
        } catch {
          errors++;
        }
        latencies.push(performance.now() - started);
      }
    }));
    agent.destroy();
    latencies.sort((a, b) => a - b);
    return {
      processes, requests: latencies.length, errors, perSecond: latencies.length / seconds,
      p50: percentile(latencies, 50), p90: percentile(latencies, 90), p99: percentile(latencies, 99),
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
