/**
 * Live updates (issue 11): a feed page open in a real browser shows newly mailed entries
 * without reload, also when another process (a jobs-only instance on the same data
 * directory) stored them; streams resume with Last-Event-ID, are capped, carry only their
 * own feed's entries, and cost no database work while none is open.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { Browser } from 'playwright-core';
import { allTasks } from '../src/jobs/tasks/index.js';
import { createLogger } from '../src/log.js';
import { ProcessPool } from '../src/mail/process-pool.js';
import { launchChromium } from './support/browser.js';
import { TestClock } from './support/clock.js';
import { createFeed, sendRaw, startTestServer, waitFor, type CreatedFeed, type TestServer } from './support/helpers.js';
import { openStream } from './support/sse.js';

function message(to: string, subject: string): string {
  return [`From: Live News <news@live.example>`, `To: ${to}`, `Subject: ${subject}`, 'MIME-Version: 1.0', 'Content-Type: text/plain; charset=utf-8', '', `Body of ${subject}`, ''].join('\r\n');
}

async function metric(base: string, name: string): Promise<number> {
  const text = await (await fetch(`${base}/metrics`)).text();
  const line = text.split('\n').find((l) => l.startsWith(`${name} `));
  return line ? Number(line.split(' ')[1]) : NaN;
}

function eventsUrl(feed: CreatedFeed): string {
  return `${feed.page.replace(/\/$/, '')}/events`;
}

describe('live updates of feed pages', { timeout: 180_000 }, () => {
  let server: TestServer;
  let browser: Browser;

  before(async () => {
    server = await startTestServer({ sseMaxStreams: '3' });
    browser = await launchChromium();
  });

  after(async () => {
    await browser?.close();
    await server?.stop();
  });

  it('does no database work for live updates while no stream is open', async () => {
    const before = await metric(server.base, 'feedmail_live_polls_total');
    const feed = await createFeed(server.base);
    await sendRaw(server.smtpPort, feed.address, message(feed.address, 'Nobody is watching'));
    await new Promise((r) => setTimeout(r, 1500));
    assert.equal(await metric(server.base, 'feedmail_live_polls_total'), before);
    assert.equal(await metric(server.base, 'feedmail_live_streams'), 0);
  });

  it('shows a mailed entry on an open feed page without reload', async () => {
    const feed = await createFeed(server.base, 'Live page');
    await sendRaw(server.smtpPort, feed.address, message(feed.address, 'Already there'));
    await waitFor(async () => (await fetch(feed.page).then((r) => r.text())).includes('Already there'), 10_000, 'the first entry');
    const page = await browser.newPage();
    try {
      // A Content Security Policy violation (an inline script, a blocked connection) shows in the console.
      const violations: string[] = [];
      page.on('console', (m) => { if (/Content Security Policy/i.test(m.text())) violations.push(m.text()); });
      await page.goto(feed.page);
      await waitFor(async () => (await metric(server.base, 'feedmail_live_streams')) === 1, 10_000, 'the page\'s stream');
      const sent = Date.now();
      await sendRaw(server.smtpPort, feed.address, message(feed.address, 'Fresh <b>off</b> the press'));
      await page.waitForSelector('#entries li:first-child a.subject >> text=Fresh <b>off</b> the press', { timeout: 15_000 });
      console.log(`# live: entry shown ${Date.now() - sent} ms after the 250`);
      assert.equal(await page.locator('#entries li').count(), 2);
      assert.match(await page.textContent('#live-status') ?? '', /Fresh <b>off<\/b> the press/);
      assert.equal(await page.locator('#entries b').count(), 0, 'data is set as text, never as HTML');
      const href = await page.getAttribute('#entries li:first-child a.subject', 'href');
      assert.match(href ?? '', /\/e\/[a-z2-7]+$/);
      assert.deepEqual(violations, []);
    } finally {
      await page.close();
    }
    await waitFor(async () => (await metric(server.base, 'feedmail_live_streams')) === 0, 10_000, 'the stream to close');
    assert.ok((await metric(server.base, 'feedmail_live_events_sent_total')) >= 1);
  });

  it('resumes with Last-Event-ID, and a stream never carries another feed\'s entries', async () => {
    const mine = await createFeed(server.base);
    const other = await createFeed(server.base);
    const first = openStream(eventsUrl(mine));
    await first.ready;
    assert.equal(first.status, 200);
    assert.match(String(first.headers['content-type']), /^text\/event-stream/);
    await sendRaw(server.smtpPort, other.address, message(other.address, 'Not for you'));
    await sendRaw(server.smtpPort, mine.address, message(mine.address, 'One'));
    await waitFor(async () => first.events.length >= 1, 10_000, 'the first event');
    const one = first.events[0]!;
    assert.equal(one.event, 'entry');
    const data = JSON.parse(one.data!) as Record<string, unknown>;
    assert.deepEqual(Object.keys(data).sort(), ['from', 'received_at', 'subject', 'url']);
    assert.equal(data.subject, 'One');
    assert.equal(data.from, 'Live News');
    first.close();

    // While away: two more for this feed, one for the other.
    await sendRaw(server.smtpPort, mine.address, message(mine.address, 'Two'));
    await sendRaw(server.smtpPort, other.address, message(other.address, 'Still not for you'));
    await sendRaw(server.smtpPort, mine.address, message(mine.address, 'Three'));
    await waitFor(async () => (await fetch(mine.feeds.json).then((r) => r.json()) as { items: unknown[] }).items.length === 3, 10_000, 'three entries stored');

    const again = openStream(eventsUrl(mine), { 'Last-Event-ID': one.id! });
    await again.ready;
    await waitFor(async () => again.events.length >= 2, 10_000, 'the missed events');
    await sendRaw(server.smtpPort, other.address, message(other.address, 'Never for you'));
    await sendRaw(server.smtpPort, mine.address, message(mine.address, 'Four'));
    await waitFor(async () => again.events.length >= 3, 10_000, 'the live event after the resume');
    const subjects = again.events.map((e) => (JSON.parse(e.data!) as { subject: string }).subject);
    assert.deepEqual(subjects, ['Two', 'Three', 'Four']);
    const ids = again.events.map((e) => Number(e.id));
    assert.ok(ids.every((id, i) => id > Number(one.id) && (i === 0 || id > ids[i - 1]!)));
    again.close();
  });

  it('sends a page that just loaded what was stored since it was rendered (?since=)', async () => {
    const feed = await createFeed(server.base);
    const rendered = Date.now();
    await sendRaw(server.smtpPort, feed.address, message(feed.address, 'While the page loaded'));
    await waitFor(async () => (await fetch(feed.feeds.json).then((r) => r.json()) as { items: unknown[] }).items.length === 1, 10_000, 'the entry stored');
    const late = openStream(`${eventsUrl(feed)}?since=${rendered}`);
    await late.ready;
    await waitFor(async () => late.events.length >= 1, 10_000, 'the event of the entry stored while loading');
    assert.equal((JSON.parse(late.events[0]!.data!) as { subject: string }).subject, 'While the page loaded');
    late.close();
    // Without it, a new stream hears only of what comes next.
    const fresh = openStream(eventsUrl(feed));
    await fresh.ready;
    await new Promise((r) => setTimeout(r, 600));
    assert.deepEqual(fresh.events, []);
    fresh.close();
  });

  it('refuses streams past the cap with 503 and Retry-After, and 404 for an unknown or deleted feed', async () => {
    await waitFor(async () => (await metric(server.base, 'feedmail_live_streams')) === 0, 10_000, 'no open stream');
    const feed = await createFeed(server.base);
    const open = [openStream(eventsUrl(feed)), openStream(eventsUrl(feed)), openStream(eventsUrl(feed))];
    await Promise.all(open.map((s) => s.ready));
    assert.deepEqual(open.map((s) => s.status), [200, 200, 200]);
    const refused = await fetch(eventsUrl(feed));
    assert.equal(refused.status, 503);
    assert.ok(Number(refused.headers.get('retry-after')) > 0);
    assert.ok((await metric(server.base, 'feedmail_live_streams_refused_total')) >= 1);
    for (const s of open) s.close();
    await waitFor(async () => (await metric(server.base, 'feedmail_live_streams')) === 0, 10_000, 'the streams to close');

    assert.equal((await fetch(`${server.base}/feeds/${'a'.repeat(26)}/events`)).status, 404);
    const gone = await createFeed(server.base);
    const token = new URL(gone.page).pathname.split('/')[2]!;
    const row = await server.app.stores.app.feedByFeedToken(token);
    await server.app.stores.app.deleteFeed(row!.id);
    assert.equal((await fetch(eventsUrl(gone))).status, 404);
  });

  it('ends a stream opened with a feed URL that was rotated since, sending it nothing new', async () => {
    const feed = await createFeed(server.base);
    const stream = openStream(eventsUrl(feed));
    await stream.ready;
    assert.equal(stream.status, 200);
    const row = await server.app.stores.app.feedByFeedToken(new URL(feed.page).pathname.split('/')[2]!);
    await server.app.stores.app.rotateFeedToken(row!.id);
    await sendRaw(server.smtpPort, feed.address, message(feed.address, 'After the rotation'));
    await waitFor(async () => stream.ended, 10_000, 'the stream to end');
    assert.deepEqual(stream.events, []);
    assert.equal((await fetch(eventsUrl(feed))).status, 404);
  });

  it('ends open streams on shutdown without delaying it', async () => {
    const other = await startTestServer();
    const feed = await createFeed(other.base);
    const stream = openStream(eventsUrl(feed));
    await stream.ready;
    assert.equal(stream.status, 200);
    const started = Date.now();
    await other.stop();
    await waitFor(async () => stream.ended, 5000, 'the stream to end');
    console.log(`# live: shutdown with an open stream took ${Date.now() - started} ms`);
  });
});

describe('live updates when another process stores the entry', { timeout: 180_000 }, () => {
  let web: TestServer;
  let worker: TestServer;
  let browser: Browser;

  before(async () => {
    web = await startTestServer({}, { web: true, smtp: true, jobs: false });
    worker = await startTestServer({ dataDir: web.dataDir }, { web: false, smtp: false, jobs: true });
    browser = await launchChromium();
  });

  after(async () => {
    await browser?.close();
    await worker?.stop();
    await web?.stop();
  });

  it('shows the entry a jobs-only instance stored on the same data directory', async () => {
    const feed = await createFeed(web.base, 'Worker feed');
    const page = await browser.newPage();
    try {
      await page.goto(feed.page);
      await waitFor(async () => (await metric(web.base, 'feedmail_live_streams')) === 1, 10_000, 'the page\'s stream');
      const sent = Date.now();
      await sendRaw(web.smtpPort, feed.address, message(feed.address, 'Processed elsewhere'));
      await page.waitForSelector('#entries li a.subject >> text=Processed elsewhere', { timeout: 20_000 });
      console.log(`# live: entry stored by the worker shown ${Date.now() - sent} ms after the 250`);
      assert.equal(web.app.runner, null, 'the web instance runs no jobs');
    } finally {
      await page.close();
    }
  });
});

describe('live-update bounds and upkeep', { timeout: 60_000 }, () => {
  it('caps the streams of one client network below its share of connections', async () => {
    // 40 connections: a network may hold 8 of them, and 4 streams.
    const server = await startTestServer({ httpMaxConnections: '40' });
    try {
      const feed = await createFeed(server.base);
      const open = Array.from({ length: 4 }, () => openStream(eventsUrl(feed)));
      await Promise.all(open.map((s) => s.ready));
      assert.deepEqual(open.map((s) => s.status), [200, 200, 200, 200]);
      const refused = await fetch(eventsUrl(feed));
      assert.equal(refused.status, 503);
      assert.match(await refused.text(), /your network/);
      assert.ok(Number(refused.headers.get('retry-after')) > 0);
      // The network's pages still load.
      assert.equal((await fetch(feed.page)).status, 200);
      for (const s of open) s.close();
    } finally {
      await server.stop();
    }
  });

  it('prunes notifications older than a day in the maintenance task', async () => {
    const DAY = 86_400_000;
    const clock = new TestClock();
    const server = await startTestServer({}, { web: true, smtp: true, jobs: false }, { clock });
    const processor = new ProcessPool({ maxPartBytes: 1e7, keepTrackingPixels: false }, 5000);
    try {
      const queue = server.app.stores.queue;
      await clock.at(-2 * DAY, () => queue.recordNotification(7, 1));
      const recent = await queue.recordNotification(7, 2);
      const prune = allTasks({ stores: server.app.stores, config: server.app.config, processor, log: createLogger('silent') }).find((t) => t.name === 'prune-old-rows')!;
      await prune.handler({}, { job: {} as never, signal: new AbortController().signal });
      assert.deepEqual((await queue.notificationsOfFeedAfter(7, 0, 10)).map((n) => n.id), [recent]);
    } finally {
      await processor.close();
      await server.stop();
    }
  });
});
