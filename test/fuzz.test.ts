/**
 * Deterministic mutation fuzzing of the mail pipeline: every fixture, mutated in ways
 * real mail breaks (truncation, bit rot, lost or doubled boundaries, bad headers, wrong
 * charsets, hostile HTML, deep nesting), must render without an exception, in bounded
 * time, to HTML with nothing executable in it and no secret left after redaction.
 *
 * The many cases run through renderMessage (parse + sanitize + confirm), split over one
 * worker thread per core: this same file, loaded in a worker, runs its share of the cases
 * and reports back. A sample also goes through RenderPool, the path ingest takes.
 * FUZZ_SEED and FUZZ_CASES reproduce or extend a run.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import { describe, it } from 'node:test';
import { isMainThread, parentPort, Worker, workerData } from 'node:worker_threads';
import type { FeedSecrets } from '../src/mail/redact.js';
import { RenderPool } from '../src/mail/render-pool.js';
import { contentForFeed, renderMessage, type RenderOptions } from '../src/mail/render.js';
import { fixture } from './helpers.js';
import { unsafeConstructs, XSS_VECTORS } from './html-safety.js';

const SEED = Number(process.env.FUZZ_SEED ?? 0x5eed);
const CASES = Number(process.env.FUZZ_CASES ?? 10_000);
const POOL_CASES = 50;
/** Per-case bound; one message may not hold up ingest for longer than this. */
const CASE_BOUND_MS = 2000;
/** A shard that reports no progress for this long is stuck in a case. */
const HANG_MS = 15_000;
const OPTIONS: RenderOptions = { maxPartBytes: 1_000_000, keepTrackingPixels: false };
const SECRETS: FeedSecrets = { inboxToken: 'k7q2m4xap3w5tgr6n2b4v7c3zd', feedToken: 'f3edtokqz5ya2wm4nrx6bc7ejh' };

/** mulberry32: small, fast, and the same sequence everywhere for a given seed. */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

type Rng = () => number;
const int = (rng: Rng, n: number) => Math.floor(rng() * n);
const pick = <T>(rng: Rng, list: readonly T[]): T => list[int(rng, list.length)]!;

const CHARSETS = ['utf-8', 'iso-8859-1', 'windows-1252', 'shift_jis', 'iso-2022-jp', 'gb18030', 'koi8-r', 'utf-16', 'utf-7', 'x-unknown', ''];
const HEADER_GARBAGE = ['', '=?utf-8?B?', '=?x?Q?=FF=FE?=', '<<>>', '"', 'multipart/mixed; boundary=', 'text/html; charset="', '\u00ff\u00fe', ';;;;', 'a'.repeat(5000)];

function latin1(b: Buffer): string {
  return b.toString('latin1');
}

/** Lines that start a MIME boundary, as [start, end) byte offsets. */
function boundaryLines(s: string): [number, number][] {
  return [...s.matchAll(/^--[^\r\n]+\r?\n?/gm)].map((m) => [m.index, m.index + m[0].length]);
}

const MUTATIONS: Record<string, (raw: Buffer, rng: Rng) => Buffer> = {
  truncate: (raw, rng) => raw.subarray(0, int(rng, raw.length + 1)),
  flipBytes: (raw, rng) => {
    const out = Buffer.from(raw);
    for (let n = 1 + int(rng, 8); n > 0 && out.length > 0; n--) {
      const at = int(rng, out.length);
      out[at] = out[at]! ^ (1 << int(rng, 8));
    }
    return out;
  },
  insertBytes: (raw, rng) => {
    const at = int(rng, raw.length + 1);
    const bytes = Buffer.from(Array.from({ length: 1 + int(rng, 16) }, () => pick(rng, [0, 0x0a, 0x0d, 0x3d, 0x3c, 0x3e, 0x22, 0x2d, 0xff, int(rng, 256)])));
    return Buffer.concat([raw.subarray(0, at), bytes, raw.subarray(at)]);
  },
  deleteBytes: (raw, rng) => {
    const at = int(rng, raw.length + 1);
    return Buffer.concat([raw.subarray(0, at), raw.subarray(at + 1 + int(rng, 64))]);
  },
  duplicateBoundary: (raw, rng) => {
    const s = latin1(raw);
    const lines = boundaryLines(s);
    if (lines.length === 0) return raw;
    const [a, b] = pick(rng, lines);
    const at = int(rng, s.length + 1);
    return Buffer.from(s.slice(0, at) + s.slice(a, b) + s.slice(at), 'latin1');
  },
  dropBoundary: (raw, rng) => {
    const s = latin1(raw);
    const lines = boundaryLines(s);
    if (lines.length === 0) return raw;
    const [a, b] = pick(rng, lines);
    return Buffer.from(s.slice(0, a) + s.slice(b), 'latin1');
  },
  corruptHeader: (raw, rng) => {
    const s = latin1(raw);
    const headerLines = [...s.matchAll(/^([A-Za-z-]+):[^\r\n]*/gm)];
    if (headerLines.length === 0) return raw;
    const m = pick(rng, headerLines);
    const replacement = pick(rng, [`${m[1]}: ${pick(rng, HEADER_GARBAGE)}`, `${m[1]}${pick(rng, HEADER_GARBAGE)}`, '', `${m[0]}\r\n${m[0]}`, `${m[0]}${pick(rng, HEADER_GARBAGE)}`]);
    return Buffer.from(s.slice(0, m.index) + replacement + s.slice(m.index + m[0].length), 'latin1');
  },
  swapCharset: (raw, rng) => {
    const s = latin1(raw);
    const replaced = s.replace(/charset=("?)[^";\r\n]*\1/gi, () => (rng() < 0.5 ? `charset="${pick(rng, CHARSETS)}"` : `charset=${pick(rng, CHARSETS)}`));
    return Buffer.from(replaced === s ? s.replace(/^(Content-Type: text\/[a-z]+)/im, `$1; charset=${pick(rng, CHARSETS)}`) : replaced, 'latin1');
  },
  injectIntoHtml: (raw, rng) => {
    // Raw snippets dropped where HTML sits (after a tag), whatever the transfer encoding.
    const s = latin1(raw);
    const tags = [...s.matchAll(/<[a-z][^>]*>/gi)];
    const snippet = Array.from({ length: 1 + int(rng, 3) }, () => pick(rng, XSS_VECTORS)).join('');
    const at = tags.length ? (() => { const m = pick(rng, tags); return m.index + m[0].length; })() : int(rng, s.length + 1);
    return Buffer.from(s.slice(0, at) + snippet + s.slice(at), 'utf8');
  },
  hostileHtmlPart: (raw, rng) => {
    // A fresh HTML part full of vectors next to the original body, so the sanitizer surely sees them.
    const html = Array.from({ length: 2 + int(rng, 6) }, () => pick(rng, XSS_VECTORS)).join(pick(rng, ['', '\r\n', '<p>x</p>', '<td>']));
    const encoding = pick(rng, ['8bit', 'base64', 'quoted-printable']);
    const body = encoding === 'base64' ? Buffer.from(html).toString('base64') : encoding === 'quoted-printable' ? html.replace(/=/g, '=3D') : html;
    const s = latin1(raw);
    const split = s.search(/\r?\n\r?\n/);
    const head = split === -1 ? s : s.slice(0, split);
    const rest = split === -1 ? '' : s.slice(split).replace(/^\r?\n\r?\n/, '');
    const headers = head.replace(/^Content-(Type|Transfer-Encoding):[^\r\n]*(\r?\n[ \t][^\r\n]*)*\r?\n?/gim, '');
    return Buffer.from(`${headers.trimEnd()}\r\nContent-Type: multipart/mixed; boundary="fz"\r\n\r\n--fz\r\nContent-Type: text/html; charset=utf-8\r\nContent-Transfer-Encoding: ${encoding}\r\n\r\n${body}\r\n--fz\r\nContent-Type: text/plain\r\n\r\n${rest}\r\n--fz--\r\n`, 'utf8');
  },
  nestDeep: (raw, rng) => {
    const s = latin1(raw);
    const split = s.search(/\r?\n\r?\n/);
    if (split === -1) return raw;
    const head = s.slice(0, split);
    const body = s.slice(split).replace(/^\r?\n\r?\n/, '');
    const depth = 1 + int(rng, 120);
    const type = /^Content-Type:[^\r\n]*(\r?\n[ \t][^\r\n]*)*/im.exec(head)?.[0] ?? 'Content-Type: text/plain';
    let inner = `${type}\r\n\r\n${body}`;
    for (let d = 0; d < depth; d++) {
      const kind = pick(rng, ['mixed', 'related', 'alternative']);
      inner = `Content-Type: multipart/${kind}; boundary="n${d}"\r\n\r\n--n${d}\r\n${inner}\r\n--n${d}--\r\n`;
    }
    const headers = head.replace(/^Content-Type:[^\r\n]*(\r?\n[ \t][^\r\n]*)*\r?\n?/gim, '');
    return Buffer.from(`${headers.trimEnd()}\r\n${inner}`, 'latin1');
  },
};
const MUTATION_NAMES = Object.keys(MUTATIONS);

interface Case {
  id: number;
  fixture: string;
  mutations: string[];
  raw: Buffer;
}

function* cases(fixtures: { name: string; raw: Buffer }[], count: number, seed: number): Generator<Case> {
  const rng = prng(seed);
  for (let id = 0; id < count; id++) {
    const f = pick(rng, fixtures);
    const mutations = Array.from({ length: 1 + int(rng, 3) }, () => pick(rng, MUTATION_NAMES));
    let raw = f.raw;
    for (const m of mutations) raw = MUTATIONS[m]!(raw, rng);
    yield { id, fixture: f.name, mutations, raw };
  }
}

/** Where a token still shows in redacted content (plain, in any case). */
function leaked(values: string[]): boolean {
  return values.some((v) => v.toLowerCase().includes(SECRETS.inboxToken) || v.toLowerCase().includes(SECRETS.feedToken));
}

const FIXTURES = fs.readdirSync(new URL('./fixtures/', import.meta.url)).filter((f) => f.endsWith('.eml')).sort()
  .map((name) => ({ name, raw: fixture(name) }));

interface ShardTask { seed: number; count: number; shard: number; shards: number }
type ShardMessage =
  | { type: 'case'; what: string }
  | { type: 'done'; cases: number; failures: string[]; slowest: { ms: number; what: string } };

/** Runs every `shards`-th case, starting at `shard`; the case sequence is the same in every shard. */
async function runShard(task: ShardTask, report: (m: ShardMessage) => void): Promise<void> {
  let slowest = { ms: 0, what: '' };
  let done = 0;
  const failures: string[] = [];
  for (const c of cases(FIXTURES, task.count, task.seed)) {
    if (c.id % task.shards !== task.shard) continue;
    const what = `case ${c.id} (${c.fixture}: ${c.mutations.join(', ')})`;
    report({ type: 'case', what });
    const t0 = performance.now();
    try {
      const rendered = await renderMessage(c.raw, OPTIONS);
      const problems = unsafeConstructs(rendered.html);
      if (problems.length) failures.push(`${what}: ${problems.join('; ')}`);
      const content = contentForFeed(rendered, SECRETS);
      if (leaked([content.subject, content.fromName, content.fromAddress, content.html, content.text, ...content.parts.map((p) => p.filename)])) {
        failures.push(`${what}: secret left after redaction`);
      }
    } catch (err) {
      failures.push(`${what}: threw ${(err as Error).stack ?? String(err)}`);
    }
    const ms = performance.now() - t0;
    done++;
    if (ms > slowest.ms) slowest = { ms, what };
    if (ms > CASE_BOUND_MS) failures.push(`${what}: took ${ms.toFixed(0)} ms`);
    if (failures.length >= 10) break;
  }
  report({ type: 'done', cases: done, failures, slowest });
}

/**
 * Starts a shard in a worker thread. Workers do not inherit tsx's loader hooks, so the
 * worker registers them itself before it loads this file.
 */
function startShard(task: ShardTask, onMessage: (m: ShardMessage) => void): Worker {
  const tsx = import.meta.resolve('tsx/esm/api');
  const self = import.meta.url;
  const code = `import(${JSON.stringify(tsx)}).then((m) => { m.register(); return import(${JSON.stringify(self)}); })`;
  const worker = new Worker(code, { eval: true, workerData: task });
  worker.on('message', onMessage);
  return worker;
}

async function runShards(count: number, seed: number): Promise<{ cases: number; failures: string[]; slowest: { ms: number; what: string } }> {
  const shards = Math.max(1, Math.min(os.availableParallelism(), 4));
  const results = await Promise.all(Array.from({ length: shards }, (_, shard) => new Promise<{ cases: number; failures: string[]; slowest: { ms: number; what: string } }>((resolve) => {
    let current = { what: '(starting)', since: Date.now() };
    let finished = false;
    const finish = (r: { cases: number; failures: string[]; slowest: { ms: number; what: string } }) => {
      if (finished) return;
      finished = true;
      clearInterval(watchdog);
      void worker.terminate();
      resolve(r);
    };
    const worker = startShard({ seed, count, shard, shards }, (m) => {
      if (m.type === 'case') current = { what: m.what, since: Date.now() };
      else finish(m);
    });
    const watchdog = setInterval(() => {
      if (Date.now() - current.since > HANG_MS) finish({ cases: 0, failures: [`shard ${shard} hung in ${current.what}`], slowest: { ms: HANG_MS, what: current.what } });
    }, 500);
    worker.on('error', (err) => finish({ cases: 0, failures: [`shard ${shard} crashed in ${current.what}: ${err.stack}`], slowest: { ms: 0, what: '' } }));
    worker.on('exit', () => finish({ cases: 0, failures: [`shard ${shard} exited in ${current.what}`], slowest: { ms: 0, what: '' } }));
  })));
  return {
    cases: results.reduce((n, r) => n + r.cases, 0),
    failures: results.flatMap((r) => r.failures),
    slowest: results.reduce((a, r) => (r.slowest.ms > a.ms ? r.slowest : a), { ms: 0, what: '' }),
  };
}

if (!isMainThread && parentPort) {
  const port = parentPort;
  void runShard(workerData as ShardTask, (m) => port.postMessage(m));
} else {
  describe('fuzz', () => {
    it(`renders ${CASES} mutated messages safely (seed ${SEED})`, async (t) => {
      const started = performance.now();
      const { cases: ran, failures, slowest } = await runShards(CASES, SEED);
      const seconds = (performance.now() - started) / 1000;
      t.diagnostic(`fuzz: ${ran} cases in ${seconds.toFixed(1)} s on ${Math.min(os.availableParallelism(), 4)} threads, slowest ${slowest.ms.toFixed(1)} ms (${slowest.what})`);
      assert.deepEqual(failures, []);
      assert.equal(ran, CASES, 'every case completed');
    });

    it(`renders a sample of ${POOL_CASES} mutated messages through the worker pool`, async (t) => {
      const pool = new RenderPool(OPTIONS, CASE_BOUND_MS);
      let slowest = 0;
      try {
        for (const c of cases(FIXTURES, POOL_CASES, SEED + 1)) {
          const t0 = performance.now();
          const rendered = await pool.render(c.raw);
          slowest = Math.max(slowest, performance.now() - t0);
          assert.deepEqual(unsafeConstructs(rendered.html), [], `case ${c.id} (${c.fixture}: ${c.mutations.join(', ')})`);
          assert.ok(!/could not be processed/.test(rendered.note ?? ''), `case ${c.id} fell back: ${rendered.note}`);
        }
      } finally {
        await pool.close();
      }
      t.diagnostic(`fuzz (pool): ${POOL_CASES} cases, slowest ${slowest.toFixed(1)} ms`);
    });
  });
}
