/**
 * `feedmail copy-db` at the size of issue 15's acceptance, by hand (not part of npm run bench):
 * a SQLite data directory with --entries entries (default 10,000; realistic newsletter text
 * from bench/search.ts's corpus, each with its raw message journaled) over --feeds feeds is
 * copied to a fresh PostgreSQL database and back to a new SQLite directory; the feed
 * documents (Atom, RSS, JSON) and search results of the original and the round trip are
 * compared; then a copy interrupted with SIGINT after --interrupt-after seconds is finished
 * with --resume. Prints the timings (with the load average: the machine is shared).
 *
 *   FEEDMAIL_TEST_DATABASE_URL=postgres://postgres@127.0.0.1:55433/postgres \
 *     node --import tsx bench/copy-db.ts [--entries 10000] [--feeds 10] [--interrupt-after 3]
 *
 * FEEDMAIL_TEST_DATABASE_URL: an admin URL of a throwaway cluster (scripts/test-pg.sh prints one).
 * COPY_BENCH_SHOW_DIFFS=<dir>: name each page that reads differently on PostgreSQL, and write
 * each differing search page of both dialects into <dir>/diff-<n>.json.
 */
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import { parseArgs } from 'node:util';
import pg from 'pg';
import { openStores } from '../src/store/index.js';
import { startTestServer, tempDir } from '../test/support/helpers.js';
import { corpus, entryContent } from './search.js';

const HELP = 'Usage: FEEDMAIL_TEST_DATABASE_URL=postgres://… node --import tsx bench/copy-db.ts [--entries 10000] [--feeds 10] [--interrupt-after 3]\n';

function copyDb(args: string[], interruptAfterMs?: number): Promise<{ code: number | null; signal: string | null; ms: number; out: string }> {
  const started = performance.now();
  return new Promise((resolve) => {
    const child = spawn(process.execPath, ['--import', 'tsx', 'src/cli.ts', 'copy-db', ...args], { env: { ...process.env, FEEDMAIL_LOG_LEVEL: 'warn' }, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.setEncoding('utf8').on('data', (c: string) => { out += c; });
    child.stderr.setEncoding('utf8').on('data', (c: string) => { out += c; });
    const timer = interruptAfterMs === undefined ? undefined : setTimeout(() => child.kill('SIGINT'), interruptAfterMs);
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, ms: performance.now() - started, out });
    });
  });
}

/** Every feed's three documents and a few searches, as text, from a server on `where`. */
async function snapshot(where: string, feedTokens: { feed: string; page: string }[], queries: string[]): Promise<string[]> {
  const server = await startTestServer({ databaseUrl: where.startsWith('postgres') ? where : '', dataDir: where.startsWith('postgres') ? tempDir() : where, baseUrl: 'https://feeds.example.test', feedMaxEntries: '1000', feedKeepEntries: '100000' }, { web: true, smtp: false, jobs: false });
  try {
    const seen: string[] = [];
    for (const { feed, page } of feedTokens) {
      for (const format of ['atom', 'rss', 'json']) seen.push(await (await fetch(`${server.base}/feeds/${feed}.${format}`)).text());
      for (const q of queries) seen.push(await (await fetch(`${server.base}/feeds/${page}/search?${new URLSearchParams({ q })}`, { headers: { Accept: 'application/json' } })).text());
    }
    return seen;
  } finally {
    await server.stop();
  }
}

const made: string[] = [];

/** Runs one statement as the cluster's admin. */
async function admin(statement: string): Promise<void> {
  const client = new pg.Client({ connectionString: process.env.FEEDMAIL_TEST_DATABASE_URL });
  await client.connect();
  try {
    await client.query(statement);
  } finally {
    await client.end();
  }
}

/** A fresh database on the admin URL's cluster, dropped at the end. */
async function freshDatabase(): Promise<string> {
  const name = `feedmail_bench_copy_${process.pid}_${made.length}`;
  await admin(`CREATE DATABASE ${name}`);
  made.push(name);
  const url = new URL(process.env.FEEDMAIL_TEST_DATABASE_URL!);
  url.pathname = `/${name}`;
  return url.toString();
}

async function main(): Promise<void> {
  const { values } = parseArgs({ options: { entries: { type: 'string', default: '10000' }, feeds: { type: 'string', default: '10' }, 'interrupt-after': { type: 'string', default: '3' }, help: { type: 'boolean' } } });
  if (values.help || !process.env.FEEDMAIL_TEST_DATABASE_URL) {
    process.stdout.write(HELP);
    return;
  }
  const entries = Number(values.entries);
  const feedCount = Number(values.feeds);
  const out = (line = '') => process.stdout.write(`${line}\n`);
  out(`# copy-db with ${entries} entries over ${feedCount} feeds; ${os.cpus().length} cores, load average ${os.loadavg().map((x) => x.toFixed(2)).join(' ')}`);

  const source = tempDir('feedmail-copy-bench-');
  const stores = openStores(source);
  const c = await corpus();
  const feeds: { id: number; feed: string; page: string }[] = [];
  for (let f = 0; f < feedCount; f++) {
    const made = await stores.app.createFeed(`bench ${f}`, null);
    if (!('feed' in made)) throw new Error('feed creation refused');
    feeds.push({ id: made.feed.id, feed: made.feed.feed_token, page: made.feed.feed_token });
  }
  let t = performance.now();
  for (let i = 0; i < entries; i++) {
    const content = entryContent(c, i);
    const feed = feeds[i % feedCount]!;
    const raw = Buffer.from(`From: ${content.fromName} <${content.fromAddress}>\r\nSubject: ${content.subject}\r\nMessage-ID: <bench-${i}@example.com>\r\n\r\n${content.text}`);
    const journalId = await stores.queue.journalMessage({ source: 'smtp', mailFrom: content.fromAddress, feedIds: [feed.id], raw });
    const row = await stores.queue.journalById(journalId);
    await stores.app.insertEntry(feed.id, row!.uid, Date.now(), raw, content);
  }
  await stores.close();
  out(`seeded ${entries} entries (with their journaled raw mail) in ${((performance.now() - t) / 1000).toFixed(1)} s`);
  const queries = ['newsletter', 'uniq1aword', '"this week"', 'database', '東京'];

  t = performance.now();
  const before = await snapshot(source, feeds, queries);
  out(`read ${before.length} documents and search pages from the original in ${((performance.now() - t) / 1000).toFixed(1)} s`);

  const pgUrl = await freshDatabase();
  const there = await copyDb(['--from', source, '--to', pgUrl]);
  out(`copy-db SQLite → PostgreSQL: exit ${there.code}, ${(there.ms / 1000).toFixed(1)} s: ${there.out.trim().split('\n').at(-1)}`);
  const back = tempDir('feedmail-copy-bench-back-');
  const home = await copyDb(['--from', pgUrl, '--to', back]);
  out(`copy-db PostgreSQL → SQLite: exit ${home.code}, ${(home.ms / 1000).toFixed(1)} s: ${home.out.trim().split('\n').at(-1)}`);
  const onPg = await snapshot(pgUrl, feeds, queries);
  const after = await snapshot(back, feeds, queries);
  const differing = (a: string[]) => a.filter((s, i) => s !== before[i]).length;
  if (process.env.COPY_BENCH_SHOW_DIFFS) {
    const perFeed = 3 + queries.length;
    onPg.forEach((s, i) => {
      if (s !== before[i] && i % perFeed >= 3) fs.writeFileSync(`${process.env.COPY_BENCH_SHOW_DIFFS}/diff-${i}.json`, JSON.stringify({ sqlite: JSON.parse(before[i]!), postgres: JSON.parse(s) }, null, 1));
      if (s !== before[i]) out(`  differs on PostgreSQL: feed ${Math.floor(i / perFeed)}, ${i % perFeed < 3 ? ['atom', 'rss', 'json'][i % perFeed] : `search "${queries[(i % perFeed) - 3]}"`}`);
    });
  }
  out(`documents and search pages differing from the original: on PostgreSQL ${differing(onPg)} of ${before.length}, back on SQLite ${differing(after)} of ${before.length}`);

  const resumed = await freshDatabase();
  const cut = await copyDb(['--from', source, '--to', resumed], Number(values['interrupt-after']) * 1000);
  out(`copy-db interrupted with SIGINT after ${values['interrupt-after']} s: exit ${cut.code ?? cut.signal}`);
  const rest = await copyDb(['--from', source, '--to', resumed, '--resume']);
  out(`copy-db --resume: exit ${rest.code}, ${(rest.ms / 1000).toFixed(1)} s: ${rest.out.trim().split('\n').at(-1)}`);
  out(`# load average at end: ${os.loadavg().map((x) => x.toFixed(2)).join(' ')}`);
  for (const name of made) await admin(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
}

main().then(() => process.exit(0), (err: unknown) => {
  process.stderr.write(`${(err as Error).stack ?? String(err)}\n`);
  process.exit(1);
});
