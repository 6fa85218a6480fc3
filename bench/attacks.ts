/**
 * Event-loop delay under the resource attacks of security review F1, F5 and F6,
 * against any source tree (this checkout, or a worktree of an older commit), so the
 * same attack can be measured before and after the hardening.
 *
 * Starts `node --import tsx <tree>/src/cli.ts serve` as a child process with its data
 * in a temporary directory (a fresh server per attack), runs the attack over SMTP and
 * HTTP from 127.0.0.1, and meanwhile polls GET /healthz from a worker thread every
 * ~20 ms, so the bench's own work (building and sending megabytes) does not delay the
 * probe. Where the server exports feedmail_event_loop_delay_seconds, /metrics is read
 * just before and just after the attack (each scrape resets that histogram), so the
 * figure covers exactly the attack.
 *
 *   node --import tsx bench/attacks.ts [--tree /tmp/feedmail-before] [--attack all] [--scale 1]
 */
import { spawn, execFileSync, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { Worker } from 'node:worker_threads';
import nodemailer from 'nodemailer';
import { openStores } from '../src/store/index.js';
import { INGEST_TASK } from '../src/store/journal.js';
import { createFeed, freePort, type CreatedFeed } from '../test/support/helpers.js';

const REPO = fileURLToPath(new URL('..', import.meta.url));
const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));
const seconds = (ms: number) => `${(ms / 1000).toFixed(1)} s`;
const size = (bytes: number) => bytes >= 2 ** 20 ? `${(bytes / 2 ** 20).toFixed(1)} MiB` : `${(bytes / 1024).toFixed(1)} KiB`;

type AttackName = 'f1' | 'f5' | 'f6';

interface Options {
  tree: string;
  attacks: AttackName[];
  /** Multiplies the byte sizes and the nesting depth below. */
  scale: number;
  f1Entries: number;
  f1EntryMiB: number;
  f1Clients: number;
  f1Seconds: number;
  f5Bombs: number;
  f5Depth: number;
  f6Feeds: number;
  f6HtmlMiB: number;
  /** Bound of every wait (ingest, visibility, drain), in seconds. */
  timeoutSeconds: number;
  log: (line: string) => void;
}

// ---------------------------------------------------------------- the server

/** One `feedmail serve` child process from `tree`, with its data in a temporary directory. */
class Server {
  readonly dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'feedmail-attacks-'));
  base = '';
  smtpPort = 0;
  errorLines = 0;
  #child: ChildProcess | null = null;
  #exited: Promise<void> = Promise.resolve();
  #stderrTail = '';
  #stopping = false;
  crashed = '';

  constructor(private readonly tree: string) {}

  get pid(): number | undefined {
    return this.#child?.pid;
  }

  async start(): Promise<void> {
    const [httpPort, smtpPort] = [await freePort(), await freePort()];
    this.base = `http://127.0.0.1:${httpPort}`;
    this.smtpPort = smtpPort;
    const child = spawn(process.execPath, ['--import', 'tsx', path.join(this.tree, 'src/cli.ts'), 'serve'], {
      cwd: this.tree,
      env: {
        ...process.env,
        FEEDMAIL_DATA_DIR: this.dataDir,
        FEEDMAIL_HTTP_HOST: '127.0.0.1',
        FEEDMAIL_HTTP_PORT: String(httpPort),
        FEEDMAIL_SMTP_HOST: '127.0.0.1',
        FEEDMAIL_SMTP_PORT: String(smtpPort),
        FEEDMAIL_ALLOW_UNSAFE_STORAGE: 'true',
        FEEDMAIL_MIN_FREE_BYTES: '0',
        FEEDMAIL_FEEDS_PER_HOUR_PER_CLIENT: '0',
        FEEDMAIL_LOG_LEVEL: 'warn',
      },
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    this.#child = child;
    child.stderr!.setEncoding('utf8');
    child.stderr!.on('data', (chunk: string) => {
      this.#stderrTail = (this.#stderrTail + chunk).slice(-3000);
      // pino level 50 is error, 60 fatal.
      this.errorLines += chunk.match(/"level":(50|60)/g)?.length ?? 0;
    });
    this.#exited = new Promise((resolve) => {
      child.once('exit', (code, signal) => {
        if (!this.#stopping) this.crashed = `server exited on its own (code ${code}, signal ${signal}): ${this.#stderrTail.slice(-600)}`;
        this.#child = null;
        resolve();
      });
    });
    const deadline = Date.now() + 60_000;
    for (;;) {
      if (!this.#child) throw new Error(`server exited during startup:\n${this.#stderrTail}`);
      try {
        if ((await fetch(`${this.base}/healthz`)).status === 200) return;
      } catch {
        // not listening yet
      }
      if (Date.now() > deadline) throw new Error(`server did not answer /healthz within 60 s:\n${this.#stderrTail}`);
      await sleep(100);
    }
  }

  /** SIGTERM, and SIGKILL if it has not exited 20 s later; then the data directory goes. */
  async stop(): Promise<void> {
    const child = this.#child;
    if (child) {
      this.#stopping = true;
      child.kill('SIGTERM');
      const killed = setTimeout(() => child.kill('SIGKILL'), 20_000);
      await this.#exited;
      clearTimeout(killed);
    }
    fs.rmSync(this.dataDir, { recursive: true, force: true });
  }

  /** Peak resident memory of the server process so far (VmHWM), in MiB. */
  peakRssMiB(): number | undefined {
    if (!this.pid) return undefined;
    try {
      const m = /VmHWM:\s+(\d+) kB/.exec(fs.readFileSync(`/proc/${this.pid}/status`, 'utf8'));
      return m ? Number(m[1]) / 1024 : undefined;
    } catch {
      return undefined;
    }
  }

  /** The server's own event-loop delay since the previous scrape, or undefined when it does not export it. */
  async eventLoopDelay(): Promise<{ p99: number; max: number } | undefined> {
    const text = await (await fetch(`${this.base}/metrics`)).text();
    const value = (labels: string) => {
      const line = text.split('\n').find((l) => l.startsWith(`feedmail_event_loop_delay_seconds${labels} `));
      return line === undefined ? undefined : Number(line.slice(line.lastIndexOf(' ') + 1)) * 1000;
    };
    const p99 = value('{quantile="0.99"}');
    const max = value('{quantile="1"}');
    return p99 === undefined || max === undefined ? undefined : { p99, max };
  }

  /**
   * Ingest jobs not yet done, and those failed for good, read from queue.db read-only:
   * polling /metrics instead would reset the event-loop histogram in the middle of the attack.
   */
  async ingestJobs(): Promise<{ pending: number; failed: number }> {
    const stores = openStores(this.dataDir, { readOnly: true });
    try {
      const q = await stores.queue.queueStats(INGEST_TASK);
      return { pending: q.ready + q.claimed, failed: q.failed };
    } finally {
      await stores.close();
    }
  }

  /** Resolves once every acknowledged message's ingest job has finished (or failed), within the bound. */
  async drained(timeoutMs: number): Promise<{ ms: number; failed: number } | undefined> {
    const t0 = Date.now();
    while (Date.now() - t0 < timeoutMs) {
      const jobs = await this.ingestJobs();
      if (jobs.pending === 0) return { ms: Date.now() - t0, failed: jobs.failed };
      await sleep(100);
    }
    return undefined;
  }
}

// ---------------------------------------------------------------- the probe

interface LatencySummary {
  count: number;
  errors: number;
  /** The slowest probes, as [ms after the probe started, latency in ms], slowest first. */
  slowest: [number, number][];
  p50: number;
  p99: number;
  max: number;
}

/** Polls /healthz every `intervalMs` from a worker thread; timeouts and refused connections count as errors. */
const PROBE = `
const http = require('node:http');
const { parentPort, workerData } = require('node:worker_threads');
const { url, intervalMs, maxMs, timeoutMs } = workerData;
let stopped = false;
parentPort.on('message', () => { stopped = true; });
const samples = [];
const starts = [];
let errors = 0;
const origin = performance.now();
const probe = () => new Promise((resolve) => {
  const t0 = performance.now();
  const req = http.get(url, { agent: false, timeout: timeoutMs }, (res) => {
    res.resume();
    res.on('end', () => resolve(res.statusCode === 200 ? performance.now() - t0 : -1));
  });
  req.on('timeout', () => req.destroy(new Error('timeout')));
  req.on('error', () => resolve(-1));
});
(async () => {
  const end = Date.now() + maxMs;
  while (!stopped && Date.now() < end) {
    const t0 = performance.now();
    const ms = await probe();
    if (ms < 0) errors++; else { samples.push(ms); starts.push(t0 - origin); }
    const wait = intervalMs - (performance.now() - t0);
    if (wait > 0) await new Promise((r) => setTimeout(r, wait));
  }
  parentPort.postMessage({ samples, starts, errors });
})();
`;

class HealthProbe {
  #worker: Worker;
  #result: Promise<{ samples: number[]; starts: number[]; errors: number }>;

  constructor(base: string, maxMs: number) {
    this.#worker = new Worker(PROBE, { eval: true, workerData: { url: `${base}/healthz`, intervalMs: 20, maxMs, timeoutMs: 60_000 } });
    this.#result = new Promise((resolve, reject) => {
      this.#worker.once('message', resolve);
      this.#worker.once('error', reject);
    });
  }

  async stop(): Promise<LatencySummary> {
    this.#worker.postMessage('stop');
    const { samples, starts, errors } = await this.#result;
    await this.#worker.terminate();
    const slowest = samples.map((ms, i): [number, number] => [starts[i]!, ms]).sort((a, b) => b[1] - a[1]).slice(0, 3);
    return { ...summarize(samples), errors, slowest };
  }
}

function summarize(samples: number[]): Omit<LatencySummary, 'errors' | 'slowest'> {
  const sorted = [...samples].sort((a, b) => a - b);
  // Nearest rank: the smallest sample with at least q of all samples at or below it.
  const q = (p: number) => sorted.length === 0 ? NaN : sorted[Math.min(sorted.length - 1, Math.ceil(p * sorted.length) - 1)]!;
  return { count: sorted.length, p50: q(0.5), p99: q(0.99), max: sorted.length ? sorted[sorted.length - 1]! : NaN };
}

// ---------------------------------------------------------------- mail

function transport(port: number) {
  return nodemailer.createTransport({
    host: '127.0.0.1', port, secure: false, ignoreTLS: true, pool: false,
    connectionTimeout: 30_000, greetingTimeout: 30_000, socketTimeout: 300_000,
  });
}

async function send(port: number, to: string[], raw: string): Promise<void> {
  const t = transport(port);
  try {
    const info = await t.sendMail({ envelope: { from: 'attacker@example.com', to }, raw });
    if (!/^250[ -]/.test(info.response)) throw new Error(`unexpected SMTP reply: ${info.response}`);
  } finally {
    t.close();
  }
}

/** An HTML message whose body is base64 (76-character lines), as in the review's reproductions. */
function base64Html(subject: string, html: string): string {
  const b64 = Buffer.from(html).toString('base64').replace(/.{76}/g, '$&\r\n');
  return `Subject: ${subject}\r\nContent-Type: text/html\r\nContent-Transfer-Encoding: base64\r\n\r\n${b64}\r\n`;
}

/** `unit` repeated and cut to exactly `bytes` characters (ASCII). */
function filler(unit: string, bytes: number): string {
  return unit.repeat(Math.ceil(bytes / unit.length)).slice(0, bytes);
}

// ---------------------------------------------------------------- attacks

interface AttackResult {
  attack: AttackName;
  /** What the attack was, at this scale. */
  scale: string;
  idle: LatencySummary;
  healthz: LatencySummary;
  /** The server's own event-loop delay over the attack, in ms; undefined when not exported. */
  serverDelay?: { p99: number; max: number };
  windowMs: number;
  /** Attack-specific figures, as label and value. */
  figures: [string, string][];
  /** The attack-specific figure for the final table. */
  headline: string;
  peakRssMiB?: number;
  serverErrors: number;
  crashed: string;
}

/** Starts a server, sets the attack up, measures idle /healthz for 2 s, then measures `attack` with the probe running. */
async function measure(
  opts: Options,
  attack: AttackName,
  scale: string,
  setup: (server: Server) => Promise<void>,
  run: (server: Server, figures: [string, string][]) => Promise<string>,
  /** Checks that must not count as attack load, run after the window closes; returns the headline. */
  afterwards?: (server: Server, figures: [string, string][]) => Promise<string>,
): Promise<AttackResult> {
  const server = new Server(opts.tree);
  const figures: [string, string][] = [];
  try {
    await server.start();
    opts.log(`${attack}: server on ${server.base}, SMTP ${server.smtpPort}; ${scale}`);
    await setup(server);
    const idleProbe = new HealthProbe(server.base, 10_000);
    await sleep(2000);
    const idle = await idleProbe.stop();
    await server.eventLoopDelay(); // resets the server's histogram: the next read covers the attack only
    const probe = new HealthProbe(server.base, opts.timeoutSeconds * 1000 * 2);
    const t0 = Date.now();
    const progress = setInterval(() => opts.log(`  ${attack}: ${seconds(Date.now() - t0)} into the attack`), 10_000);
    let headline: string;
    try {
      headline = await run(server, figures);
    } finally {
      clearInterval(progress);
    }
    const windowMs = Date.now() - t0;
    const healthz = await probe.stop();
    const serverDelay = server.crashed ? undefined : await server.eventLoopDelay();
    if (afterwards && !server.crashed) headline = await afterwards(server, figures);
    return { attack, scale, idle, healthz, serverDelay, windowMs, figures, headline, peakRssMiB: server.peakRssMiB(), serverErrors: server.errorLines, crashed: server.crashed };
  } finally {
    await server.stop();
  }
}

/** F1: a feed with a few huge entries, fetched by several clients at once (HEAD and GET, Accept-Encoding: identity). */
async function attackF1(opts: Options): Promise<AttackResult> {
  const entryBytes = Math.round(opts.f1EntryMiB * opts.scale * 2 ** 20);
  const scale = `${opts.f1Entries} entries of ${(entryBytes / 2 **20).toFixed(1)} MiB, ${opts.f1Clients} clients for ${opts.f1Seconds} s`;
  let feed!: CreatedFeed;
  let documentBytes = 0;
  let ingestMs = 0;
  return measure(opts, 'f1', scale, async (server) => {
    feed = await createFeed(server.base, 'big');
    const t0 = Date.now();
    for (let k = 0; k < opts.f1Entries; k++) {
      await send(server.smtpPort, [feed.address], base64Html(`big ${k}`, `<p>${filler(`lorem ipsum ${k} dolor sit amet `, entryBytes)}</p>`));
      opts.log(`  f1: sent entry ${k + 1}/${opts.f1Entries}`);
    }
    const drained = await server.drained(opts.timeoutSeconds * 1000);
    if (!drained) throw new Error(`f1: ingest did not finish within ${opts.timeoutSeconds} s`);
    ingestMs = Date.now() - t0;
    opts.log(`  f1: ingested in ${seconds(ingestMs)} (${drained.failed} failed)`);
    // Also warms whatever the server caches, for both trees alike.
    documentBytes = (await request(feed.feeds.atom, 'GET', opts.timeoutSeconds * 1000)).bytes;
    opts.log(`  f1: Atom document ${documentBytes} bytes`);
  }, async (_server, figures) => {
    const kinds: [string, 'HEAD' | 'GET'][] = [[feed.feeds.atom, 'HEAD'], [feed.feeds.atom, 'GET'], [feed.feeds.rss, 'HEAD'], [feed.feeds.json, 'GET']];
    const end = Date.now() + opts.f1Seconds * 1000;
    const times: number[] = [];
    let failures = 0;
    let next = 0;
    const client = async () => {
      while (Date.now() < end) {
        const [url, method] = kinds[next++ % kinds.length]!;
        const r = await request(url, method, opts.timeoutSeconds * 1000);
        if (r.status === 200) {
          times.push(r.ms);
        } else {
          failures++;
          await sleep(100);
        }
      }
    };
    const t0 = Date.now();
    await Promise.all(Array.from({ length: opts.f1Clients }, client));
    const elapsed = (Date.now() - t0) / 1000;
    const t = summarize(times);
    figures.push(
      ['Atom document (GET, identity)', size(documentBytes)],
      ['feed requests answered', `${t.count} in ${elapsed.toFixed(1)} s = ${(t.count / elapsed).toFixed(1)}/s (${failures} failed)`],
      ['feed request time p50 / max', `${fmtMs(t.p50)} / ${fmtMs(t.max)}`],
      ['ingest before the attack', seconds(ingestMs)],
    );
    return `document ${size(documentBytes)}, ${(t.count / elapsed).toFixed(1)} req/s`;
  });
}

/** One HTTP request with Accept-Encoding: identity; the body is counted and discarded. */
function request(url: string, method: 'GET' | 'HEAD', timeoutMs: number): Promise<{ status: number; bytes: number; ms: number }> {
  return new Promise((resolve) => {
    const t0 = performance.now();
    const req = http.request(url, { method, agent: false, timeout: timeoutMs, headers: { 'Accept-Encoding': 'identity' } }, (res) => {
      let bytes = 0;
      res.on('data', (chunk: Buffer) => { bytes += chunk.length; });
      res.on('end', () => resolve({ status: res.statusCode ?? 0, bytes, ms: performance.now() - t0 }));
      res.on('error', () => resolve({ status: 0, bytes, ms: performance.now() - t0 }));
    });
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', () => resolve({ status: 0, bytes: 0, ms: performance.now() - t0 }));
    req.end();
  });
}

/** F5: nested-div bombs to one feed, then a legitimate message to another, timed until it is in the victim's JSON feed. */
async function attackF5(opts: Options): Promise<AttackResult> {
  const depth = Math.round(opts.f5Depth * opts.scale);
  const scale = `${opts.f5Bombs} messages of ${depth} nested <div>s (${((depth * 11) / 2 ** 20).toFixed(2)} MiB each), then 1 legitimate message to another feed`;
  let attacker!: CreatedFeed;
  let victim!: CreatedFeed;
  const bomb = 'Subject: nested\r\nContent-Type: text/html\r\n\r\n' + '<div>'.repeat(depth) + 'x' + '</div>'.repeat(depth);
  return measure(opts, 'f5', scale, async (server) => {
    attacker = await createFeed(server.base, 'attacker');
    victim = await createFeed(server.base, 'victim');
  }, async (server, figures) => {
    const t0 = Date.now();
    for (let i = 0; i < opts.f5Bombs; i++) await send(server.smtpPort, [attacker.address], `${bomb}\r\n${i}\r\n`);
    await send(server.smtpPort, [victim.address], 'Subject: legit\r\n\r\nhello\r\n');
    const sentMs = Date.now() - t0;
    opts.log(`  f5: all sent after ${seconds(sentMs)}`);
    let visibleMs: number | undefined;
    while (Date.now() - t0 < opts.timeoutSeconds * 1000) {
      const res = await fetch(victim.feeds.json);
      const doc = res.status === 200 ? (await res.json()) as { items: { title?: string }[] } : { items: [] };
      if (doc.items.some((item) => item.title === 'legit')) {
        visibleMs = Date.now() - t0;
        break;
      }
      await sleep(200);
    }
    opts.log(`  f5: legitimate message ${visibleMs === undefined ? 'not visible' : `visible after ${seconds(visibleMs)}`}`);
    const drained = await server.drained(Math.max(0, opts.timeoutSeconds * 1000 - (Date.now() - t0)));
    figures.push(
      ['legitimate message visible in the victim JSON feed', visibleMs === undefined ? `not within ${opts.timeoutSeconds} s` : `${seconds(visibleMs)} after the first bomb was sent`],
      ['sending the bombs and the message took', seconds(sentMs)],
      ['all ingest jobs done', drained ? `${seconds(Date.now() - t0)} after the first bomb (${drained.failed} failed for good)` : `not within ${opts.timeoutSeconds} s`],
    );
    return visibleMs === undefined ? `legit not visible in ${opts.timeoutSeconds} s` : `legit visible after ${seconds(visibleMs)}`;
  });
}

/** F6: one big HTML message to many feeds, timed until every feed has its entry. */
async function attackF6(opts: Options): Promise<AttackResult> {
  const htmlBytes = Math.round(opts.f6HtmlMiB * opts.scale * 2 ** 20);
  const raw = base64Html('amp 0', `<p>${filler('dolor sit amet 0 lorem ipsum ', htmlBytes)}</p>`);
  const scale = `1 message (${(raw.length / 2 ** 20).toFixed(1)} MiB, ${(htmlBytes / 2 ** 20).toFixed(1)} MiB of HTML) to ${opts.f6Feeds} feeds`;
  const feeds: CreatedFeed[] = [];
  let doneMs = 0;
  return measure(opts, 'f6', scale, async (server) => {
    for (let i = 0; i < opts.f6Feeds; i++) feeds.push(await createFeed(server.base, `att${i}`));
  }, async (server, figures) => {
    const t0 = Date.now();
    await send(server.smtpPort, feeds.map((f) => f.address), raw);
    const ackMs = Date.now() - t0;
    opts.log(`  f6: acknowledged after ${seconds(ackMs)}`);
    const drained = await server.drained(opts.timeoutSeconds * 1000);
    doneMs = Date.now() - t0;
    figures.push(['SMTP acknowledgement (250)', `${seconds(ackMs)} after the start of the transaction`]);
    return drained ? `ingest done after ${seconds(doneMs)}` : `not done in ${opts.timeoutSeconds} s`;
  }, async (server, figures) => {
    // Read the feeds after the window, once the ingest job is done: polling 20 documents of
    // several MB each during it would be an F1 attack of its own and inflate the figures measured.
    const jobs = await server.ingestJobs();
    let visible = 0;
    for (const feed of feeds) {
      const res = await fetch(feed.feeds.json);
      const doc = res.status === 200 ? (await res.json()) as { items: { title?: string }[] } : { items: [] };
      if (doc.items.some((item) => item.title === 'amp 0')) visible++;
    }
    const done = jobs.pending === 0;
    figures.push([`entries visible in the ${opts.f6Feeds} JSON feeds`, done
      ? `${visible}/${opts.f6Feeds}, ingest done ${seconds(doneMs)} after the start of sending (${jobs.failed} failed for good); feeds read after the window`
      : `ingest not done within ${opts.timeoutSeconds} s; ${visible}/${opts.f6Feeds} visible`]);
    return done ? `${visible}/${opts.f6Feeds} visible after ${seconds(doneMs)}` : `not done in ${opts.timeoutSeconds} s`;
  });
}

// ---------------------------------------------------------------- output

const fmtMs = (ms: number | undefined) => ms === undefined || Number.isNaN(ms) ? 'n/a' : ms >= 1000 ? `${(ms / 1000).toFixed(2)} s` : `${ms.toFixed(1)} ms`;

function formatResult(r: AttackResult): string {
  const lines = [
    `${r.attack.toUpperCase()}: ${r.scale}`,
    `  attack window                          ${seconds(r.windowMs)}`,
    `  /healthz idle (2 s before)             p50 ${fmtMs(r.idle.p50)}, p99 ${fmtMs(r.idle.p99)}, max ${fmtMs(r.idle.max)} (${r.idle.count} samples)`,
    `  /healthz during the attack             p50 ${fmtMs(r.healthz.p50)}, p99 ${fmtMs(r.healthz.p99)}, max ${fmtMs(r.healthz.max)} (${r.healthz.count} samples, ${r.healthz.errors} errors)`,
    `  slowest /healthz (when: into the window) ${r.healthz.slowest.map(([at, ms]) => `${fmtMs(ms)} at ${seconds(at)}`).join(', ')}`,
    `  server event-loop delay (/metrics)     p99 ${fmtMs(r.serverDelay?.p99)}, max ${fmtMs(r.serverDelay?.max)}`,
    ...r.figures.map(([label, value]) => `  ${label.padEnd(38)} ${value}`),
    `  server peak RSS (VmHWM)                ${r.peakRssMiB === undefined ? 'n/a' : `${r.peakRssMiB.toFixed(0)} MiB`}`,
    `  server error log lines                 ${r.serverErrors}`,
  ];
  if (r.crashed) lines.push(`  CRASH: ${r.crashed}`);
  return lines.join('\n');
}

function formatTable(results: AttackResult[]): string {
  const head = ['attack', 'window', 'healthz n', 'p50', 'p99', 'max', 'errors', 'loop p99', 'loop max', 'attack figure'];
  const rows = results.map((r) => [
    r.attack.toUpperCase(), seconds(r.windowMs), String(r.healthz.count), fmtMs(r.healthz.p50), fmtMs(r.healthz.p99), fmtMs(r.healthz.max),
    String(r.healthz.errors), fmtMs(r.serverDelay?.p99), fmtMs(r.serverDelay?.max), r.headline,
  ]);
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((row) => row[i]!.length)));
  const line = (cells: string[]) => `| ${cells.map((c, i) => c.padEnd(widths[i]!)).join(' | ')} |`;
  return [line(head), `|${widths.map((w) => '-'.repeat(w + 2)).join('|')}|`, ...rows.map(line)].join('\n');
}

function treeDescription(tree: string): string {
  try {
    const commit = execFileSync('git', ['-C', tree, 'rev-parse', '--short', 'HEAD'], { encoding: 'utf8' }).trim();
    const dirty = execFileSync('git', ['-C', tree, 'status', '--porcelain', '--untracked-files=no', '--', 'src'], { encoding: 'utf8' }).trim();
    return `${tree} at ${commit}${dirty ? ` with uncommitted changes in src/ (${dirty.split('\n').length} files)` : ''}`;
  } catch {
    return `${tree} (not a git checkout)`;
  }
}

const HELP = `Usage: node --import tsx bench/attacks.ts [options]

Measures the event-loop delay a user sees (GET /healthz every ~20 ms, from a worker
thread) and, where /metrics exports it, the server's own event-loop delay, while the
resource attacks of security review F1, F5 and F6 run against a real feedmail server
started from a source tree (node --import tsx <tree>/src/cli.ts serve, a fresh data
directory and fresh ports for each attack, everything on 127.0.0.1).

  F1  a feed with a few huge entries, fetched repeatedly by several clients
      (HEAD and GET of Atom, RSS and JSON, Accept-Encoding: identity)
  F5  messages of deeply nested <div>s to one feed, then a legitimate message to
      another feed, timed until it is in that feed's JSON document
  F6  one big HTML message to many feeds, timed until every feed has its entry

Options:
  --tree PATH        source tree to run (default: this checkout)
  --attack NAME      f1, f5, f6 or all (default all)
  --scale X          multiplies the sizes below (entry MiB, depth, HTML MiB; default 1)
  --f1-entries N     entries in the F1 feed (default 5)
  --f1-entry-mib N   size of each F1 entry's HTML (default 16)
  --f1-clients N     concurrent F1 clients (default 3)
  --f1-seconds N     how long the F1 clients fetch (default 15)
  --f5-bombs N       nested-div messages (default 3)
  --f5-depth N       nesting depth of each (default 150000)
  --f6-feeds N       recipients of the F6 message (default 20)
  --f6-html-mib N    HTML size of the F6 message (default 8)
  --timeout S        bound of every wait: ingest, visibility, drain (default 300)
  --help             show this help
`;

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      tree: { type: 'string', default: REPO },
      attack: { type: 'string', default: 'all' },
      scale: { type: 'string', default: '1' },
      'f1-entries': { type: 'string', default: '5' },
      'f1-entry-mib': { type: 'string', default: '16' },
      'f1-clients': { type: 'string', default: '3' },
      'f1-seconds': { type: 'string', default: '15' },
      'f5-bombs': { type: 'string', default: '3' },
      'f5-depth': { type: 'string', default: '150000' },
      'f6-feeds': { type: 'string', default: '20' },
      'f6-html-mib': { type: 'string', default: '8' },
      timeout: { type: 'string', default: '300' },
      help: { type: 'boolean', default: false },
    },
  });
  if (values.help) {
    process.stdout.write(HELP);
    return;
  }
  const num = (name: keyof typeof values, min: number, max: number): number => {
    const v = Number(values[name]);
    if (!Number.isFinite(v) || v < min || v > max) {
      process.stderr.write(`attacks: --${name} must be a number from ${min} to ${max}, got "${String(values[name])}"\n`);
      process.exit(2);
    }
    return v;
  };
  const attack = values.attack!;
  if (!['f1', 'f5', 'f6', 'all'].includes(attack)) {
    process.stderr.write(`attacks: --attack must be f1, f5, f6 or all, got "${attack}"\n`);
    process.exit(2);
  }
  const tree = path.resolve(values.tree!);
  if (!fs.existsSync(path.join(tree, 'src/cli.ts'))) {
    process.stderr.write(`attacks: ${tree} has no src/cli.ts\n`);
    process.exit(2);
  }
  const opts: Options = {
    tree,
    attacks: attack === 'all' ? ['f1', 'f5', 'f6'] : [attack as AttackName],
    scale: num('scale', 0.001, 10),
    f1Entries: num('f1-entries', 1, 50),
    f1EntryMiB: num('f1-entry-mib', 0.001, 24),
    f1Clients: num('f1-clients', 1, 20),
    f1Seconds: num('f1-seconds', 1, 600),
    f5Bombs: num('f5-bombs', 0, 50),
    f5Depth: num('f5-depth', 1, 2_000_000),
    f6Feeds: num('f6-feeds', 1, 50),
    f6HtmlMiB: num('f6-html-mib', 0.001, 18),
    timeoutSeconds: num('timeout', 1, 3600),
    log: (line) => process.stdout.write(`${line}\n`),
  };
  const load = () => os.loadavg().map((l) => l.toFixed(2)).join(' ');
  process.stdout.write([
    `attacks ${new Date().toISOString()} node ${process.version}, ${os.cpus().length} CPU(s), ${os.cpus()[0]?.model ?? ''}`,
    `tree: ${treeDescription(tree)}`,
    `scale ${opts.scale}; load average at start ${load()}`,
    '',
  ].join('\n'));
  const results: AttackResult[] = [];
  for (const name of opts.attacks) {
    const started = load();
    const r = await (name === 'f1' ? attackF1 : name === 'f5' ? attackF5 : attackF6)(opts);
    results.push(r);
    process.stdout.write(`${formatResult(r)}\n  load average before / after            ${started} / ${load()}\n\n`);
  }
  process.stdout.write(`results (healthz and loop figures during the attack window)\n${formatTable(results)}\n`);
  if (results.some((r) => r.crashed)) process.exitCode = 1;
}

const invokedDirectly = process.argv[1] !== undefined && fs.realpathSync(process.argv[1]) === fileURLToPath(import.meta.url);
if (invokedDirectly) {
  main().catch((err: unknown) => {
    process.stderr.write(`attacks: ${(err as Error)?.stack ?? String(err)}\n`);
    process.exit(1);
  });
}
