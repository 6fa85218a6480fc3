/**
 * A feed's sender blocklist and allowlist, end to end over real SMTP and the signed
 * webhook: a block rule on the envelope sender refuses at RCPT TO, one on the From:
 * header at the end of DATA, both with a permanent 550 5.7.1, and nothing of blocked mail
 * is stored; a domain rule covers its subdomains but not lookalikes; an allowlist lets
 * only its senders through; a message blocked for some of its feeds goes to the others.
 * The rules are managed on the manage page (validated, cross-site posts refused) and go
 * with their feed.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { readHead } from '../src/mail/head.js';
import { parseSenderPattern, senderVerdict } from '../src/mail/sender-rules.js';
import { createFeed, startTestServer, waitFor, waitForEntries, type TestServer } from './support/helpers.js';
import {
  addRule, deliverByWebhook, feedIdOf, journaledFeedIds, managePage, message, postForm, sendOne, WEBHOOK_SECRET,
} from './support/intake.js';
import { SMTPClient } from './support/smtp-client.js';

describe('sender rules', () => {
  let server: TestServer;
  before(async () => {
    server = await startTestServer({ webhookSecret: WEBHOOK_SECRET });
  });
  after(async () => {
    await server.stop();
  });

  const entriesOf = async (address: string) => server.app.stores.app.countEntries(await feedIdOf(server, address));

  it('refuses a blocked envelope sender at RCPT TO with 550 5.7.1 and stores nothing', async () => {
    const feed = await createFeed(server.base, 'envelope');
    await addRule(feed.manage, 'block', 'spam.example');
    const id = await feedIdOf(server, feed.address);
    const journaledBefore = (await journaledFeedIds(server)).length;

    const blocked = await sendOne(server.smtpPort, 'offers@news.SPAM.example', feed.address, message({ From: 'Friendly <friend@ok.example>', Subject: 'buy now' }));
    assert.match(blocked.rcpt[0]!, /^550 5\.7\.1 /);
    assert.match(blocked.rcpt[0]!, /does not accept mail from this sender/);
    assert.equal(blocked.data, undefined, 'refused before DATA');

    const fine = await sendOne(server.smtpPort, 'news@ok.example', feed.address, message({ From: 'news@ok.example', Subject: 'welcome' }));
    assert.match(fine.data!, /^250 /);
    const items = await waitForEntries(feed.feeds.json, 'json', 1);
    assert.deepEqual(items.map((i) => i.title), ['welcome']);
    assert.deepEqual((await journaledFeedIds(server)).slice(journaledBefore), [[id]], 'only the accepted message was journaled');
  });

  it('refuses a blocked From: header at the end of DATA with 550 5.7.1 and stores nothing', async () => {
    const feed = await createFeed(server.base, 'header');
    await addRule(feed.manage, 'block', 'Boss@Blocked.example');
    const journaledBefore = (await journaledFeedIds(server)).length;
    const raw = message({ From: '"Someone, not the boss" <boss@blocked.example>', Subject: 'from the header' });
    const r = await sendOne(server.smtpPort, 'bounce-123@esp.example', feed.address, raw);
    assert.match(r.rcpt[0]!, /^250 /, 'the envelope sender is not blocked');
    assert.match(r.data!, /^550 5\.7\.1 /);
    assert.equal((await journaledFeedIds(server)).length, journaledBefore, 'nothing journaled');
    assert.equal(await entriesOf(feed.address), 0);
  });

  it('matches a domain and its subdomains, in any case, but not lookalike domains', async () => {
    const feed = await createFeed(server.base, 'domains');
    await addRule(feed.manage, 'block', 'example.com');
    // Envelope and header alike (a final dot only in the header: SMTP refuses it in MAIL FROM).
    const outcome = async (from: string, envelope = from) => {
      const r = await sendOne(server.smtpPort, envelope, feed.address, message({ From: from, Subject: `from ${from}` }));
      return (r.data ?? r.rcpt[0]!).slice(0, 3);
    };
    for (const from of ['a@example.com', 'a@Mail.EXAMPLE.com', 'a@deep.sub.example.com']) assert.equal(await outcome(from), '550', from);
    assert.equal(await outcome('a@example.com.', 'bounce@esp.example'), '550', 'a From: domain with its final dot');
    for (const from of ['a@evil-example.com', 'a@example.com.evil.net', 'a@notexample.com', 'example.com@elsewhere.example']) assert.equal(await outcome(from), '250', from);
    await waitFor(async () => (await entriesOf(feed.address)) === 4, 10_000, 'the four lookalikes stored');
  });

  it('with an allowlist takes only its senders, on the envelope or the From: header, and a block still wins', async () => {
    const feed = await createFeed(server.base, 'allowlist');
    await addRule(feed.manage, 'allow', 'friends.example');
    await addRule(feed.manage, 'block', 'troll@friends.example');
    const send = async (envelope: string, from: string) => {
      const r = await sendOne(server.smtpPort, envelope, feed.address, message({ From: from, Subject: `${envelope} / ${from}` }));
      return (r.data ?? r.rcpt[0]!).slice(0, 9);
    };
    assert.equal(await send('bounce@esp.example', 'News <news@friends.example>'), '250 2.0.0', 'From: on the allowlist');
    assert.equal(await send('list@lists.friends.example', 'someone@esp.example'), '250 2.0.0', 'envelope on the allowlist');
    assert.equal(await send('bounce@esp.example', 'stranger@strangers.example'), '550 5.7.1', 'neither on it');
    assert.equal(await send('', 'stranger@strangers.example'), '550 5.7.1', 'no envelope sender, From: not on it');
    assert.equal(await send('bounce@esp.example', 'troll@friends.example'), '550 5.7.1', 'blocked though its domain is allowed');
    await waitFor(async () => (await entriesOf(feed.address)) === 2, 10_000, 'the two allowed messages');
  });

  it('journals a message blocked for some of its feeds for the others only, and refuses it when all block it', async () => {
    const blocking = await createFeed(server.base, 'blocking');
    const open = await createFeed(server.base, 'open');
    const alsoBlocking = await createFeed(server.base, 'also blocking');
    await addRule(blocking.manage, 'block', 'promo.example');
    await addRule(alsoBlocking.manage, 'block', 'promo.example');
    const [blockingId, openId] = [await feedIdOf(server, blocking.address), await feedIdOf(server, open.address)];
    const journaledBefore = (await journaledFeedIds(server)).length;

    const partial = await sendOne(server.smtpPort, 'bounce@esp.example', [blocking.address, open.address],
      message({ From: 'Promo <deals@promo.example>', Subject: 'to two feeds' }));
    assert.deepEqual(partial.rcpt.map((r) => r.slice(0, 3)), ['250', '250']);
    assert.match(partial.data!, /^250 /);
    await waitForEntries(open.feeds.json, 'json', 1);
    assert.deepEqual((await journaledFeedIds(server)).slice(journaledBefore), [[openId]], 'journaled for the open feed only');
    assert.equal(await entriesOf(blocking.address), 0);
    const [refused] = await server.app.stores.queue.deliveriesOfFeed(blockingId);
    assert.equal(refused?.outcome, 'blocked');
    assert.equal(refused?.subject, 'to two feeds', 'refused at DATA: the subject is known');
    assert.match(refused?.detail ?? '', /promo\.example \(From: header deals@promo\.example\)/);
    assert.equal((await server.app.stores.queue.deliveriesOfFeed(openId))[0]?.outcome, 'accepted');

    const all = await sendOne(server.smtpPort, 'bounce@esp.example', [blocking.address, alsoBlocking.address],
      message({ From: 'deals@promo.example', Subject: 'to two blocking feeds' }));
    assert.match(all.data!, /^550 5\.7\.1 /);
    assert.equal((await journaledFeedIds(server)).length, journaledBefore + 1, 'nothing more journaled');

    // The envelope decides at RCPT TO, each recipient on its own.
    const c = await SMTPClient.connect(server.smtpPort);
    try {
      await c.command('EHLO test', 250);
      await c.command('MAIL FROM:<x@promo.example>', 250);
      assert.match(await c.command(`RCPT TO:<${blocking.address}>`), /^550 5\.7\.1 /);
      assert.match(await c.command(`RCPT TO:<${open.address}>`), /^250 /);
    } finally {
      await c.close();
    }
  });

  it('refuses blocked recipients of a webhook delivery as final: listed as rejected, 422 when none is left', async () => {
    const blocking = await createFeed(server.base, 'webhook blocking');
    const open = await createFeed(server.base, 'webhook open');
    await addRule(blocking.manage, 'block', 'relay-news.example');
    const raw = message({ From: 'Relay News <news@relay-news.example>', Subject: 'by webhook' });

    const both = await deliverByWebhook(server.base, [blocking.address, open.address], raw);
    assert.equal(both.status, 202);
    assert.deepEqual(both.body.rejected, [blocking.address]);
    assert.deepEqual(both.body.deferred, []);
    await waitForEntries(open.feeds.json, 'json', 1);

    const only = await deliverByWebhook(server.base, [blocking.address], raw);
    assert.equal(only.status, 422);
    assert.equal((only.body.error as { code: string }).code, 'sender_blocked');
    assert.equal(await entriesOf(blocking.address), 0);
    const [row] = await server.app.stores.queue.deliveriesOfFeed(await feedIdOf(server, blocking.address));
    assert.equal(row?.outcome, 'blocked');
    assert.equal(row?.count, 2, 'the same sender refused again for the same reason: one row');
  });

  it('lists blocked mail with its subject escaped and no secret of the feed, and counts it in /metrics', async () => {
    const feed = await createFeed(server.base, 'listing');
    await addRule(feed.manage, 'block', 'hostile.example');
    const token = feed.address.split('@')[0]!;
    const subject = `<script>alert(1)</script> & <b>bold</b> for ${feed.address}`;
    const before = server.app.counters.smtp.blocked;
    const r = await sendOne(server.smtpPort, `bounce+${token}=localhost@esp.example`, feed.address, message({ From: `x@hostile.example`, Subject: subject }));
    assert.match(r.data!, /^550 5\.7\.1 /);
    const rcptRefused = await sendOne(server.smtpPort, `bounces+${token}@hostile.example`, feed.address, message({ Subject: 'never sent' }));
    assert.match(rcptRefused.rcpt[0]!, /^550 5\.7\.1 /);
    assert.equal(server.app.counters.smtp.blocked, before + 2);

    const rows = await server.app.stores.queue.deliveriesOfFeed(await feedIdOf(server, feed.address));
    assert.equal(rows.length, 2);
    for (const row of rows) assert.ok(!JSON.stringify(row).toLowerCase().includes(token), `no inbox secret stored: ${JSON.stringify(row)}`);
    assert.equal(rows[0]!.subject, null, 'refused at RCPT TO: no subject');
    assert.match(rows[1]!.subject!, /for redacted@localhost$/);

    const page = await managePage(feed.manage);
    const deliveries = page.slice(page.indexOf('id="deliveries"'));
    assert.ok(deliveries.includes('&lt;script&gt;alert(1)&lt;/script&gt; &amp; &lt;b&gt;bold&lt;/b&gt;'), 'the subject, escaped');
    assert.doesNotMatch(deliveries, /<script>|<b>bold/);
    assert.match(deliveries, /Blocked<\/strong>: blocked by the rule hostile\.example/);
    assert.match(deliveries, /refused before the message was sent/);
    assert.ok(!deliveries.toLowerCase().includes(token), 'the deliveries show no inbox secret');

    const metrics = await (await fetch(`${server.base}/metrics`)).text();
    assert.match(metrics, /^feedmail_smtp_recipients_blocked_total [1-9]\d*$/m);
    assert.match(metrics, /^feedmail_webhook_recipients_blocked_total [1-9]\d*$/m);
  });

  it('cannot be passed by padding, encoding or hiding the From: address', async () => {
    const feed = await createFeed(server.base, 'evasion');
    await addRule(feed.manage, 'block', 'blocked.example');
    const many = Array.from({ length: 40 }, (_, i) => `friend${i}@ok.example`);
    const padding = Array.from({ length: 75 }, (_, i) => `X-Pad-${i}: ${'p'.repeat(880)}`).join('\r\n');
    for (const [label, raw] of [
      ['a 5,000-character display name', message({ From: `"${'A'.repeat(5000)}" <x@blocked.example>`, Subject: 'long name' })],
      ['a comment past 4,096 characters', message({ From: `x@blocked.example (${'c'.repeat(5000)})`, Subject: 'long comment' })],
      ['66 KB of headers before From:', `${padding}\r\n${message({ From: 'x@blocked.example', Subject: 'padded' })}`],
      ['an encoded word in the domain', message({ From: 'x@=?utf-8?q?blocked?=.example', Subject: 'encoded' })],
      ['a NUL in the domain', message({ From: 'x@bloc\u0000ked.example', Subject: 'nul' })],
      ['the 41st address of the From: list', message({ From: [...many, 'x@blocked.example'].join(', '), Subject: 'many' })],
    ] as const) {
      const r = await sendOne(server.smtpPort, 'bounce@esp.example', feed.address, raw);
      assert.match(r.data ?? '', /^550 5\.7\.1 /, label);
    }
    assert.equal(await entriesOf(feed.address), 0);
  });

  it('refuses a header too long to read to its end when the feed has rules', async () => {
    const feed = await createFeed(server.base, 'too long');
    await addRule(feed.manage, 'block', 'blocked.example');
    const padding = Array.from({ length: 1300 }, (_, i) => `X-Pad-${i}: ${'p'.repeat(900)}`).join('\r\n');
    const r = await sendOne(server.smtpPort, 'bounce@esp.example', feed.address, `${padding}\r\n${message({ From: 'x@blocked.example', Subject: 'past the bound' })}`);
    assert.match(r.data ?? '', /^550 5\.7\.1 /);
    const [row] = await server.app.stores.queue.deliveriesOfFeed(await feedIdOf(server, feed.address));
    assert.equal(row?.outcome, 'blocked');
    assert.match(row?.detail ?? '', /too long to check the sender/);
    assert.equal(await entriesOf(feed.address), 0);
  });

  it('applies a rule added after a message was accepted but before it was processed: listed as blocked, not stored', async () => {
    // Web and SMTP only: the message waits in the journal while the owner adds the rule.
    const intake = await startTestServer({ webhookSecret: WEBHOOK_SECRET }, { web: true, smtp: true, jobs: false });
    let worker: TestServer | undefined;
    try {
      const feed = await createFeed(intake.base, 'late rule');
      const r = await sendOne(intake.smtpPort, 'bounce@esp.example', feed.address, message({ From: 'News <news@later.example>', Subject: 'accepted first' }));
      assert.match(r.data ?? '', /^250 /);
      await addRule(feed.manage, 'block', 'later.example');
      await intake.stop();
      worker = await startTestServer({ dataDir: intake.dataDir, webhookSecret: WEBHOOK_SECRET });
      const id = await feedIdOf(worker, feed.address);
      const blocked = await waitFor(async () => (await worker!.app.stores.queue.deliveriesOfFeed(id)).find((d) => d.outcome === 'blocked'), 10_000, 'the refusal listed');
      assert.match(blocked.detail, /later\.example.*found when the message was processed/);
      assert.equal(await worker.app.stores.app.countEntries(id), 0, 'nothing stored');
    } finally {
      await worker?.stop();
    }
  });

  it('validates rules on the manage page, lists them and removes them', async () => {
    const feed = await createFeed(server.base, 'forms');
    const id = await feedIdOf(server, feed.address);
    for (const bad of ['', 'not a domain', 'a@', '@', '<x@y.example>', 'x@-bad.example', 'x@bad-.example', 'ex ample.com', 'a"b@example.com', 'x'.repeat(300)]) {
      const res = await postForm(`${feed.manage}/sender-rules`, { action: 'block', pattern: bad });
      assert.equal(res.status, 400, JSON.stringify(bad));
      assert.match(res.body, /Not changed/);
    }
    assert.equal((await postForm(`${feed.manage}/sender-rules`, { action: 'ignore', pattern: 'example.com' })).status, 400);
    for (const [typed, kept] of [['News@Example.COM', 'news@example.com'], ['*.Example.org', 'example.org'], ['@example.net.', 'example.net'], ['bücher.de', 'xn--bcher-kva.de']]) {
      await addRule(feed.manage, 'block', typed!);
      assert.ok((await server.app.stores.app.senderRulesOfFeed(id)).some((r) => r.pattern === kept), `${typed} kept as ${kept}`);
    }
    await addRule(feed.manage, 'block', 'EXAMPLE.org');
    await addRule(feed.manage, 'allow', 'example.org');
    const rules = await server.app.stores.app.senderRulesOfFeed(id);
    assert.equal(rules.length, 5, 'the same rule twice is one rule; the same pattern may be blocked and allowed');

    const page = await managePage(feed.manage);
    assert.match(page, /<code>news@example\.com<\/code>/);
    assert.match(page, /<code>xn--bcher-kva\.de<\/code> <span class="meta">domain and subdomains/);

    const allow = rules.find((r) => r.action === 'allow')!;
    const removed = await postForm(`${feed.manage}/sender-rules/remove`, { id: String(allow.id) });
    assert.equal(removed.status, 303);
    assert.match(removed.location ?? '', /#senders$/);
    assert.equal((await server.app.stores.app.senderRulesOfFeed(id)).length, 4);

    // Another feed's manage link cannot remove this feed's rules.
    const other = await createFeed(server.base, 'other');
    const block = rules.find((r) => r.action === 'block')!;
    assert.equal((await postForm(`${other.manage}/sender-rules/remove`, { id: String(block.id) })).status, 303);
    assert.equal((await server.app.stores.app.senderRulesOfFeed(id)).length, 4);

    // At most MAX_SENDER_RULES per feed.
    for (let i = (await server.app.stores.app.senderRulesOfFeed(id)).length; i < 200; i++) await server.app.stores.app.addSenderRule(id, 'block', `n${i}.example`, 200);
    const over = await postForm(`${feed.manage}/sender-rules`, { action: 'block', pattern: 'one-too-many.example' });
    assert.equal(over.status, 400);
    assert.match(over.body, /at most 200 sender rules/);
  });

  it('refuses cross-site posts to the rule actions, and the rules stay as they were', async () => {
    const feed = await createFeed(server.base, 'cross-site');
    await addRule(feed.manage, 'block', 'kept.example');
    const id = await feedIdOf(server, feed.address);
    const [rule] = await server.app.stores.app.senderRulesOfFeed(id);
    const add = await postForm(`${feed.manage}/sender-rules`, { action: 'allow', pattern: 'planted.example' }, 'cross-site');
    assert.equal(add.status, 403);
    const remove = await postForm(`${feed.manage}/sender-rules/remove`, { id: String(rule!.id) }, 'cross-site');
    assert.equal(remove.status, 403);
    assert.deepEqual((await server.app.stores.app.senderRulesOfFeed(id)).map((r) => r.pattern), ['kept.example']);
  });

  it('deleting a feed deletes its rules, recent deliveries and counts', async () => {
    const feed = await createFeed(server.base, 'to delete');
    await addRule(feed.manage, 'block', 'gone.example');
    const id = await feedIdOf(server, feed.address);
    assert.match((await sendOne(server.smtpPort, 'a@gone.example', feed.address, message({ Subject: 'x' }))).rcpt[0]!, /^550/);
    assert.match((await sendOne(server.smtpPort, 'a@kept.example', feed.address, message({ Subject: 'y' }))).data!, /^250/);
    assert.equal((await server.app.stores.queue.deliveriesOfFeed(id)).length, 2);
    assert.equal((await server.app.stores.queue.messagesInWindow(id)).messages, 1);

    assert.equal((await postForm(`${feed.manage}/delete`, { confirm: 'yes' })).status, 200);
    assert.deepEqual(await server.app.stores.app.senderRulesOfFeed(id), []);
    assert.deepEqual(await server.app.stores.queue.deliveriesOfFeed(id), []);
    assert.equal((await server.app.stores.queue.messagesInWindow(id)).messages, 0);
    assert.match((await sendOne(server.smtpPort, 'a@kept.example', feed.address, message({ Subject: 'z' }))).rcpt[0]!, /^550 5\.1\.1 /);
  });
});

describe('reading the sender from a message', () => {
  it('finds the From: addresses past display names, comments and folds, and the decoded subject', () => {
    const head = readHead(Buffer.from([
      'Received: from x',
      'From: "Jane, \\"the\\" <fake@spoofed.example>" (comment with <fake2@spoofed.example>)',
      '  <Jane@Example.COM>, other@second.example',
      'Subject: =?utf-8?B?w6l0w6k=?= =?utf-8?Q?_caf=C3=A9?= and more',
      'From: third@third.example',
      '',
      'From: body@body.example',
    ].join('\r\n')));
    // Every member of the list: a bare address next to a bracketed one counts too.
    assert.deepEqual(head.from, ['jane@example.com', 'other@second.example', 'third@third.example']);
    assert.equal(head.subject, 'été café and more');
    assert.deepEqual(readHead(Buffer.from('From: plain@example.org (Plain)\n\nbody')).from, ['plain@example.org']);
    assert.deepEqual(readHead(Buffer.from('From: group: a@one.example, b@two.example;\n\n')).from, ['a@one.example', 'b@two.example']);
    assert.equal(readHead(Buffer.from('Subject: =?x-unknown?Q?keep?=\n\n')).subject, '=?x-unknown?Q?keep?=');
    assert.equal(readHead(Buffer.from('Subject: \u202eevil\u0007 \r\n\tfolded\n\n')).subject, 'evil folded');
  });

  it('never throws and reads no further than the first MiB, whatever the header', () => {
    const huge = Buffer.from(`Subject: ${'x'.repeat(1_100_000)}\r\nFrom: late@late.example\r\n\r\n`);
    const h = readHead(huge);
    assert.deepEqual(h.from, [], 'the From: past the bound is not read');
    assert.equal(h.subject, null, 'a header cut by the bound is not read');
    assert.deepEqual(readHead(Buffer.from(`Subject: ${'x'.repeat(200_000)}\r\nFrom: late@late.example\r\n\r\n`)).from, ['late@late.example']);
    const long = readHead(Buffer.from(`Subject: ${'y'.repeat(10_000)}\r\n\r\n`));
    assert.equal([...long.subject!].length, 200);
    for (const raw of [Buffer.alloc(0), Buffer.from('\r\n\r\n'), Buffer.from(':::\n: x\nFrom:\nFrom: <>\nFrom: @\nFrom: a@\nSubject:'), Buffer.from([0xff, 0xfe, 0x00, 0x0a, 0x3a]),
      Buffer.from(`From: ${'('.repeat(50_000)}a@b.example\n\n`), Buffer.from(`Subject: ${'=?utf-8?B?'.repeat(5000)}\n\n`), Buffer.from(`From: ${'"'.repeat(30_001)}<a@b.example>\n\n`)]) {
      const r = readHead(raw);
      assert.ok(Array.isArray(r.from));
    }
  });

  it('parses typed rules and decides senders as documented', () => {
    assert.deepEqual(parseSenderPattern(' News@Example.com '), { pattern: 'news@example.com' });
    assert.ok('problem' in parseSenderPattern('http://example.com'));
    for (const typed of ['example.com', '@example.com', '*@example.com', '*.Example.COM.']) assert.deepEqual(parseSenderPattern(typed), { pattern: 'example.com' }, typed);
    const rules = [{ action: 'block' as const, pattern: 'example.com' }, { action: 'allow' as const, pattern: 'ok.example' }];
    const at = (address: string, where: 'envelope sender' | 'From: header' = 'From: header') => ({ address, where });
    assert.equal(senderVerdict(rules, [at('x@mail.example.com', 'envelope sender')], false).refused, true);
    assert.equal(senderVerdict(rules, [at('x@strangers.example', 'envelope sender')], false).refused, false, 'the allowlist waits for the From: header');
    assert.equal(senderVerdict(rules, [at('x@strangers.example', 'envelope sender'), at('y@ok.example')], true).refused, false);
    assert.deepEqual(senderVerdict(rules, [at('x@strangers.example', 'envelope sender')], true), { refused: true, reason: 'not on the allowlist' });
    assert.equal(senderVerdict([], [at('')], true).refused, false);
  });
});
