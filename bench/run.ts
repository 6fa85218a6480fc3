/**
 * `npm run bench [-- --quick] [-- --only reads,roundrobin,smtp,steady,webhook,processing,scale,footprint]`: feedmail measured against
 * the machine's own limits (issue 14). Each benchmark starts feedmail from the built code
 * (dist/cli.js) with a fresh data directory as a separate process and drives it over real
 * sockets from separate load-generator processes; every figure sits beside a ceiling measured
 * in the same run: a bare node:http server with the same bytes (bench/lib/bare-http.ts), a bare
 * SMTP sink with the same client (bench/lib/smtp-sink.ts, bench/lib/smtp_client.py), and a
 * bare better-sqlite3 loop of durable 20 KB commits (bench/lib/sqlite-ceiling.ts).
 * Writes bench/results/bench-<date>-<mode>.json and bench/RESULTS.md. See bench/README.md.
 */
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import Database from 'better-sqlite3';
import pg from 'pg';
import { openStores, type Stores } from '../src/store/index.js';
import { createFeed, tempDir, waitForEntries, type CreatedFeed } from '../test/support/helpers.js';
import { startServeProcess, type ServeProcess } from '../test/support/serve-process.js';
import { withPgClient } from '../test/support/pg.js';
import { median, type LoadRequest, type LoadResult } from './lib/http-load.js';
import { writeNewsletters } from './lib/newsletters.js';
import { seedFeeds } from './scale.js';

const HELP = `Usage: npm run bench [-- --quick] [-- --only reads,roundrobin,smtp,steady,webhook,processing,scale,footprint] [-- --cpu-prof DIR] [-- --postgres [URL]]

  --quick     fewer and shorter runs, 500 instead of 2,000 SMTP messages, smaller scales
              (500 instead of 5,000 queued messages, 50,000 instead of 1,000,000 entries,
              1,000 instead of 10,000 feeds read round-robin)
  --only      run only the named benchmarks (default: all of the mode)
  --cpu-prof  write V8 CPU profiles of the feedmail server of the SMTP benchmark into DIR
              (of the reads benchmark into DIR/reads, of the processing benchmark's draining server into DIR/processing)
  --processing-env K=V,...  FEEDMAIL_* settings for the processing benchmark's draining server
  --markdown-from FILE   only rewrite bench/RESULTS.md from a recorded results JSON
  --postgres [URL]  also run reads, smtp, steady and webhook against feedmail on PostgreSQL, with 1 and
              with 2 app instances (two \`feedmail serve\` on different ports, one database, the load split
              evenly over both), each benchmark in a fresh database; rows labelled "postgres, 1 instance" and
              "postgres, 2 instances" beside the SQLite ones. URL: an admin URL of a server the benchmark may
              create and drop databases in (postgres://postgres@127.0.0.1:5432/postgres); without it, a
              throwaway cluster is started with scripts/test-pg.sh (set FEEDMAIL_TEST_PG_PORT to pick its port)
              and removed at the end. Writes bench-<date>-<mode>-postgres.json.
Writes bench/results/bench-<date>-<quick|full>.json and bench/RESULTS.md.
`;
if (process.argv.includes('--help')) {
  process.stdout.write(HELP);
  process.exit(0);
}
const arg = (name: string) => {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? process.argv[i + 1] : undefined;
};
const quick = process.argv.includes('--quick');
const withPostgres = process.argv.includes('--postgres');
const pgAdminUrl = arg('postgres')?.startsWith('postgres') ? arg('postgres') : undefined;
if (withPostgres && !pgAdminUrl) {
  // No server given: the same run again inside a throwaway cluster (scripts/test-pg.sh), with its admin URL as the argument.
  process.stderr.write('bench: --postgres without a URL: starting a throwaway PostgreSQL cluster (fsync on) with scripts/test-pg.sh\n');
  const args = process.argv.slice(2).filter((a) => a !== '--postgres');
  const script = 'exec env -u FEEDMAIL_TEST_DATABASE_URL "$0" --import tsx bench/run.ts "$@" --postgres "$FEEDMAIL_TEST_DATABASE_URL"';
  // With fsync on: feedmail's commits on PostgreSQL durable, as on SQLite (synchronous=FULL).
  const child = spawn('bash', ['scripts/test-pg.sh', 'bash', '-c', script, process.execPath, ...args], {
    cwd: fileURLToPath(new URL('..', import.meta.url)), stdio: 'inherit', env: { ...process.env, FEEDMAIL_TEST_PG_FSYNC: 'on' },
  });
  child.on('exit', (code) => process.exit(code ?? 1));
  await new Promise(() => undefined);
}
const only = arg('only')?.split(',');
const cpuProfDir = arg('cpu-prof');
/** FEEDMAIL_* settings for the draining server of the processing benchmark, e.g. `--processing-env FEEDMAIL_WORKER_CONCURRENCY=8`. */
const processingEnv = Object.fromEntries((arg('processing-env') ?? '').split(',').filter(Boolean).map((kv) => kv.split('=') as [string, string]));
const REPO = fileURLToPath(new URL('..', import.meta.url));
const MODE = `${quick ? 'quick' : 'full'}${withPostgres ? '-postgres' : ''}`;
const P = quick
  ? { readRuns: 3, readSeconds: 3, readWarmup: 1, smtpMessages: 500, smtpRuns: 2, processMessages: 500, processRuns: 2, steadyMessages: 300, webhookMessages: 300, webhookRuns: 2, sqliteCommits: 500 }
  : { readRuns: 5, readSeconds: 10, readWarmup: 2, smtpMessages: 2000, smtpRuns: 3, processMessages: 5000, processRuns: 3, steadyMessages: 3000, webhookMessages: 1000, webhookRuns: 3, sqliteCommits: 2000 };
const STEADY_RATE = 100;
const READ_CONNECTIONS = 50;

const say = (line: string) => process.stderr.write(`${line}\n`);
const load = () => os.loadavg().map((l) => l.toFixed(2)).join(' ');
const work = tempDir('feedmail-bench-');

/** A child process that prints one JSON line and exits. */
function runJson<T>(cmd: string, args: string[]): Promise<T> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { cwd: REPO, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.on('data', (d) => (out += d));
    child.stderr.on('data', (d) => (err = (err + d).slice(-4000)));
    child.on('exit', (code) => {
      const last = out.trim().split('\n').at(-1) ?? '';
      if (code !== 0) reject(new Error(`${cmd} ${args[0]} ${args[2] ?? ''} exited ${code}: ${err}`));
      else resolve(JSON.parse(last) as T);
    });
  });
}
const tsx = (script: string, ...args: string[]) => ['--import', 'tsx', script, ...args];

/** A long-running child that prints {"port":N} once listening. */
async function startCeiling(script: string, ...args: string[]): Promise<{ port: number; stop: () => void }> {
  const child = spawn(process.execPath, tsx(script, ...args), { cwd: REPO, stdio: ['ignore', 'pipe', 'inherit'] });
  const port = await new Promise<number>((resolve, reject) => {
    child.stdout.once('data', (d) => resolve((JSON.parse(String(d).split('\n')[0]!) as { port: number }).port));
    child.once('exit', (code) => reject(new Error(`${script} exited ${code}`)));
  });
  return { port, stop: () => child.kill('SIGTERM') };
}

let loadFiles = 0;
const httpLoad = (port: number, requests: LoadRequest[], seconds: number, warmupSeconds = 0, connections = READ_CONNECTIONS) => {
  const options = JSON.stringify({ port, requests, connections, seconds, warmupSeconds });
  if (options.length < 64 * 1024) return runJson<LoadResult>(process.execPath, tsx('bench/lib/http-load.ts', options));
  // Thousands of request paths are too long for a command line: handed over in a file.
  const file = path.join(work, `http-load-${loadFiles++}.json`);
  fs.writeFileSync(file, options);
  return runJson<LoadResult>(process.execPath, tsx('bench/lib/http-load.ts', `@${file}`));
};

interface SendResult { sent: number; acknowledged: number; errors: number; errorSamples: string[]; seconds: number; perSecond: number; p50: number; p99: number; max: number; lastAckEpochMs: number }
/** `rate`: messages per second in all, paced (0: as fast as the server acknowledges). */
const smtpSend = (port: number, dir: string, connections: number, to: string, rate = 0) =>
  runJson<SendResult>('python3', ['bench/lib/smtp_client.py', '127.0.0.1', String(port), dir, String(connections), to, String(rate)]);

function rssMb(pid: number): number {
  try {
    const m = /VmRSS:\s+(\d+) kB/.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) / 1024 : NaN;
  } catch {
    return NaN;
  }
}
/** Samples a process's RSS every 100 ms until stopped; returns the largest. */
function rssSampler(pid: number) {
  let max = rssMb(pid);
  const timer = setInterval(() => (max = Math.max(max, rssMb(pid))), 100);
  return () => {
    clearInterval(timer);
    return Math.max(max, rssMb(pid));
  };
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

interface Row {
  bench: string;
  /** Where feedmail ran, when not on SQLite: "postgres, 1 instance", "postgres, 2 instances". */
  target?: string;
  case: string;
  metric: string;
  /** Medians over the runs, and each run's figure. */
  feedmail: number;
  feedmailRuns: number[];
  ceiling: number | null;
  ceilingRuns: number[];
  ceilingName: string;
  /** Latency percentiles in ms (medians over the runs), where the metric has them. */
  latency?: { p50: number; p99: number; ceilingP50?: number; ceilingP99?: number };
  extra?: Record<string, number | string>;
  loadAverage: string;
}
const rows: Row[] = [];
const footprint: Record<string, number> = {};
let target: Target;
function addRow(r: Omit<Row, 'feedmail' | 'ceiling' | 'loadAverage'>) {
  const split = target.instances > 1 ? { extra: { ...r.extra, 'load split': `over ${target.instances} instances, connections (at least 1 each) and messages shared evenly` } } : {};
  const row = { ...r, ...(target.label ? { target: target.label } : {}), ...split, feedmail: median(r.feedmailRuns), ceiling: r.ceilingRuns.length ? median(r.ceilingRuns) : null, loadAverage: load() };
  rows.push(row);
  const ratio = row.ceiling ? ` = ${(row.feedmail / row.ceiling).toFixed(2)} of ${row.ceilingName} ${row.ceiling.toFixed(1)}` : '';
  say(`  ${row.bench} ${row.case}${target.label ? ` (${target.label})` : ''}: ${row.metric} ${row.feedmail.toFixed(1)}${ratio}${row.latency ? ` (p50 ${row.latency.p50.toFixed(1)} ms, p99 ${row.latency.p99.toFixed(1)} ms)` : ''}`);
}

/** Where a benchmark runs feedmail: SQLite (label ''), or PostgreSQL with 1 or 2 instances on one database. */
interface Target { label: string; postgres: boolean; instances: number }
const SQLITE: Target = { label: '', postgres: false, instances: 1 };
target = SQLITE;

/** A feedmail under benchmark: `server` is the first (or only) instance. */
interface Feedmail {
  server: ServeProcess;
  servers: ServeProcess[];
  startupMs: number;
  /** Messages stored in all: SQLite, the server's own count; PostgreSQL, the entries in the database (whichever instance stored them). */
  stored(): Promise<number>;
  stop(): Promise<void>;
}

const pgDatabases: string[] = [];
function asPgAdmin<T>(f: (client: pg.Client) => Promise<T>): Promise<T> {
  return withPgClient(pgAdminUrl!, f);
}

/** feedmail on the current target: SQLite in a fresh data directory, or target.instances `feedmail serve` on one fresh PostgreSQL database. */
async function startFeedmail(name: string, env: Record<string, string> = {}, nodeArgs: string[] = []): Promise<Feedmail> {
  const started = performance.now();
  let databaseUrl: string | undefined;
  if (target.postgres) {
    const db = `feedmail_bench_${process.pid}_${pgDatabases.length}`;
    await asPgAdmin((c) => c.query(`CREATE DATABASE ${db}`));
    pgDatabases.push(db);
    const url = new URL(pgAdminUrl!);
    url.pathname = `/${db}`;
    databaseUrl = url.toString();
  }
  const servers: ServeProcess[] = [];
  const stop = async () => {
    await Promise.all(servers.map((s) => s.stop()));
    await stores?.close();
  };
  let stores: Stores | undefined;
  try {
    // One after the other: the first migrates the database.
    for (let i = 0; i < target.instances; i++) {
      servers.push(await startServeProcess({
        processes: 1, built: true, dataDir: fs.mkdtempSync(path.join(work, `${name}-`)), nodeArgs: i === 0 ? nodeArgs : [],
        env: {
          FEEDMAIL_FEED_MESSAGES_PER_DAY: '0', ...(databaseUrl ? { FEEDMAIL_DATABASE_URL: databaseUrl } : {}),
          // Instances behind one name, as in a real deployment: the same links, so the same documents and ETags.
          ...(target.instances > 1 ? { FEEDMAIL_BASE_URL: 'http://feeds.bench.example' } : {}),
          ...env,
        },
      }));
    }
    if (databaseUrl) {
      stores = openStores(fs.mkdtempSync(path.join(work, `${name}-count-`)), { databaseUrl, poolMax: 1 });
      await stores.ready();
    }
  } catch (err) {
    await stop();
    throw err;
  }
  const server = servers[0]!;
  return { server, servers, startupMs: performance.now() - started, stop, stored: () => (stores ? stores.app.countAllEntries() : storedCount(server.base)) };
}

/**
 * Runs one load generator per instance at once, each with its share of the connections (at
 * least one) and of the messages in `dir` (every k-th file, linked into `dir-part<i>`), and
 * merges what they measured: counts added, the rate over the longest of them, p50 the mean of
 * theirs, p99 and max the largest.
 */
async function spread<T extends { seconds: number; perSecond: number; p50: number; p99: number }>(
  fm: Feedmail, connections: number, dir: string | undefined, run: (server: ServeProcess, connections: number, dir: string) => Promise<T>,
): Promise<T> {
  const k = fm.servers.length;
  if (k === 1) return run(fm.server, connections, dir ?? '');
  const names = dir ? fs.readdirSync(dir).sort() : [];
  const results = await Promise.all(fm.servers.map((s, i) => {
    const part = dir ? `${dir}-part${i}` : '';
    if (dir && !fs.existsSync(part)) {
      fs.mkdirSync(part);
      names.forEach((n, j) => j % k === i && fs.linkSync(path.join(dir, n), path.join(part, n)));
    }
    return run(s, Math.max(1, Math.round(connections / k)), part);
  }));
  const merged: Record<string, unknown> = { ...results[0] };
  for (const [key, v] of Object.entries(results[0]!)) {
    const all = results.map((r) => (r as Record<string, unknown>)[key]);
    if (Array.isArray(v)) merged[key] = all.flat();
    else if (typeof v !== 'number') continue;
    else if (key === 'p50') merged[key] = all.reduce((a: number, b) => a + (b as number), 0) / k;
    else if (['p90', 'p99', 'max', 'lastAckEpochMs', 'seconds', 'bodyBytes'].includes(key)) merged[key] = Math.max(...(all as number[]));
    else merged[key] = all.reduce((a: number, b) => a + (b as number), 0);
  }
  merged.perSecond = results.reduce((a, r) => a + r.perSecond * r.seconds, 0) / (merged.seconds as number);
  return merged as unknown as T;
}
const portOf = (s: ServeProcess) => Number(new URL(s.base).port);

/** Sends `dir` through smtplib over one connection and waits until `count` entries are in the feed. */
async function fill(server: { smtpPort: number }, feed: CreatedFeed, dir: string, count: number) {
  const r = await smtpSend(server.smtpPort, dir, 1, feed.address);
  if (r.acknowledged !== r.sent) throw new Error(`filling the feed: ${r.errors} errors, e.g. ${r.errorSamples[0]}`);
  await waitForEntries(feed.feeds.json, 'json', Math.min(count, 50), 300_000);
}

/** Raw response body of a GET with the given headers (no decompression), and its headers. */
function rawGet(url: string, headers: Record<string, string>): Promise<{ body: Buffer; headers: http.IncomingHttpHeaders; status: number }> {
  return new Promise((resolve, reject) => {
    http.get(url, { headers }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ body: Buffer.concat(chunks), headers: res.headers, status: res.statusCode ?? 0 }));
    }).on('error', reject);
  });
}

// (1) Feed reads of a 50-entry feed.
async function benchReads() {
  say(`reads: a 50-entry feed of ~20 KB newsletters, ${READ_CONNECTIONS} connections, ${P.readRuns} runs of ${P.readSeconds} s after ${P.readWarmup} s of warm-up (load ${load()})`);
  const fmd = await startFeedmail('reads', {}, cpuProfDir ? ['--cpu-prof', '--cpu-prof-dir', path.resolve(cpuProfDir, 'reads')] : []);
  const { server } = fmd;
  const fp = target.postgres ? {} : footprint;
  fp.startupMs = fmd.startupMs;
  const bare: { stop: () => void }[] = [];
  try {
    await sleep(2000);
    fp.rssIdleMb = rssMb(server.pid);
    const feed = await createFeed(server.base, 'reads');
    const dir = fs.mkdtempSync(path.join(work, 'reads-mail-'));
    writeNewsletters(dir, 50, 'reads', feed.address);
    await fill(server, feed, dir, 50);
    const atomPath = new URL(feed.feeds.atom).pathname;
    const bodies = fs.mkdtempSync(path.join(work, 'reads-bodies-'));
    let etag = '';
    const sizes: Record<string, number> = {};
    for (const enc of ['identity', 'gzip', 'br']) {
      const r = await rawGet(feed.feeds.atom, { 'Accept-Encoding': enc });
      if (r.status !== 200) throw new Error(`GET atom (${enc}) answered ${r.status}`);
      fs.writeFileSync(path.join(bodies, enc), r.body);
      sizes[enc] = r.body.length;
      etag = String(r.headers.etag);
    }
    say(`  Atom document: ${sizes.identity} bytes plain, ${sizes.gzip} gzip, ${sizes.br} br`);
    const ceiling = await startCeiling('bench/lib/bare-http.ts', bodies);
    bare.push(ceiling);
    const cases: { name: string; fm: LoadRequest; bare: LoadRequest }[] = [
      { name: 'plain', fm: { path: atomPath, headers: { 'Accept-Encoding': 'identity' } }, bare: { path: '/', headers: { 'Accept-Encoding': 'identity' } } },
      { name: 'gzip', fm: { path: atomPath, headers: { 'Accept-Encoding': 'gzip' } }, bare: { path: '/', headers: { 'Accept-Encoding': 'gzip' } } },
      { name: 'br', fm: { path: atomPath, headers: { 'Accept-Encoding': 'br' } }, bare: { path: '/', headers: { 'Accept-Encoding': 'br' } } },
      { name: 'If-None-Match (304)', fm: { path: atomPath, headers: { 'Accept-Encoding': 'gzip', 'If-None-Match': etag } }, bare: { path: '/', headers: { 'Accept-Encoding': 'gzip', 'If-None-Match': 'W/"bare-1"' } } },
    ];
    const stopRss = rssSampler(server.pid);
    for (const c of cases) {
      const fm: LoadResult[] = [];
      const ce: LoadResult[] = [];
      // Alternate feedmail and the ceiling run by run, so both see the same moments of a shared machine.
      for (let i = 0; i < P.readRuns; i++) {
        fm.push(await spread(fmd, READ_CONNECTIONS, undefined, (s, connections) => httpLoad(portOf(s), [c.fm], P.readSeconds, P.readWarmup, connections)));
        ce.push(await httpLoad(ceiling.port, [c.bare], P.readSeconds, P.readWarmup));
      }
      const errors = fm.reduce((n, r) => n + r.errors, 0);
      addRow({
        bench: 'reads', case: c.name, metric: 'req/s', feedmailRuns: fm.map((r) => r.perSecond), ceilingRuns: ce.map((r) => r.perSecond), ceilingName: 'bare node:http',
        latency: { p50: median(fm.map((r) => r.p50)), p99: median(fm.map((r) => r.p99)), ceilingP50: median(ce.map((r) => r.p50)), ceilingP99: median(ce.map((r) => r.p99)) },
        extra: { bodyBytes: Math.round(fm[0]!.bodyBytes), errors, statuses: JSON.stringify(fm[0]!.statuses) },
      });
    }
    fp.rssReadsMaxMb = stopRss();
  } finally {
    for (const b of bare) b.stop();
    await fmd.stop();
  }
}

// (1b) Many feeds read round-robin: each request a different feed, so documents are rendered
// (cache misses) and the cache evicts (quick: 1,000 feeds and a 4 MB cache; full: 10,000 feeds, default cache).
async function benchRoundRobin() {
  const feeds = quick ? 1000 : 10_000;
  const env: Record<string, string> = quick ? { FEEDMAIL_CACHE_MAX_BYTES: '4m' } : {};
  say(`reads round-robin: ${feeds} feeds of 10 small entries seeded through the store, gzip, ${READ_CONNECTIONS} connections, ${P.readRuns} runs of ${P.readSeconds} s (load ${load()})`);
  const dataDir = fs.mkdtempSync(path.join(work, 'roundrobin-'));
  const tokens = await seedFeeds(dataDir, feeds, 10);
  const server = await startServeProcess({ processes: 1, built: true, dataDir, env: { FEEDMAIL_FEED_MESSAGES_PER_DAY: '0', ...env } });
  let ceiling: { port: number; stop: () => void } | undefined;
  try {
    const bodies = path.join(work, 'roundrobin-bodies');
    fs.mkdirSync(bodies);
    const sample = await rawGet(`${server.base}/feeds/${tokens[0]}.atom`, { 'Accept-Encoding': 'gzip' });
    if (sample.status !== 200) throw new Error(`GET atom answered ${sample.status}`);
    fs.writeFileSync(path.join(bodies, 'gzip'), sample.body);
    ceiling = await startCeiling('bench/lib/bare-http.ts', bodies);
    // Every run goes through the feeds in order from the first: the first run's requests are all first
    // reads (rendered), later runs find whatever the cache kept of them.
    const requests = tokens.map((t) => ({ path: `/feeds/${t}.atom`, headers: { 'Accept-Encoding': 'gzip' } }));
    const fm: LoadResult[] = [];
    const ce: LoadResult[] = [];
    const stopRss = rssSampler(server.pid);
    for (let i = 0; i < P.readRuns; i++) {
      fm.push(await httpLoad(Number(new URL(server.base).port), requests, P.readSeconds));
      ce.push(await httpLoad(ceiling.port, [{ path: '/', headers: { 'Accept-Encoding': 'gzip' } }], P.readSeconds));
    }
    addRow({
      bench: 'reads', case: `${feeds.toLocaleString('en-US')} feeds round-robin, gzip${quick ? ', 4 MB cache' : ''}`, metric: 'req/s',
      feedmailRuns: fm.map((r) => r.perSecond), ceilingRuns: ce.map((r) => r.perSecond), ceilingName: 'bare node:http, one document of the same size',
      latency: { p50: median(fm.map((r) => r.p50)), p99: median(fm.map((r) => r.p99)), ceilingP50: median(ce.map((r) => r.p50)), ceilingP99: median(ce.map((r) => r.p99)) },
      extra: { bodyBytes: sample.body.length, errors: fm.reduce((n, r) => n + r.errors, 0), rssMaxMb: Math.round(stopRss()), statuses: JSON.stringify(fm[0]!.statuses) },
    });
  } finally {
    ceiling?.stop();
    await server.stop();
  }
}

/** Polls until the server has stored `stored` messages in all (see lib/visible.ts). */
async function visibleAfter(fm: { stored(): Promise<number> }, stored: number, timeoutMs = 600_000, pollMs = 20): Promise<number> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if ((await fm.stored()) >= stored) return Date.now();
    if (Date.now() > deadline) throw new Error(`${stored} messages not stored within ${timeoutMs} ms`);
    await sleep(pollMs);
  }
}

// (2) SMTP ingest and (7) RSS under it.
async function benchSmtp() {
  const n = P.smtpMessages;
  say(`smtp: ${n} x 20 KB newsletters over 1 and 8 smtplib connections (sessions reused), ${P.smtpRuns} runs each (load ${load()})`);
  const sink = await startCeiling('bench/lib/smtp-sink.ts');
  try {
    for (const connections of [1, 8]) {
      const fmd = await startFeedmail(`smtp${connections}`, {}, cpuProfDir && connections === 8 ? ['--cpu-prof', '--cpu-prof-dir', path.resolve(cpuProfDir)] : []);
      const { server } = fmd;
      try {
        const feed = await createFeed(server.base, `smtp ${connections}`);
        const warm = fs.mkdtempSync(path.join(work, `smtp${connections}-warm-`));
        writeNewsletters(warm, 20, `warm-${connections}`, feed.address);
        await fill(server, feed, warm, 20);
        const fm: SendResult[] = [];
        const ce: SendResult[] = [];
        const visible: number[] = [];
        let acknowledged = 20;
        const stopRss = rssSampler(server.pid);
        for (let run = 0; run < P.smtpRuns; run++) {
          const dir = fs.mkdtempSync(path.join(work, `smtp${connections}-run${run}-`));
          writeNewsletters(dir, n, `c${connections}-r${run}`, feed.address);
          const r = await spread(fmd, connections, dir, (s, c, d) => smtpSend(s.smtpPort, d, c, feed.address));
          if (r.errors) say(`  ${r.errors} SMTP errors, e.g. ${r.errorSamples[0]}`);
          fm.push(r);
          acknowledged += r.acknowledged;
          visible.push((await visibleAfter(fmd, acknowledged)) - r.lastAckEpochMs);
          ce.push(await smtpSend(sink.port, dir, connections, 'sink@example.com'));
        }
        const rss = stopRss();
        if (!target.postgres) footprint[`rssSmtp${connections}MaxMb`] = rss;
        addRow({
          bench: 'smtp', case: `${n} x 20 KB, ${connections} connection${connections > 1 ? 's' : ''}`, metric: 'acknowledged msg/s',
          feedmailRuns: fm.map((r) => r.perSecond), ceilingRuns: ce.map((r) => r.perSecond), ceilingName: 'bare SMTP sink',
          latency: { p50: median(fm.map((r) => r.p50)), p99: median(fm.map((r) => r.p99)), ceilingP50: median(ce.map((r) => r.p50)), ceilingP99: median(ce.map((r) => r.p99)) },
          extra: { lastVisibleAfterLastAckMs: Math.round(median(visible)), visibleRuns: visible.join(' '), errors: fm.reduce((a, r) => a + r.errors, 0), rssMaxMb: Math.round(rss) },
        });
      } finally {
        await fmd.stop();
      }
    }
  } finally {
    sink.stop();
  }
}

/** Counts of a Prometheus histogram's cumulative buckets (le → count) in a /metrics text (several instances' texts: added up). */
function buckets(metrics: string, name: string): Map<number, number> {
  const m = new Map<number, number>();
  for (const [, le, n] of metrics.matchAll(new RegExp(`^${name}_bucket\\{le="([^"]+)"\\} (\\d+)`, 'gm'))) {
    const key = le === '+Inf' ? Infinity : Number(le);
    m.set(key, (m.get(key) ?? 0) + Number(n));
  }
  return m;
}
/** The upper bound of the bucket holding the p-th percentile of the observations between two snapshots. */
function bucketPercentile(before: Map<number, number>, after: Map<number, number>, p: number): number {
  const les = [...after.keys()].sort((a, b) => a - b);
  const total = (after.get(Infinity) ?? 0) - (before.get(Infinity) ?? 0);
  for (const le of les) if ((after.get(le)! - (before.get(le) ?? 0)) >= (p / 100) * total) return le;
  return NaN;
}

// (2b) A steady 100 msg/s over one connection: 250-to-stored, from the server's own histogram.
async function benchSteady() {
  const n = P.steadyMessages;
  say(`steady: ${n} x 20 KB at ${STEADY_RATE} msg/s over 1 smtplib connection (load ${load()})`);
  const fmd = await startFeedmail('steady');
  const { server } = fmd;
  // Every instance's histogram: the entry is stored by whichever instance claims its job.
  const metrics = async () => (await Promise.all(fmd.servers.map((s) => fetch(`${s.base}/metrics`).then((r) => r.text())))).join('\n');
  try {
    const feed = await createFeed(server.base, 'steady');
    const dir = fs.mkdtempSync(path.join(work, 'steady-'));
    writeNewsletters(dir, n, 'steady', feed.address);
    const metric = 'feedmail_mail_to_entry_seconds';
    const before = buckets(await metrics(), metric);
    // Over 2 instances: one session to each, each at half the rate.
    const r = await spread(fmd, 1, dir, (s, c, d) => smtpSend(s.smtpPort, d, c, feed.address, STEADY_RATE / fmd.servers.length));
    const visible = (await visibleAfter(fmd, r.acknowledged)) - r.lastAckEpochMs;
    const after = buckets(await metrics(), metric);
    addRow({
      bench: 'smtp', case: `steady ${STEADY_RATE} msg/s, ${n} x 20 KB, 1 connection`, metric: 'acknowledged msg/s', feedmailRuns: [r.perSecond], ceilingRuns: [STEADY_RATE], ceilingName: 'offered rate',
      latency: { p50: r.p50, p99: r.p99 },
      extra: {
        '250-to-stored p50 ≤ (s, histogram bucket)': bucketPercentile(before, after, 50), '250-to-stored p99 ≤ (s, histogram bucket)': bucketPercentile(before, after, 99),
        lastVisibleAfterLastAckMs: Math.round(visible), errors: r.errors,
      },
    });
  } finally {
    await fmd.stop();
  }
}

/** The server's own count of messages stored (journal to entry), or -1 when /metrics did not answer. */
async function storedCount(base: string): Promise<number> {
  const metrics = await fetch(`${base}/metrics`).then((r) => r.text()).catch(() => '');
  const m = /^feedmail_mail_to_entry_seconds_count (\d+)/m.exec(metrics);
  return m ? Number(m[1]) : -1;
}

// (3) Processing throughput: entries stored per second from a full queue.
async function benchProcessing() {
  const n = P.processMessages;
  say(`processing: ${n} x 20 KB newsletters journaled with the job runner off, then stored from the full queue, ${P.processRuns} runs (load ${load()})`);
  const fm: number[] = [];
  const ce: number[] = [];
  const rss: number[] = [];
  const bytes: number[] = [];
  for (let run = 0; run < P.processRuns; run++) {
    const dir = path.join(work, `process-run${run}`);
    // Fill: a server whose runner takes no jobs journals every message and processes none.
    const { server: filler, stop: stopFiller } = await startFeedmail(`process${run}`, { FEEDMAIL_WORKER_CONCURRENCY: '0' });
    let dataDir: string;
    try {
      dataDir = filler.dataDir;
      const feed = await createFeed(filler.base, `process ${run}`);
      writeNewsletters(dir, n, `p-r${run}`, feed.address);
      const r = await smtpSend(filler.smtpPort, dir, 8, feed.address);
      if (r.acknowledged !== n) throw new Error(`filling the queue: ${r.errors} errors, e.g. ${r.errorSamples[0]}`);
    } finally {
      await stopFiller();
    }
    // Drain: the same data directory with the runner on; timed from the first count taken
    // once it is ready until the server counts all n stored.
    const server = await startServeProcess({ processes: 1, built: true, dataDir, nodeArgs: cpuProfDir ? ['--cpu-prof', '--cpu-prof-dir', path.resolve(cpuProfDir, 'processing')] : [], env: { FEEDMAIL_FEED_MESSAGES_PER_DAY: '0', ...processingEnv } });
    try {
      const stopRss = rssSampler(server.pid);
      let first = -1;
      while (first < 0) first = await storedCount(server.base);
      const started = Date.now();
      // Polled every 200 ms: /metrics costs the server a few ms each time.
      const seconds = ((await visibleAfter({ stored: () => storedCount(server.base) }, n, 600_000, 200)) - started) / 1000;
      rss.push(stopRss());
      fm.push((n - first) / seconds);
    } finally {
      await server.stop();
    }
    // What the n newsletters take in app.db (entries, bodies, raw messages, search index) once the server has checkpointed at exit.
    const fileBytes = (f: string) => (fs.existsSync(path.join(dataDir, f)) ? fs.statSync(path.join(dataDir, f)).size : 0);
    bytes.push((fileBytes('app.db') + fileBytes('app.db-wal')) / n);
    const c = await runJson<{ perSecond: number }>(process.execPath, tsx('bench/lib/process-ceiling.ts', dir));
    ce.push(c.perSecond * os.cpus().length);
  }
  footprint.rssProcessingMaxMb = Math.max(...rss);
  addRow({
    bench: 'processing', case: `${n} x 20 KB from a full queue`, metric: 'stored msg/s', feedmailRuns: fm, ceilingRuns: ce,
    ceilingName: `processing alone, 1 thread x ${os.cpus().length} cores, nothing stored`,
    extra: { rssMaxMb: Math.round(Math.max(...rss)), 'app.db bytes per 20 KB newsletter': Math.round(median(bytes)), ...processingEnv },
  });
}

// (5) Search and (6) scale: latency at 10,000 entries and at 1,000,000 (quick: 50,000), seeded through the store (bench/scale.ts).
async function benchScale() {
  const args = quick
    ? ['--entries', '50000', '--feeds', '500', '--first', '10000', '--queries', '20']
    : ['--entries', '1000000', '--feeds', '10000', '--first', '10000', '--queries', '40'];
  say(`scale: search and first reads at 10,000 entries, then at ${args[1]} in ${args[3]} feeds, seeded through the store (load ${load()})`);
  type Stage = { entries: number; feeds: number; bytesPerEntry: number; figures: Record<string, { p50: number; p95: number; n: number }> };
  const { stages } = await runJson<{ stages: Stage[] }>(process.execPath, tsx('bench/scale.ts', ...args));
  const [small, large] = stages;
  if (!small || !large) throw new Error('bench/scale.ts measured fewer than two stages');
  for (const [name, f] of Object.entries(large.figures)) {
    const base = small.figures[name]!;
    addRow({
      bench: 'scale', case: `${name}, ${large.entries.toLocaleString('en-US')} entries in ${large.feeds.toLocaleString('en-US')} feeds`, metric: 'ms p95',
      feedmailRuns: [f.p95], ceilingRuns: [base.p95], ceilingName: `the same at ${small.entries.toLocaleString('en-US')} entries; fraction = growth, target ≤ 2`,
      extra: { p50Ms: Number(f.p50.toFixed(1)), p50MsAtSmall: Number(base.p50.toFixed(1)), queries: f.n },
    });
  }
  addRow({
    bench: 'scale', case: 'app.db bytes per seeded entry (small bodies)', metric: 'bytes', feedmailRuns: [large.bytesPerEntry], ceilingRuns: [], ceilingName: '',
    extra: { atSmall: Math.round(small.bytesPerEntry) },
  });
}

// The durable-commit ceiling.
async function benchSqlite() {
  say(`sqlite: ${P.sqliteCommits} commits of a 20 KB row, WAL, synchronous=FULL, ${P.smtpRuns} runs (load ${load()})`);
  const runs: { perSecond: number; p50: number; p99: number }[] = [];
  for (let i = 0; i < P.smtpRuns; i++) runs.push(await runJson(process.execPath, tsx('bench/lib/sqlite-ceiling.ts', String(P.sqliteCommits), work)));
  addRow({
    bench: 'sqlite', case: 'durable 20 KB commit (bare better-sqlite3)', metric: 'commits/s', feedmailRuns: runs.map((r) => r.perSecond), ceilingRuns: [], ceilingName: '',
    latency: { p50: median(runs.map((r) => r.p50)), p99: median(runs.map((r) => r.p99)) },
  });
}

// (3) Webhook ingest through POST /inbound/raw.
async function benchWebhook() {
  const n = P.webhookMessages;
  const secret = 'bench-webhook-secret-0123456789abcdef';
  say(`webhook: ${n} x 20 KB through POST /inbound/raw over 1 and 8 keep-alive connections, ${P.webhookRuns} runs each (load ${load()})`);
  const ceiling = await startCeiling('bench/lib/bare-http.ts', path.join(work, 'none'));
  try {
    for (const connections of [1, 8]) {
      const fmd = await startFeedmail(`webhook${connections}`, { FEEDMAIL_WEBHOOK_SECRET: secret });
      try {
        const feed = await createFeed(fmd.server.base, `webhook ${connections}`);
        const fm: SendResult[] = [];
        const ce: SendResult[] = [];
        const visible: number[] = [];
        let acknowledged = 0;
        for (let run = 0; run < P.webhookRuns; run++) {
          const dir = fs.mkdtempSync(path.join(work, `webhook${connections}-run${run}-`));
          writeNewsletters(dir, n, `w${connections}-r${run}`, feed.address);
          const client = (port: number, c = connections, d = dir) => runJson<SendResult>(process.execPath, tsx('bench/lib/webhook-client.ts', JSON.stringify({ port, secret, dir: d, connections: c, to: feed.address })));
          const r = await spread(fmd, connections, dir, (s, c, d) => client(portOf(s), c, d));
          if (r.errors) say(`  ${r.errors} webhook errors, e.g. ${r.errorSamples[0]}`);
          fm.push(r);
          acknowledged += r.acknowledged;
          visible.push((await visibleAfter(fmd, acknowledged)) - r.lastAckEpochMs);
          ce.push(await client(ceiling.port));
        }
        addRow({
          bench: 'webhook', case: `${n} x 20 KB, ${connections} connection${connections > 1 ? 's' : ''}`, metric: 'accepted msg/s',
          feedmailRuns: fm.map((r) => r.perSecond), ceilingRuns: ce.map((r) => r.perSecond), ceilingName: 'bare node:http POST',
          latency: { p50: median(fm.map((r) => r.p50)), p99: median(fm.map((r) => r.p99)), ceilingP50: median(ce.map((r) => r.p50)), ceilingP99: median(ce.map((r) => r.p99)) },
          extra: { lastVisibleAfterLastAckMs: Math.round(median(visible)), visibleRuns: visible.join(' '), errors: fm.reduce((a, r) => a + r.errors, 0) },
        });
      } finally {
        await fmd.stop();
      }
    }
  } finally {
    ceiling.stop();
  }
}

const fmt = (v: number | null | undefined, digits = 0) => (v === null || v === undefined || Number.isNaN(v) ? '–' : v.toLocaleString('en-US', { maximumFractionDigits: digits, minimumFractionDigits: digits }));
const range = (runs: number[]) => (runs.length > 1 ? ` (${fmt(Math.min(...runs))}–${fmt(Math.max(...runs))})` : '');

function markdown(env: Record<string, string | number>): string {
  const lines = [
    '# Benchmark results',
    '',
    `Written by \`npm run bench${quick ? ' -- --quick' : ''}\` (bench/run.ts); methodology in [README.md](README.md#npm-run-bench-feedmail-against-the-machines-own-limits). Raw figures: \`${env.json}\`.`,
    '',
    '| | |',
    '| --- | --- |',
    ...Object.entries(env).filter(([k]) => k !== 'json').map(([k, v]) => `| ${k} | ${v} |`),
    '',
    '**The machine is shared** with other work (see the load averages): absolute figures move from run to run, so read each',
    'figure as a fraction of its ceiling, measured in the same run, alternating run by run with feedmail.',
    'Figures are medians over the runs, with the range of the runs in parentheses.',
    '',
    '| benchmark | case | feedmail | ceiling | fraction | feedmail p50 / p99 | ceiling p50 / p99 | notes | load avg (1/5/15 min) |',
    '| --- | --- | ---: | ---: | ---: | --- | --- | --- | --- |',
  ];
  for (const r of rows) {
    const notes = Object.entries(r.extra ?? {}).filter(([k]) => k !== 'statuses' && k !== 'visibleRuns').map(([k, v]) => `${k} ${typeof v === 'number' ? fmt(v, Number.isInteger(v) ? 0 : 2) : v}`).join(', ');
    lines.push(`| ${r.bench} | ${r.case}${r.target ? ` — **${r.target}**` : ''} | ${fmt(r.feedmail)} ${r.metric}${range(r.feedmailRuns)} | ${r.ceiling === null ? '–' : `${fmt(r.ceiling)}${range(r.ceilingRuns)} (${r.ceilingName})`} | ${r.ceiling ? fmt(r.feedmail / r.ceiling, 2) : '–'} | ${r.latency ? `${fmt(r.latency.p50, 1)} / ${fmt(r.latency.p99, 1)} ms` : '–'} | ${r.latency?.ceilingP50 !== undefined ? `${fmt(r.latency.ceilingP50, 1)} / ${fmt(r.latency.ceilingP99, 1)} ms` : '–'} | ${notes} | ${r.loadAverage} |`);
  }
  if (Object.keys(footprint).length) {
    lines.push('', '## Footprint (7)', '', '| | |', '| --- | --- |');
    const names: Record<string, string> = {
      startupMs: 'startup to ready (spawn of dist/cli.js to the "jobs: running" log line), ms', rssIdleMb: 'RSS idle, 2 s after ready, MB', rssReadsMaxMb: 'RSS, largest during the read benchmark, MB',
      rssSmtp1MaxMb: 'RSS, largest during SMTP ingest over 1 connection, MB', rssSmtp8MaxMb: 'RSS, largest during SMTP ingest over 8 connections, MB',
      rssProcessingMaxMb: 'RSS, largest while processing a full queue (benchmark 3), MB',
    };
    for (const [k, v] of Object.entries(footprint)) lines.push(`| ${names[k] ?? k} | ${fmt(v)} |`);
  }
  return `${lines.join('\n')}\n`;
}

/** bench/RESULTS.md: the table of this run, then the notes kept from the previous file. */
function writeResults(env: Record<string, string | number>) {
  // What follows the notes marker (profile evidence, written by hand) is kept from run to run.
  const NOTES = '<!-- notes: kept by bench/run.ts -->';
  const resultsFile = path.join(REPO, 'bench/RESULTS.md');
  const previous = fs.existsSync(resultsFile) ? fs.readFileSync(resultsFile, 'utf8') : '';
  const notes = previous.includes(NOTES) ? previous.slice(previous.indexOf(NOTES)) : `${NOTES}\n`;
  fs.writeFileSync(resultsFile, `${markdown(env)}\n${notes}`);
}

const from = arg('markdown-from');
if (from) {
  // Rewrites bench/RESULTS.md from a recorded JSON file, without running anything.
  const recorded = JSON.parse(fs.readFileSync(from, 'utf8')) as { env: Record<string, string | number>; rows: Row[]; footprint: Record<string, number> };
  rows.push(...recorded.rows);
  Object.assign(footprint, recorded.footprint);
  writeResults(recorded.env);
  fs.rmSync(work, { recursive: true, force: true });
  say(`wrote bench/RESULTS.md from ${from}`);
  process.exit(0);
}

const date = new Date();
const sqliteVersion = (() => {
  const db = new Database(':memory:');
  try {
    return (db.prepare('SELECT sqlite_version() AS v').get() as { v: string }).v;
  } finally {
    db.close();
  }
})();
const env = {
  date: date.toISOString(), mode: MODE, cpus: `${os.cpus().length} x ${os.cpus()[0]?.model ?? '?'}`, node: process.version, sqlite: sqliteVersion,
  'load average at start (1/5/15 min)': load(), 'memory': `${Math.round(os.totalmem() / 2 ** 20)} MB`, json: '',
  ...(withPostgres ? { postgres: await asPgAdmin(async (c) => (await c.query<{ v: string }>('SELECT version() AS v')).rows[0]!.v.split(' on ')[0]!) } : {}),
};
if (!fs.existsSync(path.join(REPO, 'dist/cli.js'))) {
  say('dist/cli.js is missing: run `npm run build` first (npm run bench does)');
  process.exit(2);
}
say(`bench ${MODE}: ${env.cpus}, node ${env.node}, SQLite ${env.sqlite}, load ${env['load average at start (1/5/15 min)']}`);
const want = (name: string) => !only || only.includes(name);
/** The reads, smtp, steady and webhook benchmarks run once per target, their rows side by side. */
const targets: Target[] = [SQLITE, ...(withPostgres ? [{ label: 'postgres, 1 instance', postgres: true, instances: 1 }, { label: 'postgres, 2 instances', postgres: true, instances: 2 }] : [])];
const onEachTarget = async (bench: () => Promise<void>) => {
  for (const t of targets) {
    target = t;
    await bench();
  }
  target = SQLITE;
};
try {
  if (want('reads') || want('footprint')) await onEachTarget(benchReads);
  if (want('reads') || want('roundrobin')) await benchRoundRobin();
  if (want('smtp')) {
    await onEachTarget(benchSmtp);
    await benchSqlite();
  }
  if (want('smtp') || want('steady')) await onEachTarget(benchSteady);
  if (want('webhook')) await onEachTarget(benchWebhook);
  if (want('processing')) await benchProcessing();
  if (want('scale')) await benchScale();
} finally {
  fs.rmSync(work, { recursive: true, force: true });
  if (pgDatabases.length) await asPgAdmin(async (c) => {
    for (const db of pgDatabases) await c.query(`DROP DATABASE IF EXISTS ${db} WITH (FORCE)`);
  });
}
const stamp = date.toISOString().slice(0, 16).replace(':', '');
const json = `bench/results/bench-${stamp}-${MODE}.json`;
env.json = json;
fs.writeFileSync(path.join(REPO, json), `${JSON.stringify({ env, rows, footprint }, null, 2)}\n`);
writeResults(env);
say(`wrote ${json} and bench/RESULTS.md`);
