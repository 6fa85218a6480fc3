/**
 * Per-feed limits over real SMTP and the signed webhook: messages per day
 * (FEEDMAIL_FEED_MESSAGES_PER_DAY, default 200) and stored bytes (FEEDMAIL_FEED_MAX_BYTES).
 * Past a limit a recipient is deferred with 452 4.2.2 (webhooks: 507), the refusal is
 * listed in the feed's recent deliveries and the manage page says the feed is at its
 * limit; a message acknowledged with 250 is always stored, even when parallel sessions
 * past RCPT TO take the feed over its limit. The recent deliveries say what became of
 * each message, and a flood of refusals costs a bounded number of rows and writes.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { INGEST_TASK } from '../src/store/journal.js';
import { REFUSALS_RECORDED_PER_MINUTE } from '../src/mail/deliveries.js';
import { TestClock } from './support/clock.js';
import { createFeed, startTestServer, waitFor, type TestServer } from './support/helpers.js';
import {
  addRule, deliverByWebhook, feedIdOf, managePage, message, sendOne, transact, WEBHOOK_SECRET,
} from './support/intake.js';
import { SMTPClient } from './support/smtp-client.js';

const HOUR = 3600_000;

describe('messages per day with the default limit', () => {
  let server: TestServer;
  const clock = new TestClock();
  before(async () => {
    server = await startTestServer({ webhookSecret: WEBHOOK_SECRET }, undefined, { clock });
  });
  after(async () => {
    await server.stop();
  });

  it('defers the 201st message of a day with 452 4.2.2, lists it, and stores every one acknowledged', { timeout: 180_000 }, async () => {
    assert.equal(server.app.config.feedMessagesPerDay, 200, 'the default');
    const feed = await createFeed(server.base, 'busy');
    const id = await feedIdOf(server, feed.address);
    const c = await SMTPClient.connect(server.smtpPort);
    try {
      await c.command('EHLO test', 250);
      for (let i = 1; i <= 200; i++) {
        const r = await transact(c, 'news@busy.example', [feed.address], message({ From: 'Busy <news@busy.example>', Subject: `issue ${i}` }));
        assert.match(r.data ?? r.rcpt[0]!, /^250 /, `message ${i}`);
      }
      const r201 = await transact(c, 'news@busy.example', [feed.address], message({ From: 'news@busy.example', Subject: 'issue 201' }));
      assert.match(r201.rcpt[0]!, /^452 4\.2\.2 This feed has taken its limit of 200 messages in 24 hours/);
      assert.equal(r201.data, undefined);
    } finally {
      await c.close();
    }
    await waitFor(async () => (await server.app.stores.app.countEntries(id)) === 200, 150_000, 'all 200 acknowledged messages stored');

    const rows = await server.app.stores.queue.deliveriesOfFeed(id);
    assert.equal(rows.length, 100, 'the newest 100 only');
    assert.equal(rows[0]!.outcome, 'over_limit');
    assert.equal(rows[0]!.sender, 'news@busy.example');
    assert.equal(rows[0]!.subject, null, 'deferred at RCPT TO, before the subject');
    assert.ok(rows.slice(1).every((r) => r.outcome === 'accepted'));
    assert.equal(rows[1]!.subject, 'issue 200');

    const page = await managePage(feed.manage);
    assert.match(page, /This feed took its 200 messages of the last 24 hours/);
    assert.match(page, /200 messages in the last 24 hours of at most 200 \(at the limit\)/);
    const deliveries = page.slice(page.indexOf('id="deliveries"'));
    assert.match(deliveries, /Deferred<\/strong>: over the limit of 200 messages in 24 hours\. The sender was told to try again later/);
    assert.match(deliveries, /issue 200<\/span>[\s\S]*?Stored<\/strong>\. <a href="http:\/\/127\.0\.0\.1:\d+\/e\/[a-z2-7]{26}">Open the entry<\/a>/);

    const hook = await deliverByWebhook(server.base, [feed.address], message({ From: 'news@busy.example', Subject: 'by webhook' }));
    assert.equal(hook.status, 507);
    assert.equal((hook.body.error as { code: string }).code, 'feed_daily_limit');
    const metrics = await (await fetch(`${server.base}/metrics`)).text();
    assert.match(metrics, /^feedmail_smtp_recipients_daily_limit_total 1$/m);
    assert.match(metrics, /^feedmail_webhook_recipients_daily_limit_total 1$/m);

    // A day later the messages have aged out of the window.
    clock.offsetMs = 25 * HOUR;
    try {
      const later = await sendOne(server.smtpPort, 'news@busy.example', feed.address, message({ From: 'news@busy.example', Subject: 'next day' }));
      assert.match(later.data!, /^250 /);
    } finally {
      clock.offsetMs = 0;
    }
  });
});

describe('limits and recent deliveries', () => {
  let server: TestServer;
  before(async () => {
    server = await startTestServer({ webhookSecret: WEBHOOK_SECRET, feedMessagesPerDay: '3', feedMaxBytes: '1m' });
  });
  after(async () => {
    await server.stop();
  });

  it('journals and stores every message past RCPT TO when parallel sessions take the feed over its limit', async () => {
    const feed = await createFeed(server.base, 'parallel');
    const id = await feedIdOf(server, feed.address);
    for (const n of [1, 2]) assert.match((await sendOne(server.smtpPort, 'a@one.example', feed.address, message({ Subject: `early ${n}` }))).data!, /^250 /);
    // Three senders pass RCPT TO while the feed has room for one more.
    const sessions = await Promise.all([0, 1, 2].map(() => SMTPClient.connect(server.smtpPort)));
    try {
      for (const c of sessions) {
        await c.command('EHLO test', 250);
        await c.command('MAIL FROM:<b@two.example>', 250);
        await c.command(`RCPT TO:<${feed.address}>`, 250);
      }
      const replies = await Promise.all(sessions.map(async (c, i) => {
        await c.command('DATA', 354);
        await c.write(`${message({ Subject: `parallel ${i}` })}.\r\n`);
        return c.reply();
      }));
      for (const r of replies) assert.match(r, /^250 /);
    } finally {
      await Promise.all(sessions.map((c) => c.close()));
    }
    await waitFor(async () => (await server.app.stores.app.countEntries(id)) === 5, 10_000, 'all five acknowledged messages stored');
    assert.equal((await server.app.stores.queue.messagesInWindow(id)).messages, 5, 'over the limit by the two that were past RCPT TO');
    assert.match((await sendOne(server.smtpPort, 'a@one.example', feed.address, message({ Subject: 'late' }))).rcpt[0]!, /^452 4\.2\.2 /);
  });

  it('defers mail to a feed over its storage quota with 452 4.2.2 (webhooks: 507) and says so on the manage page', async () => {
    const feed = await createFeed(server.base, 'quota');
    const id = await feedIdOf(server, feed.address);
    const big = message({ From: 'big@big.example', Subject: 'filler' }, `${'x'.repeat(1000)}\r\n`.repeat(1100));
    assert.match((await sendOne(server.smtpPort, 'big@big.example', feed.address, big)).data!, /^250 /);
    await waitFor(async () => (await server.app.stores.app.countEntries(id)) === 1, 10_000, 'the filler stored');
    const r = await sendOne(server.smtpPort, 'big@big.example', feed.address, message({ Subject: 'one more' }));
    assert.match(r.rcpt[0]!, /^452 4\.2\.2 This feed is full/);
    // The same sender again, by webhook: its From: address is the envelope sender refused at RCPT TO.
    const hook = await deliverByWebhook(server.base, [feed.address], message({ From: 'Big <big@big.example>', Subject: 'by webhook' }));
    assert.equal(hook.status, 507);
    assert.equal((hook.body.error as { code: string }).code, 'feed_full');

    const page = await managePage(feed.manage);
    assert.match(page, /This feed is full:<\/strong> it holds \d+\.\d MB and may hold 1\.0 MB/);
    assert.match(page, /by webhook<\/span>[^]*?Deferred<\/strong>: over the storage quota of 1 MB \(2 times, the last at/);
    assert.equal(server.app.counters.smtp.feedFull, 1);
    assert.equal(server.app.counters.http.webhook.feedFull, 1);
  });

  it('folds repeated refusals into one row and bounds what a flood of them writes, keeping the accepted mail listed', async () => {
    const feed = await createFeed(server.base, 'flooded');
    const id = await feedIdOf(server, feed.address);
    await addRule(feed.manage, 'block', 'flood.example');
    assert.match((await sendOne(server.smtpPort, 'friend@ok.example', feed.address, message({ Subject: 'the real one' }))).data!, /^250 /);
    const before = server.app.counters.smtp.blocked;
    const c = await SMTPClient.connect(server.smtpPort);
    try {
      await c.command('EHLO test', 250);
      await c.command('MAIL FROM:<same@flood.example>', 250);
      for (let i = 0; i < 60; i++) assert.match(await c.command(`RCPT TO:<${feed.address}>`), /^550 5\.7\.1 /);
      for (let i = 0; i < 150; i++) {
        await c.command('RSET', 250);
        await c.command(`MAIL FROM:<n${i}@flood.example>`, 250);
        assert.match(await c.command(`RCPT TO:<${feed.address}>`), /^550 5\.7\.1 /);
      }
    } finally {
      await c.close();
    }
    assert.equal(server.app.counters.smtp.blocked - before, 210, 'every refusal counted in /metrics');
    const rows = await server.app.stores.queue.deliveriesOfFeed(id);
    assert.ok(rows.length <= 100, `${rows.length} rows`);
    const recorded = rows.filter((r) => r.outcome === 'blocked').reduce((n, r) => n + r.count, 0);
    // At most REFUSALS_RECORDED_PER_MINUTE per minute: two minutes at most if the flood crossed one.
    assert.ok(recorded <= 2 * REFUSALS_RECORDED_PER_MINUTE, `${recorded} refusals recorded`);
    assert.ok(rows.some((r) => r.sender === 'same@flood.example' && r.count > 1), 'the same sender folded into one row');
    assert.ok(rows.some((r) => r.outcome === 'accepted' && r.subject === 'the real one'), 'the accepted message is still listed');
  });
});

describe('recent deliveries of mail not processed yet or failed', () => {
  let server: TestServer;
  before(async () => {
    // No job runner: the test plays its part, so a message stays pending or fails when the test says.
    server = await startTestServer({ feedMessagesPerDay: '1' }, { web: true, smtp: true, jobs: false });
  });
  after(async () => {
    await server.stop();
  });

  it('lists accepted, failed, blocked and deferred mail with what became of it', async () => {
    const feed = await createFeed(server.base, 'outcomes');
    await addRule(feed.manage, 'block', 'blocked.example');
    assert.match((await sendOne(server.smtpPort, 'news@ok.example', feed.address, message({ From: 'news@ok.example', Subject: 'waiting <i>here</i>' }))).data!, /^250 /);
    assert.match((await sendOne(server.smtpPort, 'x@blocked.example', feed.address, message({ Subject: 'nope' }))).rcpt[0]!, /^550 5\.7\.1 /);
    assert.match((await sendOne(server.smtpPort, 'news@ok.example', feed.address, message({ Subject: 'too many' }))).rcpt[0]!, /^452 4\.2\.2 /);

    let page = await managePage(feed.manage);
    let deliveries = page.slice(page.indexOf('id="deliveries"'));
    assert.match(deliveries, /waiting &lt;i&gt;here&lt;\/i&gt;<\/span>\n<span class="meta">[^<]* · from news@ok\.example · \d+ bytes<\/span><br>\n<strong>Accepted<\/strong>, not processed yet\./);
    assert.match(deliveries, /from x@blocked\.example<\/span><br>\n<strong>Blocked<\/strong>: blocked by the rule blocked\.example \(envelope sender x@blocked\.example\)/);
    assert.match(deliveries, /<strong>Deferred<\/strong>: over the limit of 1 messages in 24 hours/);

    const queue = server.app.stores.queue;
    const [job] = await waitFor(async () => {
      const claimed = await queue.claimJobs('test-runner', 1, 60_000, { tasks: [INGEST_TASK] });
      return claimed.length ? claimed : undefined;
    }, 5000, 'the ingest job');
    await queue.failJobForGood(job!.id, 'test-runner', 'RenderError: the parser gave up\n    at parse (src/mail/parse.ts:1:1)');
    page = await managePage(feed.manage);
    deliveries = page.slice(page.indexOf('id="deliveries"'));
    assert.match(deliveries, new RegExp(`<strong>Failed to process</strong> after \\d+ attempts?: RenderError: the parser gave up\\. <span class="meta">Job ${job!.id}: .*feedmail jobs retry ${job!.id}`));
    assert.doesNotMatch(deliveries, /parse\.ts/, 'only the first line of the error');
  });
});
