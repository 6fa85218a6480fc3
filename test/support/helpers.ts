/** Test helpers: a real feedmail on port 0 in a temporary data directory, and real clients. */
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { execFileSync } from 'node:child_process';
import nodemailer from 'nodemailer';
import { XMLParser } from 'fast-xml-parser';
import { startApp, type App } from '../../src/app.js';
import { loadConfig, type ConfigOverrides } from '../../src/config.js';
import { createLogger } from '../../src/log.js';
import type { Clock } from '../../src/store/index.js';
import { testDatabaseUrl } from './pg.js';

export { onPostgres, openTestStores, postgresOnly, sqliteOnly, sqliteOnlySuite, testDatabaseEnv, testDatabaseEnvSync, testDatabaseUrl } from './pg.js';

/** A port nothing listens on right now, for servers started as child processes. */
export async function freePort(): Promise<number> {
  const srv = net.createServer();
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  const port = (srv.address() as net.AddressInfo).port;
  await new Promise((r) => srv.close(r));
  return port;
}

export function tempDir(prefix = 'feedmail-test-'): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), prefix));
}

export interface TestServer {
  app: App;
  base: string;
  smtpPort: number;
  dataDir: string;
  stop(): Promise<void>;
}

/**
 * `clock`: the stores' time, for tests that age rows (see support/clock.ts). On the
 * PostgreSQL pass the data directory's own database is used (support/pg.ts).
 */
export async function startTestServer(overrides: ConfigOverrides = {}, roles = { web: true, smtp: true, jobs: true }, options: { clock?: Clock } = {}): Promise<TestServer> {
  const dataDir = overrides.dataDir ?? tempDir();
  const config = loadConfig({}, {
    httpPort: '0', smtpPort: '0', logLevel: 'silent', allowUnsafeStorage: 'true', minFreeBytes: '0',
    databaseUrl: await testDatabaseUrl(dataDir) ?? '', ...overrides, dataDir,
  });
  const app = await startApp(config, createLogger(config.logLevel), roles, { clock: options.clock });
  return {
    app,
    base: `http://127.0.0.1:${app.http?.port}`,
    smtpPort: app.smtp?.port ?? 0,
    dataDir,
    stop: () => app.stop(),
  };
}

export interface CreatedFeed {
  address: string;
  feeds: { atom: string; rss: string; json: string };
  page: string;
  manage: string;
}

export async function createFeed(base: string, title = ''): Promise<CreatedFeed> {
  const res = await fetch(`${base}/feeds`, {
    method: 'POST',
    headers: { Accept: 'application/json', 'Content-Type': 'application/json' },
    body: JSON.stringify({ title }),
  });
  if (res.status !== 201) throw new Error(`feed creation answered ${res.status}: ${await res.text()}`);
  return (await res.json()) as CreatedFeed;
}

export function smtpTransport(port: number) {
  return nodemailer.createTransport({ host: '127.0.0.1', port, secure: false, ignoreTLS: true, pool: false, connectionTimeout: 5000 });
}

/** Sends a raw RFC 5322 message with nodemailer's SMTP client. */
export async function sendRaw(port: number, to: string | string[], raw: string | Buffer, from = 'sender@example.com') {
  const transport = smtpTransport(port);
  try {
    return await transport.sendMail({ envelope: { from, to }, raw });
  } finally {
    transport.close();
  }
}

/** Polls until `check` returns a value or the time runs out. */
export async function waitFor<T>(check: () => Promise<T | undefined | null | false>, timeoutMs = 5000, what = 'condition'): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await check();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** Parsed XML is untyped; the tests' assertions check its shape. */
// eslint-disable-next-line @typescript-eslint/no-explicit-any
type XmlNode = Record<string, any>;

export const xml = new XMLParser({ ignoreAttributes: false, attributeNamePrefix: '@', isArray: (name) => ['entry', 'item', 'link'].includes(name) });

export interface FeedItemView {
  title: string;
  link: string;
  author: string;
  html: string;
  enclosures: { url: string; type: string }[];
}

/** Fetches a feed and reads its entries the way a feed reader would, by parsing it. */
export async function readFeed(url: string, format: 'atom' | 'rss' | 'json'): Promise<FeedItemView[]> {
  const res = await fetch(url);
  if (res.status !== 200) throw new Error(`${url} answered ${res.status}`);
  const body = await res.text();
  if (format === 'json') {
    const doc = JSON.parse(body) as { items: { title: string; url: string; authors: { name: string }[]; content_html: string; attachments?: { url: string; mime_type: string }[] }[] };
    return doc.items.map((i) => ({ title: i.title, link: i.url, author: i.authors[0]?.name ?? '', html: i.content_html, enclosures: (i.attachments ?? []).map((a) => ({ url: a.url, type: a.mime_type })) }));
  }
  const doc = xml.parse(body);
  if (format === 'atom') {
    return (doc.feed.entry ?? []).map((e: XmlNode) => ({
      title: String(e.title['#text'] ?? e.title),
      link: e.link.find((l: Record<string, string>) => l['@rel'] === 'alternate')['@href'],
      author: String(e.author.name),
      html: String(e.content['#text'] ?? ''),
      enclosures: e.link.filter((l: Record<string, string>) => l['@rel'] === 'enclosure').map((l: Record<string, string>) => ({ url: l['@href'], type: l['@type'] })),
    }));
  }
  return (doc.rss.channel.item ?? []).map((i: XmlNode) => ({
    title: String(i.title),
    link: String(i.link),
    author: String(i['dc:creator'] ?? ''),
    html: String(i.description ?? ''),
    enclosures: i.enclosure ? [{ url: i.enclosure['@url'], type: i.enclosure['@type'] }] : [],
  }));
}

/** Polls a feed the way a reader would until it lists at least `count` entries, and returns them. */
export function waitForEntries(url: string, format: 'atom' | 'rss' | 'json', count = 1, timeoutMs = 5000, what = `${count} entr${count === 1 ? 'y' : 'ies'} in ${format}`): Promise<FeedItemView[]> {
  return waitFor(async () => {
    const items = await readFeed(url, format);
    return items.length >= count ? items : undefined;
  }, timeoutMs, what);
}

export function fixture(name: string): Buffer {
  return fs.readFileSync(new URL(`../fixtures/${name}`, import.meta.url));
}

/** Mounts a small ext4 image (needs root and loop devices); returns undefined where that is not possible. */
export function mountSmallFilesystem(megabytes: number): { dir: string; unmount: () => void } | undefined {
  const work = tempDir('feedmail-loop-');
  const image = path.join(work, 'fs.img');
  const dir = path.join(work, 'mnt');
  fs.mkdirSync(dir);
  try {
    execFileSync('truncate', ['-s', `${megabytes}M`, image]);
    execFileSync('mkfs.ext4', ['-q', '-F', '-m', '0', image], { stdio: 'ignore' });
    execFileSync('mount', ['-o', 'loop', image, dir], { stdio: 'ignore' });
  } catch {
    return undefined;
  }
  return { dir, unmount: () => execFileSync('umount', ['-l', dir]) };
}
