/**
 * Benchmarks 5 and 6 of `npm run bench` (issue 14): search and read latency at scale.
 *
 * Seeds a data directory through the store (AppStore.importEntries: batches of 2,000 entries in one
 * transaction each, a few multi-row INSERTs per 200; small bodies recombined from the text of the real newsletters in
 * test/fixtures, one in twenty in Japanese or Chinese, each with a word of its own), in two
 * stages, and measures each stage through a real `feedmail serve` (the built code, a separate
 * process, over HTTP):
 *   stage 1: --first entries (10,000): one searched feed of --big entries, the rest in 50 feeds;
 *   stage 2: --entries in all (1,000,000) across --feeds feeds (10,000), ~100 entries each.
 * At each stage: search within the big feed for a rare word (one entry holds it), a common
 * word (in more than 20% of entries), a 4-letter prefix and a two-word phrase; a common word
 * within a 100-entry feed; and the first read of 50 feed documents of 100-entry feeds never
 * read before (rendered, not cached). One client, one request at a time; p50/p95 in ms.
 * Also the bytes app.db takes per entry at each stage.
 *
 *   node --import tsx bench/scale.ts [--entries 1000000] [--feeds 10000] [--first 10000] [--big 5000] [--queries 40] [--record]
 *
 * Prints a report (and with --record writes it to bench/results/scale-<date>.txt); the last
 * line of stdout is the JSON of the figures (bench/run.ts reads it).
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { EntryContent, NewEntry } from '../src/store/entries.js';
import type { Feed } from '../src/store/feeds.js';
import { openStores, type Stores } from '../src/store/index.js';
import { searchText } from '../src/store/search-text.js';
import { tempDir } from '../test/support/helpers.js';
import { prng } from '../test/support/mutate.js';
import { startServeProcess } from '../test/support/serve-process.js';
import { numberArg } from './args.js';
import { corpus, type Corpus } from './search.js';

const total = numberArg('entries', 1_000_000);
const feedCount = numberArg('feeds', 10_000);
const first = numberArg('first', 10_000);
const big = numberArg('big', Math.min(5000, Math.floor(first / 2)));
const perKind = numberArg('queries', 40);
const record = process.argv.includes('--record');
const REPO = fileURLToPath(new URL('..', import.meta.url));
const rng = prng(numberArg('seed', 6));
const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rng() * xs.length)]!;
const START = Date.UTC(2024, 0, 1);
const BATCH = 2000;

const lines: string[] = [];
const out = (line = '') => {
  lines.push(line);
  process.stderr.write(`${line}\n`);
};
const load = () => os.loadavg().map((l) => l.toFixed(2)).join(' ');

/** A word only entry i holds. */
const rareWord = (i: number) => `scl${i.toString(36)}q`;

/** A small newsletter body: an issue line with the entry's own word, then two cut paragraphs of real newsletter text. */
function content(c: Corpus, i: number): EntryContent {
  const pool = i % 20 === 7 && c.cjk.length > 0 ? c.cjk : c.latin;
  const paragraphs = [`Issue ${i}. This week's note mentions ${rareWord(i)} once.`, pick(pool).slice(0, 400), pick(pool).slice(0, 400)];
  return {
    fromName: 'Bench Weekly', fromAddress: `news${i % 50}@bench.example.com`, subject: `${pick(c.subjects)} #${i}`, sentAt: null,
    html: `<div>${paragraphs.map((p) => `<p>${p.replace(/[<&]/g, ' ')}</p>`).join('')}</div>`,
    text: `${paragraphs.join('\n\n')}\n\nRead online: https://news.example.com/issue/${i}\n`,
    confirmUrl: null, note: null, parts: [],
  };
}

let seeded = 0;
async function seed(stores: Stores, c: Corpus, feedIds: number[], count: number, texts?: string[]): Promise<void> {
  let batch: NewEntry[] = [];
  const flush = async () => {
    await stores.app.importEntries(batch);
    batch = [];
  };
  for (let k = 0; k < count; k++) {
    const i = seeded++;
    const body = content(c, i);
    if (texts) texts.push(`${body.subject}\n${body.text}`);
    batch.push({ feedId: feedIds[k % feedIds.length]!, journalUid: `scale-${i}`, receivedAt: START + i * 60_000, raw: Buffer.from(`Subject: ${body.subject}\r\n\r\nraw ${i}\r\n`), content: body });
    if (batch.length === BATCH) await flush();
  }
  if (batch.length) await flush();
}

async function newFeeds(stores: Stores, n: number, prefix: string): Promise<Feed[]> {
  const feeds: Feed[] = [];
  for (let i = 0; i < n; i++) {
    const created = await stores.app.createFeed(`${prefix} ${i}`, null);
    if (!('feed' in created)) throw new Error('feed not created');
    feeds.push(created.feed);
  }
  return feeds;
}

function percentile(ms: number[], p: number): number {
  const s = [...ms].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil((p / 100) * s.length) - 1))] ?? NaN;
}

async function timed(url: string): Promise<number> {
  const t0 = performance.now();
  const res = await fetch(url);
  await res.arrayBuffer();
  if (res.status !== 200) throw new Error(`${url.replace(/feeds\/[^/.?]+/, 'feeds/…')} answered ${res.status}`);
  return performance.now() - t0;
}

interface Figures { p50: number; p95: number; n: number }
type StageFigures = Record<string, Figures>;

async function measure(dataDir: string, bigFeed: Feed, small: Feed, unread: Feed[], queries: Record<string, string[]>): Promise<StageFigures> {
  const server = await startServeProcess({ processes: 1, built: true, dataDir, env: { FEEDMAIL_FEED_KEEP_ENTRIES: '100000' } });
  try {
    const search = (feed: Feed, q: string) => `${server.base}/feeds/${feed.feed_token}/search?${new URLSearchParams({ q }).toString()}`;
    const figures: StageFigures = {};
    const run = async (name: string, urls: string[]) => {
      for (const u of urls.slice(0, 3)) await timed(u); // warm-up: statements prepared, pages cached by the OS
      const ms: number[] = [];
      for (const u of urls) ms.push(await timed(u));
      figures[name] = { p50: percentile(ms, 50), p95: percentile(ms, 95), n: ms.length };
    };
    for (const [kind, qs] of Object.entries(queries)) await run(`search big feed: ${kind}`, qs.map((q) => search(bigFeed, q)));
    await run('search 100-entry feed: common word', queries['common word']!.map((q) => search(small, q)));
    // First reads: each document is rendered (no cached copy yet); the warm-up reads three others.
    const ms: number[] = [];
    for (const f of unread.slice(0, 3)) await timed(`${server.base}/feeds/${f.feed_token}.atom`);
    for (const f of unread.slice(3)) ms.push(await timed(`${server.base}/feeds/${f.feed_token}.atom`));
    figures['read: first read of a 100-entry feed (Atom)'] = { p50: percentile(ms, 50), p95: percentile(ms, 95), n: ms.length };
    return figures;
  } finally {
    await server.stop();
  }
}

function vocabulary(texts: string[]): { common: string[]; mid: string[]; phrases: string[] } {
  const df = new Map<string, number>();
  const phrases: string[] = [];
  for (const t of texts) {
    const words = searchText(t).toLowerCase().match(/[a-z][a-z'-]{2,}/g) ?? [];
    for (const w of new Set(words)) df.set(w, (df.get(w) ?? 0) + 1);
    if (words.length > 10 && phrases.length < 2000) {
      const k = 5 + Math.floor(rng() * (words.length - 7));
      phrases.push(`"${words[k]} ${words[k + 1]}"`);
    }
  }
  const n = texts.length;
  const sorted = [...df.entries()].sort((a, b) => b[1] - a[1]);
  return { common: sorted.filter(([, d]) => d > n * 0.2).map(([w]) => w), mid: sorted.filter(([, d]) => d > n * 0.01 && d <= n * 0.2).map(([w]) => w), phrases };
}

async function main() {
  out(`# bench/scale.ts, ${new Date().toISOString().replace(/\.\d+Z$/, 'Z')}, ${os.cpus().length} cores, node ${process.version}, load average at start: ${load()}`);
  out(`$ node --import tsx bench/scale.ts ${process.argv.slice(2).join(' ')}`.trimEnd());
  if (!fs.existsSync(path.join(REPO, 'dist/cli.js'))) throw new Error('dist/cli.js is missing: run `npm run build` first');
  const c = await corpus();
  const dataDir = tempDir('feedmail-scale-bench-');
  const stores = openStores(dataDir);
  const stages: { entries: number; feeds: number; seedSeconds: number; bytesPerEntry: number; figures: StageFigures; load: string }[] = [];
  try {
    // Stage 1.
    const [bigFeed] = await newFeeds(stores, 1, 'big');
    const smallFeeds = await newFeeds(stores, 50, 'small');
    const texts: string[] = [];
    let t0 = performance.now();
    await seed(stores, c, [bigFeed!.id], big, texts);
    await seed(stores, c, smallFeeds.map((f) => f.id), first - big);
    let seedSeconds = (performance.now() - t0) / 1000;
    const v = vocabulary(texts);
    const queries: Record<string, string[]> = {
      'rare word': Array.from({ length: perKind }, () => rareWord(Math.floor(rng() * big))),
      'common word': Array.from({ length: perKind }, () => pick(v.common)),
      'prefix (4 letters)': Array.from({ length: perKind }, () => `${pick(v.mid).slice(0, 4)}*`),
      'phrase': Array.from({ length: perKind }, () => pick(v.phrases)),
    };
    out(`vocabulary of the big feed: ${v.common.length} words in >20% of its entries, ${v.mid.length} in 1-20%`);
    const stage = async (feeds: number, small: Feed, unread: Feed[]) => {
      await stores.app.checkpointTruncate();
      const counts = await stores.app.rowCounts();
      const bytesPerEntry = stores.app.fileBytes() / Number(counts.entries);
      out(`stage: ${counts.entries} entries in ${feeds} feeds seeded in ${seedSeconds.toFixed(0)} s (${(seeded / seedSeconds).toFixed(0)} entries/s so far); app.db ${(stores.app.fileBytes() / 1e6).toFixed(0)} MB, ${bytesPerEntry.toFixed(0)} bytes per entry (load ${load()})`);
      const figures = await measure(dataDir, bigFeed!, small, unread, queries);
      for (const [k, f] of Object.entries(figures)) out(`  ${k.padEnd(48)} p50 ${f.p50.toFixed(1).padStart(7)} ms  p95 ${f.p95.toFixed(1).padStart(7)} ms  (n ${f.n})`);
      stages.push({ entries: Number(counts.entries), feeds, seedSeconds, bytesPerEntry, figures, load: load() });
    };
    await stage(51, smallFeeds[0]!, smallFeeds.slice(1));
    // Stage 2.
    t0 = performance.now();
    const more = await newFeeds(stores, Math.max(0, feedCount - 51), 'more');
    const rest = total - first;
    for (let done = 0; done < rest; done += 100_000) {
      await seed(stores, c, more.map((f) => f.id), Math.min(100_000, rest - done));
      out(`  seeded ${first + Math.min(rest, done + 100_000)} entries (${((performance.now() - t0) / 1000).toFixed(0)} s, load ${load()})`);
    }
    seedSeconds += (performance.now() - t0) / 1000;
    const unread = Array.from({ length: 50 }, (_, k) => more[Math.floor((k * more.length) / 50)]!);
    await stage(feedCount, more[1]!, unread);
  } finally {
    await stores.close();
    fs.rmSync(dataDir, { recursive: true, force: true });
  }
  const [a, b] = stages;
  if (a && b) {
    out();
    out(`at ${b.entries} entries against ${a.entries} (p95, ms; the issue's targets: search p95 < 20 ms at 1,000,000 entries, read and search within 2x of 10,000):`);
    for (const k of Object.keys(b.figures)) out(`  ${k.padEnd(48)} ${a.figures[k]!.p95.toFixed(1).padStart(7)} -> ${b.figures[k]!.p95.toFixed(1).padStart(7)}  (${(b.figures[k]!.p95 / a.figures[k]!.p95).toFixed(2)}x)`);
  }
  out(`# load average at end: ${load()}`);
  if (record) {
    const file = path.join(REPO, `bench/results/scale-${new Date().toISOString().slice(0, 10)}.txt`);
    fs.writeFileSync(file, `${lines.join('\n')}\n`);
    process.stderr.write(`written to ${path.relative(REPO, file)}\n`);
  }
  process.stdout.write(`${JSON.stringify({ stages })}\n`);
}

/**
 * Seeds `feeds` feeds of `perFeed` small entries each into a new data directory (for the
 * round-robin reads of bench/run.ts); returns their feed URL tokens.
 */
export async function seedFeeds(dataDir: string, feeds: number, perFeed: number): Promise<string[]> {
  const c = await corpus();
  const stores = openStores(dataDir);
  try {
    const created = await newFeeds(stores, feeds, 'round robin');
    await seed(stores, c, created.map((f) => f.id), feeds * perFeed);
    await stores.app.checkpointTruncate();
    return created.map((f) => f.feed_token);
  } finally {
    await stores.close();
  }
}

const invokedDirectly = process.argv[1] !== undefined && fs.realpathSync(process.argv[1]) === fileURLToPath(import.meta.url);
if (invokedDirectly) {
  main().catch((err: unknown) => {
    process.stderr.write(`${(err as Error).stack ?? String(err)}\n`);
    process.exit(1);
  });
}
