/**
 * From one button to a feed entry, through the real SMTP and HTTP servers: creating a feed,
 * mail becoming an entry in all three formats, what SMTP refuses (unknown recipients,
 * oversized messages), conditional requests, the same 404 for every unknown secret, and
 * ingest that neither duplicates an entry nor loses mail when the queue starts over.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { createFeed, readFeed, sendRaw, smtpTransport, startTestServer, type TestServer, waitFor, waitForEntries, sqliteOnly } from './support/helpers.js';
import { TestClock } from './support/clock.js';

function newsletter(to: string, subject: string): string {
  return [
    'From: "Jane Writer" <jane@example.com>',
    `To: ${to}`,
    `Subject: ${subject}`,
    'Date: Tue, 24 Nov 2026 10:00:00 +0000',
    'Message-ID: <m1@example.com>',
    'MIME-Version: 1.0',
    'Content-Type: multipart/alternative; boundary="b1"',
    '',
    '--b1',
    'Content-Type: text/plain; charset=utf-8',
    '',
    'Plain version & more',
    '--b1',
    'Content-Type: text/html; charset=utf-8',
    '',
    '<h1>Issue 1</h1><p>Tom &amp; Jerry <b>bold</b> <a href="https://example.com/read">read</a></p>',
    '--b1--',
    '',
  ].join('\r\n');
}

describe('from one button to a feed entry', () => {
  let server: TestServer;
  const clock = new TestClock();
  before(async () => {
    server = await startTestServer({}, undefined, { clock });
  });
  after(async () => {
    await server.stop();
  });

  it('creates a feed whose three secrets are independent random strings', async () => {
    const a = await createFeed(server.base, 'My news');
    const inbox = a.address.split('@')[0]!;
    const feedSecret = /\/feeds\/([a-z2-7]+)\.atom$/.exec(a.feeds.atom)![1]!;
    const manageSecret = /\/manage\/([a-z2-7]+)$/.exec(a.manage)![1]!;
    for (const s of [inbox, feedSecret, manageSecret]) assert.match(s, /^[a-z2-7]{26}$/);
    assert.equal(new Set([inbox, feedSecret, manageSecret]).size, 3);
    assert.ok(a.address.endsWith('@localhost'));
    assert.equal(a.feeds.rss, a.feeds.atom.replace(/\.atom$/, '.rss'));
    assert.equal(a.feeds.json, a.feeds.atom.replace(/\.atom$/, '.json'));
    // A second feed shares no secret with the first.
    const b = await createFeed(server.base);
    assert.notEqual(b.address, a.address);
    assert.notEqual(b.feeds.atom, a.feeds.atom);
    assert.notEqual(b.manage, a.manage);
    // The manage secret is stored only as a hash.
    const row = await server.app.stores.app.feedByInboxToken(inbox);
    assert.ok(row, 'the whole stored row of the feed');
    assert.ok(!JSON.stringify(row).includes(manageSecret));
  });

  it('shows a one-button page and creates a feed from the HTML form', async () => {
    const home = await fetch(`${server.base}/`);
    assert.equal(home.status, 200);
    const page = await home.text();
    assert.match(page, /<form[^>]*method="post"[^>]*action="\/feeds"/);
    assert.match(home.headers.get('content-security-policy') ?? '', /script-src 'self'/);
    const res = await fetch(`${server.base}/feeds`, { method: 'POST', body: new URLSearchParams({ title: 'Form <feed>' }) });
    assert.equal(res.status, 201);
    const text = await res.text();
    assert.match(text, /[a-z2-7]{26}@localhost/);
    assert.match(text, /\/manage\/[a-z2-7]{26}/);
    assert.ok(text.includes('Form &lt;feed&gt;'), 'title is escaped');
  });

  it('turns a multipart newsletter into an entry in all three formats', async () => {
    const feed = await createFeed(server.base, 'Digest');
    const info = await sendRaw(server.smtpPort, feed.address, newsletter(feed.address, 'Weekly digest — №1'));
    assert.match(info.response, /^250 /);
    for (const format of ['atom', 'rss', 'json'] as const) {
      const items = await waitForEntries(feed.feeds[format], format, 1, 5000, `${format} entry`);
      assert.equal(items.length, 1);
      assert.equal(items[0]!.title, 'Weekly digest — №1');
      assert.equal(items[0]!.author, 'Jane Writer');
      assert.match(items[0]!.link, /\/e\/[a-z2-7]{26}$/);
      assert.ok(items[0]!.html.includes('Tom &amp; Jerry <b>bold</b>'), `${format} carries the HTML body`);
    }
    const [entry] = await readFeed(feed.feeds.json, 'json');
    const view = await fetch(entry!.link);
    assert.equal(view.status, 200);
    const page = await view.text();
    assert.ok(page.includes('Weekly digest — №1'));
    assert.ok(page.includes('Jane Writer'));
    assert.match(page, /<iframe[^>]*sandbox=/);
    const body = await fetch(`${entry!.link}/body`);
    assert.ok((await body.text()).includes('<b>bold</b>'));
    // The body document runs in a sandbox that allows popups (links) and keeps its origin (so that the
    // entry page's own script can size the frame), and nothing else: no scripts, no forms.
    const sandbox = /(?:^|;\s*)sandbox((?:\s+[\w-]+)*)\s*(?:;|$)/.exec(body.headers.get('content-security-policy') ?? '');
    assert.ok(sandbox, 'the body CSP has a sandbox directive');
    assert.deepEqual(sandbox[1]!.trim().split(/\s+/).sort(), ['allow-popups', 'allow-popups-to-escape-sandbox', 'allow-same-origin']);
    const frameSandbox = /<iframe[^>]*\ssandbox="([^"]*)"/.exec(page);
    assert.deepEqual(frameSandbox?.[1]!.trim().split(/\s+/).sort(), ['allow-popups', 'allow-popups-to-escape-sandbox', 'allow-same-origin']);
  });

  it('delivers plus-addressed and differently cased mail to the same feed', async () => {
    const feed = await createFeed(server.base);
    const [local, domain] = feed.address.split('@') as [string, string];
    await sendRaw(server.smtpPort, `${local.toUpperCase()}+news@${domain.toUpperCase()}`, newsletter(feed.address, 'Plus one'));
    const items = await waitForEntries(feed.feeds.atom, 'atom');
    assert.equal(items[0]!.title, 'Plus one');
  });

  it('refuses unknown recipients with 550 at RCPT TO and accepts the known ones of a message', async () => {
    const feed = await createFeed(server.base);
    await assert.rejects(sendRaw(server.smtpPort, 'nobody@localhost', newsletter('nobody@localhost', 'x')), (err: Error & { responseCode?: number; response?: string }) => {
      assert.equal(err.responseCode, 550);
      assert.match(err.response ?? '', /5\.1\.1/);
      return true;
    });
    await assert.rejects(sendRaw(server.smtpPort, `${feed.address.split('@')[0]}@other.example`, 'Subject: x\r\n\r\nx'), { responseCode: 550 });
    const other = await createFeed(server.base);
    const info = await sendRaw(server.smtpPort, [feed.address, 'nobody@localhost', other.address], newsletter(feed.address, 'To two feeds'));
    assert.deepEqual(info.rejected, ['nobody@localhost']);
    for (const f of [feed, other]) {
      const items = await waitForEntries(f.feeds.atom, 'atom');
      assert.equal(items.length, 1);
      assert.equal(items[0]!.title, 'To two feeds');
    }
  });

  it('refuses a message over the size limit with 552, whether or not SIZE was declared', async () => {
    const small = await startTestServer({ maxMessageBytes: '10k' });
    try {
      const feed = await createFeed(small.base);
      const big = `Subject: big\r\n\r\n${'x'.repeat(20_000)}\r\n`;
      await assert.rejects(sendRaw(small.smtpPort, feed.address, big), { responseCode: 552 });
      // Without the SIZE extension the limit is enforced after DATA.
      const { SMTPClient } = await import('./support/smtp-client.js');
      const client = await SMTPClient.connect(small.smtpPort);
      await client.command('HELO test', 250);
      await client.command('MAIL FROM:<a@example.com>', 250);
      await client.command(`RCPT TO:<${feed.address}>`, 250);
      await client.command('DATA', 354);
      const reply = await client.command(`${big}.`, 552);
      assert.match(reply, /^552 /);
      await client.close();
    } finally {
      await small.stop();
    }
  });

  it('answers 304 to a conditional request with the ETag or Last-Modified', async () => {
    const feed = await createFeed(server.base);
    const first = await fetch(feed.feeds.atom);
    assert.equal(first.status, 200);
    const etag = first.headers.get('etag');
    const lastModified = first.headers.get('last-modified');
    assert.ok(etag && lastModified);
    assert.match(first.headers.get('cache-control') ?? '', /public, max-age=\d+/);
    assert.equal((await fetch(feed.feeds.atom, { headers: { 'If-None-Match': etag } })).status, 304);
    assert.equal((await fetch(feed.feeds.atom, { headers: { 'If-Modified-Since': lastModified } })).status, 304);
    // A date before Last-Modified means the reader's copy is older: the whole feed.
    const earlier = new Date(Date.parse(lastModified) - 60_000).toUTCString();
    assert.equal((await fetch(feed.feeds.atom, { headers: { 'If-Modified-Since': earlier } })).status, 200);
    const later = new Date(Date.parse(lastModified) + 60_000).toUTCString();
    assert.equal((await fetch(feed.feeds.atom, { headers: { 'If-Modified-Since': later } })).status, 304);
    // Last-Modified has whole seconds, and the entry below usually arrives within the same
    // second as the fetches above: its Last-Modified must still be a later one.
    await sendRaw(server.smtpPort, feed.address, newsletter(feed.address, 'New one'));
    await waitFor(async () => (await readFeed(feed.feeds.atom, 'atom')).length > 0);
    // A new entry changes the ETag.
    const again = await fetch(feed.feeds.atom, { headers: { 'If-None-Match': etag } });
    assert.equal(again.status, 200);
    assert.notEqual(again.headers.get('etag'), etag);
    // A reader that sends only If-Modified-Since gets the new entry and a later Last-Modified.
    const byDate = await fetch(feed.feeds.atom, { headers: { 'If-Modified-Since': lastModified } });
    assert.equal(byDate.status, 200, 'a reader sending only If-Modified-Since sees the new entry');
    const newLastModified = byDate.headers.get('last-modified') ?? '';
    assert.ok(Date.parse(newLastModified) > Date.parse(lastModified), `Last-Modified moved: ${lastModified} -> ${newLastModified}`);
    assert.ok((await byDate.text()).includes('New one'));
    assert.equal((await fetch(feed.feeds.atom, { headers: { 'If-Modified-Since': newLastModified } })).status, 304);
  });

  it('gives every change a later Last-Modified second, even a change within the second of a fetch', async () => {
    const feed = await createFeed(server.base);
    const first = await fetch(feed.feeds.atom);
    const lastModified = first.headers.get('last-modified')!;
    const stored = (await server.app.stores.app.feedByFeedToken(feed.feeds.atom.match(/feeds\/([a-z2-7]+)/)![1]!))!;
    // A change at the very instant of the last one, as a new entry right after a fetch would be.
    await clock.at(stored.updated_at - Date.now(), () => server.app.stores.app.renameFeed(stored.id, 'renamed'));
    const next = await fetch(feed.feeds.atom, { headers: { 'If-Modified-Since': lastModified } });
    assert.equal(next.status, 200, 'a reader revalidating by date alone sees the change');
    assert.ok(Date.parse(next.headers.get('last-modified')!) > Date.parse(lastModified));
  });

  it('answers the same 404 for every unknown secret', async () => {
    const paths = ['/feeds/aaaaaaaaaaaaaaaaaaaaaaaaaa.atom', '/feeds/aaaaaaaaaaaaaaaaaaaaaaaaaa', '/e/aaaaaaaaaaaaaaaaaaaaaaaaaa', '/manage/aaaaaaaaaaaaaaaaaaaaaaaaaa', '/feeds/short.rss'];
    const bodies = new Set<string>();
    for (const p of paths) {
      const res = await fetch(`${server.base}${p}`);
      assert.equal(res.status, 404, p);
      bodies.add(await res.text());
    }
    assert.equal(bodies.size, 1);
  });

  it('runs the same ingest job twice without duplicating the entry', async () => {
    const feed = await createFeed(server.base);
    const sent = await sendRaw(server.smtpPort, feed.address, newsletter(feed.address, 'Once'));
    const journalId = Number(/queued as (\d+)/.exec(sent.response)![1]);
    await waitFor(async () => (await readFeed(feed.feeds.atom, 'atom')).length > 0);
    const { ingestJournalRow } = await import('../src/mail/ingest.js');
    const { ProcessPool } = await import('../src/mail/process-pool.js');
    const { createLogger } = await import('../src/log.js');
    const processor = new ProcessPool({ maxPartBytes: 1e7, keepTrackingPixels: false }, 5000);
    const deps = { app: server.app.stores.app, queue: server.app.stores.queue, processor, log: createLogger('silent') };
    assert.deepEqual(await ingestJournalRow(deps, journalId), { stored: 0 });
    await processor.close();
    assert.equal((await readFeed(feed.feeds.atom, 'atom')).length, 1);
  });

  it('stores new mail after queue.db was recreated (journal ids start over)', async (t) => {
    if (sqliteOnly(t, 'deletes the queue.db file')) return;
    const dataDir = (await import('./support/helpers.js')).tempDir();
    const first = await startTestServer({ dataDir });
    const feed = await createFeed(first.base);
    await sendRaw(first.smtpPort, feed.address, newsletter(feed.address, 'before'));
    await waitFor(async () => (await readFeed(feed.feeds.atom, 'atom')).length === 1);
    await first.stop();
    // An operator deletes or restores queue.db: the next message gets journal id 1 again.
    const fs = await import('node:fs');
    for (const suffix of ['', '-wal', '-shm']) fs.rmSync(`${dataDir}/queue.db${suffix}`, { force: true });
    const second = await startTestServer({ dataDir });
    try {
      const url = feed.feeds.atom.replace(/^http:\/\/[^/]+/, second.base);
      await sendRaw(second.smtpPort, feed.address, newsletter(feed.address, 'after'));
      const items = await waitForEntries(url, 'atom', 2, 5000, 'the new entry');
      assert.deepEqual(items.map((i) => i.title), ['after', 'before']);
    } finally {
      await second.stop();
    }
  });

  it('keeps the SMTP session usable for several messages', async () => {
    const feed = await createFeed(server.base);
    const transport = smtpTransport(server.smtpPort);
    for (let i = 0; i < 3; i++) await transport.sendMail({ envelope: { from: 'a@example.com', to: feed.address }, raw: newsletter(feed.address, `n${i}`) });
    transport.close();
    await waitFor(async () => (await readFeed(feed.feeds.rss, 'rss')).length === 3);
  });
});
