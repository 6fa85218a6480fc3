/**
 * Search latency on a feed of 10,000 realistic entries, through the real HTTP server.
 *
 * Builds a data directory through the store (the text of the real newsletters in
 * test/fixtures, recombined: every entry has its own body, tracker links included, one in
 * twenty in Japanese or Chinese), with other feeds beside it so the index holds more than
 * the searched feed. Times rebuilding the whole index (what the upgrade migration does), then
 * starts `feedmail serve` as a child process and times a few hundred varied queries, one at
 * a time over keep-alive HTTP, then the same queries from 4 clients at once. Last, it times
 * deleting the 10,000-entry feed (every index row goes by trigger) and checks the index.
 * Writes bench/results/search-<date>.txt.
 *
 *   node --import tsx bench/search.ts [--entries 10000] [--other-feeds 5] [--other-entries 1000] [--queries 400] [--seed 11]
 */
import fs from 'node:fs';
import os from 'node:os';
import { fileURLToPath } from 'node:url';
import { processMessage } from '../src/mail/process.js';
import type { EntryContent } from '../src/store/entries.js';
import { openStores } from '../src/store/index.js';
import { searchText } from '../src/store/search-text.js';
import { freePort, tempDir } from '../test/support/helpers.js';
import { prng } from '../test/support/mutate.js';
import { numberArg } from './args.js';
import { ServerProcess } from './kill-restart.js';

const entries = numberArg('entries', 10_000);
const otherFeeds = numberArg('other-feeds', 5);
const otherEntries = numberArg('other-entries', 1000);
const queryCount = numberArg('queries', 400);
const rng = prng(numberArg('seed', 11));
const DAY = 86_400_000;
const START = Date.UTC(2025, 0, 1);

const lines: string[] = [];
function out(line = ''): void {
  lines.push(line);
  process.stdout.write(`${line}\n`);
}

const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rng() * xs.length)]!;

/** Paragraphs of real newsletter text (and their subjects), from the fixtures. */
async function corpus(): Promise<{ latin: string[]; cjk: string[]; subjects: string[] }> {
  const dirs = [new URL('../test/fixtures/newsletters/', import.meta.url), new URL('../test/fixtures/', import.meta.url)];
  const latin: string[] = [];
  const cjk: string[] = [];
  const subjects: string[] = [];
  for (const dir of dirs) {
    for (const name of fs.readdirSync(dir).filter((n) => n.endsWith('.eml'))) {
      const processed = await processMessage(fs.readFileSync(new URL(name, dir)), { maxPartBytes: 10_000_000, keepTrackingPixels: false });
      if (processed.subject) subjects.push(processed.subject);
      for (const p of processed.text.split(/\n\s*\n/).map((x) => x.trim()).filter((x) => x.length > 12 && x.length < 3000)) {
        if (/[\u3040-\u30ff\u4e00-\u9fff]/.test(p)) cjk.push(p);
        else if (p.length > 40) latin.push(p);
      }
    }
  }
  // The fixtures hold only a few lines of CJK text: newsletter paragraphs of the usual kind join them.
  cjk.push(...CJK_PARAGRAPHS);
  return { latin, cjk, subjects };
}

export type Corpus = Awaited<ReturnType<typeof corpus>>;
export { corpus, entryContent };

const CJK_PARAGRAPHS = [
  '今週は東京都内で新しい図書館が開館しました。館内には約三十万冊の本があり、子ども向けの読書スペースも用意されています。開館時間は午前九時から午後八時までです。',
  '来月の勉強会では、データベースの索引と全文検索について取り上げます。参加をご希望の方は、今週金曜日までにお申し込みください。資料は当日お配りします。',
  '京都の美術館で春の特別展が始まりました。江戸時代の屏風や掛け軸など、普段は公開されていない作品を見ることができます。会期は五月末までです。',
  '新製品の発売に合わせて、オンラインストアでは期間限定のキャンペーンを実施しています。送料無料のほか、会員の方にはポイントが二倍になります。',
  '大阪では週末に雨の予報が出ています。お出かけの際は傘をお持ちください。来週は気温が上がり、初夏のような陽気になる見込みです。',
  '本日のニュースレターでは、プログラミング言語の最新版で追加された機能を紹介します。非同期処理の書き方がより簡単になりました。',
  '北京大学的图书馆今天重新开放，新增了数字阅览室和自习区。学生可以通过校园卡预约座位，开放时间为早上八点到晚上十点。',
  '本周的技术简报介绍了数据库索引的基本原理，以及如何为全文搜索选择合适的分词方法。欢迎大家在评论区分享经验。',
  '上海将于下个月举办国际电影节，预计将放映来自五十多个国家和地区的三百多部影片。售票将于本周五上午十点开始。',
  '天气预报显示，本周末华北地区将迎来降温，最高气温下降五到八度。请注意添加衣物，出行时注意安全。',
];

/** A word only entry i holds: what a search for "the one newsletter that said X" looks for. */
const rareWord = (i: number) => `uniq${i.toString(36)}word`;

/** One entry: paragraphs of real newsletters in a new order, an issue number, a rare word, tracked links. */
function entryContent(c: Awaited<ReturnType<typeof corpus>>, i: number): EntryContent {
  const cjkEntry = i % 20 === 7 && c.cjk.length > 0;
  const pool = cjkEntry ? c.cjk : c.latin;
  const paragraphs = Array.from({ length: 4 + Math.floor(rng() * 10) }, () => pick(pool));
  paragraphs.splice(1, 0, `Issue ${i}. This week's note mentions ${rareWord(i)} once.`);
  const text = `${paragraphs.join('\n\n')}\n\nRead online: https://news.example.com/issue/${i}?utm_source=mail&uid=${Math.floor(rng() * 1e12).toString(36)}\n`
    + `Unsubscribe: https://list.example.com/u/${Math.floor(rng() * 1e12).toString(36)}\n`;
  const sender = pick(['Morning Brief <brief@morning.example>', 'Node Weekly <node@cooperpress.example>', 'Milk Road <team@milkroad.example>', 'Hongbo <hongbo@substack.example>', 'DHH <dhh@hey.example>', '日本ニュース <news@example.jp>']);
  const m = /^(.*) <(.*)>$/.exec(sender)!;
  return {
    fromName: m[1]!, fromAddress: m[2]!,
    subject: `${pick(c.subjects)} #${i}`,
    sentAt: null,
    html: `<div>${paragraphs.map((p) => `<p>${p.replace(/[<&]/g, ' ')}</p>`).join('')}</div>`,
    text,
    confirmUrl: null,
    note: null,
    parts: [],
  };
}

/** Words of the searched feed by how many entries hold them, for queries of every selectivity. */
function vocabulary(texts: string[]): { common: string[]; mid: string[]; phrases: string[]; cjk: string[] } {
  const df = new Map<string, number>();
  const phrases: string[] = [];
  const cjk: string[] = [];
  for (const t of texts) {
    const words = searchText(t).toLowerCase().match(/[a-z][a-z'-]{2,}/g) ?? [];
    for (const w of new Set(words)) df.set(w, (df.get(w) ?? 0) + 1);
    if (words.length > 10 && phrases.length < 2000) {
      const k = Math.floor(rng() * (words.length - 3));
      phrases.push(words.slice(k, k + 2 + Math.floor(rng() * 2)).join(' '));
    }
    const runs = t.match(/[\u3040-\u30ff\u4e00-\u9fff]{4,}/g) ?? [];
    if (runs.length && cjk.length < 500) {
      const run = pick(runs);
      const k = Math.floor(rng() * (run.length - 2));
      cjk.push(run.slice(k, k + 2 + Math.floor(rng() * 2)));
    }
  }
  const sorted = [...df.entries()].sort((a, b) => b[1] - a[1]);
  const n = texts.length;
  return {
    common: sorted.filter(([, d]) => d > n * 0.2).map(([w]) => w),
    mid: sorted.filter(([, d]) => d > n * 0.01 && d <= n * 0.2).map(([w]) => w),
    phrases,
    cjk,
  };
}

type Query = { kind: string; params: Record<string, string> };

function queries(v: ReturnType<typeof vocabulary>, n: number): Query[] {
  const day = (d: number) => new Date(START + d * DAY).toISOString().slice(0, 10);
  const span = Math.max(2, Math.ceil(entries / 4));
  const kinds: (() => Query)[] = [
    () => ({ kind: 'common word', params: { q: pick(v.common) } }),
    () => ({ kind: 'mid word', params: { q: pick(v.mid) } }),
    () => ({ kind: 'word in one entry', params: { q: rareWord(Math.floor(rng() * entries)) } }),
    () => ({ kind: 'two words', params: { q: `${pick(v.mid)} ${pick(v.common)}` } }),
    () => ({ kind: 'three words', params: { q: `${pick(v.common)} ${pick(v.common)} ${pick(v.mid)}` } }),
    () => ({ kind: 'phrase', params: { q: `"${pick(v.phrases)}"` } }),
    () => ({ kind: 'prefix, 2 letters', params: { q: `${pick(v.mid).slice(0, 2)}*` } }),
    () => ({ kind: 'prefix, 4 letters', params: { q: `${pick(v.mid).slice(0, 4)}*` } }),
    () => ({ kind: 'exclusion', params: { q: `${pick(v.common)} -${pick(v.mid)}` } }),
    () => ({ kind: 'OR', params: { q: `${pick(v.mid)} OR ${pick(v.mid)}` } }),
    () => ({ kind: 'word and dates', params: { q: pick(v.common), from: day(Math.floor(rng() * span)), to: day(Math.floor(rng() * span) + 30) } }),
    () => ({ kind: 'dates only', params: { from: day(Math.floor(rng() * span)), to: day(Math.floor(rng() * span) + 7) } }),
    () => ({ kind: 'CJK', params: { q: pick(v.cjk.length ? v.cjk : ['東京']) } }),
    () => ({ kind: 'no match', params: { q: `zz${Math.floor(rng() * 1e9).toString(36)}qq` } }),
    () => ({ kind: 'common word, page 5', params: { q: pick(v.common), page: '5' } }),
    () => ({ kind: 'hostile', params: { q: pick(['NEAR(', '"', '*', 'a'.repeat(2000), 'OR '.repeat(600), '-', ':', '^', '😀', '"unbalanced phrase', 'x* y* z* w*', 'co* th* re* ne* ma* pr*']) } }),
  ];
  return Array.from({ length: n }, (_, i) => kinds[i % kinds.length]!());
}

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)] ?? NaN;
}

function stats(ms: number[]): string {
  const s = [...ms].sort((a, b) => a - b);
  const f = (x: number) => x.toFixed(1).padStart(7);
  return `${String(s.length).padStart(5)} ${f(percentile(s, 50))} ${f(percentile(s, 95))} ${f(percentile(s, 99))} ${f(s[s.length - 1] ?? NaN)}`;
}

async function timed(url: string): Promise<number> {
  const t0 = performance.now();
  const res = await fetch(url);
  await res.arrayBuffer();
  const ms = performance.now() - t0;
  if (res.status !== 200) throw new Error(`${url} answered ${res.status}`);
  return ms;
}

async function main(): Promise<void> {
  const date = new Date().toISOString().slice(0, 10);
  out(`# bench/search.ts, ${new Date().toISOString().replace(/\.\d+Z$/, 'Z')}, ${os.cpus().length} cores, load average at start: ${os.loadavg().map((x) => x.toFixed(2)).join(' ')}`);
  out(`$ node --import tsx bench/search.ts ${process.argv.slice(2).join(' ')}`.trimEnd());
  out(`node ${process.version}; ${entries} entries in the searched feed, ${otherFeeds} other feeds of ${otherEntries}; ${queryCount} queries`);

  const c = await corpus();
  out(`corpus: ${c.latin.length} paragraphs and ${c.subjects.length} subjects from test/fixtures, ${c.cjk.length} CJK paragraphs (${CJK_PARAGRAPHS.length} of them written for this benchmark)`);
  const dataDir = tempDir('feedmail-search-bench-');
  const stores = openStores(dataDir);
  const created = await stores.app.createFeed('Search bench', null);
  if (!('feed' in created)) throw new Error('feed not created');
  const feed = created.feed;
  const texts: string[] = [];
  let t0 = performance.now();
  for (let i = 0; i < entries; i++) {
    const content = entryContent(c, i);
    texts.push(`${content.subject}\n${content.text}`);
    // Four entries a day, a few of them a day apart: dates spread over the feed's life.
    await stores.app.insertEntry(feed.id, `bench-${i}`, START + Math.floor(i / 4) * DAY + (i % 4) * 3_600_000, Buffer.from(`raw ${i}`), content);
  }
  const insertMs = performance.now() - t0;
  for (let f = 0; f < otherFeeds; f++) {
    const other = await stores.app.createFeed(`other ${f}`, null);
    if (!('feed' in other)) throw new Error('feed not created');
    for (let i = 0; i < otherEntries; i++) await stores.app.insertEntry(other.feed.id, `other-${f}-${i}`, START + i * DAY, Buffer.from(`other raw ${f} ${i}`), entryContent(c, 100_000 + f * otherEntries + i));
  }
  const all = entries + otherFeeds * otherEntries;
  const textBytes = texts.reduce((n, t) => n + Buffer.byteLength(t), 0);
  out(`stored ${entries} entries (${(textBytes / 1e6).toFixed(1)} MB of text) in ${(insertMs / 1000).toFixed(1)} s through insertEntry (${(entries / (insertMs / 1000)).toFixed(0)}/s, one synchronous=FULL transaction each, index kept by trigger)`);

  t0 = performance.now();
  await stores.app.rebuildSearchIndex();
  const rebuildMs = performance.now() - t0;
  out(`rebuilding the whole index (what the upgrade migration does), ${all} entries: ${(rebuildMs / 1000).toFixed(1)} s (${(all / (rebuildMs / 1000)).toFixed(0)} entries/s)`);
  const check = await stores.app.checkSearchIndex();
  out(`index check: ${check ?? 'ok'}`);
  await stores.app.checkpointTruncate();
  out(`app.db: ${(stores.app.fileBytes() / 1e6).toFixed(1)} MB, of which the search index ${((await stores.app.searchIndexBytes()) / 1e6).toFixed(1)} MB`);
  await stores.close();

  const server = new ServerProcess({ dataDir, httpPort: await freePort(), smtpPort: await freePort(), extra: { FEEDMAIL_FEED_KEEP_ENTRIES: '100000' } });
  await server.start();
  const v = vocabulary(texts);
  out(`vocabulary of the feed: ${v.common.length} words in >20% of entries, ${v.mid.length} in 1–20%, and a word of its own in each entry`);
  const list = queries(v, queryCount);
  const url = (q: Query) => `${server.base}/feeds/${feed.feed_token}/search?${new URLSearchParams(q.params).toString()}`;
  let hits = 0;
  try {
    for (const q of list.slice(0, 20)) await timed(url(q));
    const byKind = new Map<string, number[]>();
    const everything: number[] = [];
    const slowest: { ms: number; q: Query }[] = [];
    for (const q of list) {
      const ms = await timed(url(q));
      everything.push(ms);
      byKind.set(q.kind, [...(byKind.get(q.kind) ?? []), ms]);
      slowest.push({ ms, q });
    }
    for (const q of list.slice(0, 50)) if ((await (await fetch(url(q))).text()).includes('<ol class="entries results"')) hits++;
    out();
    out('one client, one query at a time (ms, HTML page, from request to last byte):');
    out(`${'query kind'.padEnd(22)}     n     p50     p95     p99     max`);
    for (const [kind, ms] of byKind) out(`${kind.padEnd(22)} ${stats(ms)}`);
    out(`${'ALL'.padEnd(22)} ${stats(everything)}`);
    out(`(${hits} of the first 50 queries had results)`);
    out('slowest:');
    for (const { ms, q } of slowest.sort((x, y) => y.ms - x.ms).slice(0, 5)) out(`  ${ms.toFixed(1).padStart(7)} ms  ${q.kind}: ${JSON.stringify(q.params).slice(0, 90)}`);

    const concurrent: number[] = [];
    t0 = performance.now();
    let next = 0;
    await Promise.all(Array.from({ length: 4 }, async () => {
      while (next < list.length) {
        const q = list[next++]!;
        concurrent.push(await timed(url(q)));
      }
    }));
    const wall = performance.now() - t0;
    out();
    out(`four clients at once: ${(list.length / (wall / 1000)).toFixed(0)} queries/s`);
    out(`${'ALL'.padEnd(22)} ${stats(concurrent)}`);
  } finally {
    await server.stop();
  }

  const again = openStores(dataDir);
  t0 = performance.now();
  await again.removeFeed(feed.id);
  const deleteMs = performance.now() - t0;
  out();
  out(`deleting the ${entries}-entry feed (every index row removed by trigger): ${(deleteMs / 1000).toFixed(1)} s; index check afterwards: ${(await again.app.checkSearchIndex()) ?? 'ok'}`);
  await again.close();

  out();
  out('searchText (the indexed text of one value) on 1 MB of hostile input:');
  for (const [name, s] of [['"a" repeated', 'a'.repeat(1e6)], ['"a." repeated', 'a.'.repeat(5e5)], ['"://" repeated', '://'.repeat(333_333)], ['words', 'hello world '.repeat(83_333)], ['CJK', '東京'.repeat(5e5)]] as const) {
    const t = performance.now();
    searchText(s);
    out(`  ${name.padEnd(16)} ${(performance.now() - t).toFixed(0).padStart(5)} ms`);
  }
  out(`# load average at end: ${os.loadavg().map((x) => x.toFixed(2)).join(' ')}`);
  fs.rmSync(dataDir, { recursive: true, force: true });
  const file = new URL(`./results/search-${date}.txt`, import.meta.url);
  fs.writeFileSync(file, `${lines.join('\n')}\n`);
  process.stdout.write(`written to bench/results/search-${date}.txt\n`);
}

const invokedDirectly = process.argv[1] !== undefined && fs.realpathSync(process.argv[1]) === fileURLToPath(import.meta.url);
if (invokedDirectly) {
  main().catch((err: unknown) => {
    process.stderr.write(`${(err as Error).stack ?? String(err)}\n`);
    process.exit(1);
  });
}
