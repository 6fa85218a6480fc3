/**
 * Feed documents served from memory (issue 14, web/hot-feeds.ts) are never stale: two servers
 * on one data directory stand for `serve --processes 2` (each has its own connections to
 * app.db, as each process does). One of them stores mail and runs the manage actions; the
 * other has the feed's documents hot in memory, and must see every change at its next request.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { HotDocuments } from '../src/web/hot-feeds.js';
import { createFeed, readFeed, sendRaw, startTestServer, waitForEntries, type CreatedFeed, type TestServer } from './support/helpers.js';

let writer: TestServer;
let reader: TestServer;
before(async () => {
  writer = await startTestServer();
  // Web only: it reads what the writer stores, as a second process of `serve --processes 2` does.
  reader = await startTestServer({ dataDir: writer.dataDir }, { web: true, smtp: false, jobs: false });
});
after(async () => {
  await reader.stop();
  await writer.stop();
});

/** The same feed's URLs on the reading server. */
function onReader(url: string): string {
  const u = new URL(url);
  return `${reader.base}${u.pathname}${u.search}`;
}

function message(to: string, subject: string): string {
  return `From: Sender <sender@example.com>\r\nTo: ${to}\r\nSubject: ${subject}\r\nMessage-ID: <${Math.random().toString(36).slice(2)}@example.com>\r\n\r\nText of ${subject}\r\n`;
}

function post(url: string, fields: Record<string, string>) {
  return fetch(url, {
    method: 'POST', redirect: 'manual',
    headers: { 'Content-Type': 'application/x-www-form-urlencoded', Accept: 'application/json' },
    body: new URLSearchParams(fields).toString(),
  });
}

/** Reads a document in every encoding, twice, so that each is rendered and then answered from memory. */
async function makeHot(url: string): Promise<string> {
  let etag = '';
  for (let i = 0; i < 2; i++) {
    for (const encoding of ['identity', 'gzip', 'br']) {
      const res = await fetch(url, { headers: { 'Accept-Encoding': encoding } });
      assert.equal(res.status, 200);
      await res.arrayBuffer();
      etag = res.headers.get('etag') ?? '';
    }
  }
  const again = await fetch(url, { headers: { 'If-None-Match': etag } });
  assert.equal(again.status, 304, 'unchanged: a conditional GET is answered 304');
  return etag;
}

async function mailAndWait(feed: CreatedFeed, subject: string, count: number): Promise<void> {
  await sendRaw(writer.smtpPort, feed.address, message(feed.address, subject));
  await waitForEntries(feed.feeds.atom, 'atom', count, 10_000);
}

describe('feed documents kept in memory', () => {
  it('a conditional GET right after an entry is stored by another process answers 200 with the entry', async () => {
    const feed = await createFeed(writer.base, 'hot');
    await mailAndWait(feed, 'First letter', 1);
    const atom = onReader(feed.feeds.atom);
    const etag = await makeHot(atom);
    await mailAndWait(feed, 'Second letter', 2);
    // No wait: the entry is visible on the writer, so the reader must not answer from memory.
    const res = await fetch(atom, { headers: { 'If-None-Match': etag } });
    assert.equal(res.status, 200);
    assert.notEqual(res.headers.get('etag'), etag);
    assert.match(await res.text(), /Second letter/);
    for (const format of ['atom', 'rss', 'json'] as const) {
      assert.deepEqual((await readFeed(onReader(feed.feeds[format]), format)).map((i) => i.title), ['Second letter', 'First letter'], format);
    }
  });

  it('a document hot in the same process changes with an entry deleted there', async () => {
    const feed = await createFeed(writer.base, 'delete here');
    await mailAndWait(feed, 'Keep me', 1);
    await mailAndWait(feed, 'Delete me', 2);
    await makeHot(feed.feeds.atom);
    await makeHot(onReader(feed.feeds.atom));
    const manage = await (await fetch(feed.manage)).text();
    const path = /Delete me<\/a>[\s\S]*?href="(\/manage\/[a-z2-7]+\/entries\/\d+\/delete)"/.exec(manage)?.[1];
    assert.ok(path, 'the manage page has a delete link');
    assert.equal((await post(`${writer.base}${path}`, { confirm: 'yes' })).status, 200);
    for (const url of [feed.feeds.atom, onReader(feed.feeds.atom)]) {
      assert.deepEqual((await readFeed(url, 'atom')).map((i) => i.title), ['Keep me'], url);
    }
  });

  it('a rotated feed URL answers 404 at once in both processes, even while its documents are hot', async () => {
    const feed = await createFeed(writer.base, 'rotate');
    await mailAndWait(feed, 'Before rotation', 1);
    await makeHot(feed.feeds.atom);
    await makeHot(onReader(feed.feeds.atom));
    const res = await post(`${feed.manage}/rotate-feed-url`, { confirm: 'yes' });
    assert.equal(res.status, 200);
    const rotated = (await res.json()) as { feeds: CreatedFeed['feeds'] };
    for (const url of [feed.feeds.atom, onReader(feed.feeds.atom)]) {
      for (const encoding of ['identity', 'gzip', 'br']) {
        const old = await fetch(url, { headers: { 'Accept-Encoding': encoding } });
        assert.equal(old.status, 404, `${url} (${encoding})`);
        await old.arrayBuffer();
      }
    }
    const fresh = await fetch(onReader(rotated.feeds.atom));
    assert.equal(fresh.status, 200);
    assert.ok((await fresh.text()).includes(new URL(rotated.feeds.atom).pathname), 'the document names its new URL');
  });

  it('a renamed feed shows its new title in the other process at once', async () => {
    const feed = await createFeed(writer.base, 'Old name');
    await mailAndWait(feed, 'Letter', 1);
    const etag = await makeHot(onReader(feed.feeds.atom));
    assert.equal((await post(`${feed.manage}/rename`, { title: 'New name' })).status, 200);
    const res = await fetch(onReader(feed.feeds.atom), { headers: { 'If-None-Match': etag } });
    assert.equal(res.status, 200);
    const doc = await res.text();
    assert.match(doc, /New name/);
    assert.doesNotMatch(doc, /Old name/);
  });

  it('a deleted feed answers 404 at once, and a new feed given the same id never gets its documents', async () => {
    const feed = await createFeed(writer.base, 'Deleted feed');
    await mailAndWait(feed, 'Secret of the deleted feed', 1);
    await makeHot(onReader(feed.feeds.atom));
    await makeHot(feed.feeds.atom);
    assert.equal((await post(`${feed.manage}/delete`, { confirm: 'yes' })).status, 200);
    for (const url of [feed.feeds.atom, onReader(feed.feeds.atom)]) {
      const res = await fetch(url);
      assert.equal(res.status, 404, url);
      await res.arrayBuffer();
    }
    // SQLite gives the highest id again once its row is gone: the new feed may have the deleted one's id and version.
    const next = await createFeed(writer.base, 'Next feed');
    await mailAndWait(next, 'Letter of the new feed', 1);
    for (const url of [next.feeds.atom, onReader(next.feeds.atom)]) {
      for (const encoding of ['identity', 'gzip', 'br']) {
        const res = await fetch(url, { headers: { 'Accept-Encoding': encoding } });
        assert.equal(res.status, 200);
        const doc = await res.text();
        assert.match(doc, /Letter of the new feed/, `${url} (${encoding})`);
        assert.doesNotMatch(doc, /Secret of the deleted feed|Deleted feed/, `${url} (${encoding})`);
      }
    }
  });
});

describe('HotDocuments', () => {
  it('keeps at most its bound in bytes, dropping the least recently read first', () => {
    const docs = new HotDocuments(10);
    docs.set('a', Buffer.alloc(4));
    docs.set('b', Buffer.alloc(4));
    assert.ok(docs.get('a'), 'a read again: b is now the least recently read');
    docs.set('c', Buffer.alloc(4));
    assert.equal(docs.get('b'), undefined);
    assert.ok(docs.get('a') && docs.get('c'));
    assert.equal(docs.bytes, 8);
    docs.set('huge', Buffer.alloc(11));
    assert.equal(docs.get('huge'), undefined, 'a document larger than the bound is not kept');
    assert.equal(docs.bytes, 8);
    docs.set('a', Buffer.alloc(2));
    assert.equal(docs.bytes, 6, 'a replaced document counts once');
    const off = new HotDocuments(0);
    off.set('a', Buffer.alloc(1));
    assert.equal(off.get('a'), undefined, '0 keeps nothing');
  });
});
