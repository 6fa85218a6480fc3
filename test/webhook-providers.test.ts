/**
 * Issue 12: the Postmark, Mailgun and SendGrid webhooks, over real HTTP to the real
 * server, with requests built the way each provider documents them (the source of
 * each fixture builder is named beside it).
 */
import assert from 'node:assert/strict';
import { createSign, generateKeyPairSync } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { mailgunSignature } from '../src/mail/webhooks/mailgun.js';
import { INGEST_TASK } from '../src/store/journal.js';
import { createFeed, type CreatedFeed, readFeed, startTestServer, type TestServer, waitFor, waitForEntries } from './support/helpers.js';

const POSTMARK = 'postmark-user:postmark-password-0123456789';
const SENDGRID = 'sendgrid-user:sendgrid-password-0123456789';
const MAILGUN_KEY = 'key-mailgun-signing-0123456789abcdef';
const { privateKey: sendgridPrivate, publicKey: sendgridPublic } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
/** As SendGrid's console shows the verification key: base64 DER SubjectPublicKeyInfo. */
const SENDGRID_KEY = sendgridPublic.export({ format: 'der', type: 'spki' }).toString('base64');

/** A feed's entries once it has one; generous, since the machine running the tests may be busy. */
const entriesOf = (feed: CreatedFeed) => waitForEntries(feed.feeds.json, 'json', 1, 30_000);
const basic = (credentials: string) => `Basic ${Buffer.from(credentials).toString('base64')}`;
const now = () => Math.floor(Date.now() / 1000);

/** A newsletter as it arrives over SMTP. */
function newsletter(to: string, subject: string): string {
  return [
    'From: Weekly News <news@example.com>', `To: ${to}`, `Subject: ${subject}`, 'Date: Fri, 27 Nov 2026 00:00:00 +0000',
    `Message-ID: <${subject.replace(/\W/g, '')}@example.com>`, 'MIME-Version: 1.0', 'Content-Type: text/html; charset=utf-8', '',
    `<p>This week: ${subject}.</p>`, '',
  ].join('\r\n');
}

interface Part {
  name: string;
  value: string | Buffer;
  filename?: string;
  contentType?: string;
}

/** multipart/form-data (RFC 7578) as Mailgun and SendGrid post it; SendGrid's examples use the boundary xYzZY. */
function multipart(parts: Part[], boundary = 'xYzZY'): { body: Buffer; contentType: string } {
  const chunks: Buffer[] = [];
  for (const p of parts) {
    const disposition = `form-data; name="${p.name}"${p.filename !== undefined ? `; filename="${p.filename}"` : ''}`;
    const type = p.contentType ? `\r\nContent-Type: ${p.contentType}` : '';
    chunks.push(Buffer.from(`--${boundary}\r\nContent-Disposition: ${disposition}${type}\r\n\r\n`), Buffer.from(p.value), Buffer.from('\r\n'));
  }
  chunks.push(Buffer.from(`--${boundary}--\r\n`));
  return { body: Buffer.concat(chunks), contentType: `multipart/form-data; boundary=${boundary}` };
}

/** A 1x1 PNG, for attachments and inline images. */
const PNG = Buffer.from('iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg==', 'base64');

// ---------------------------------------------------------------- Postmark

/**
 * Postmark's inbound webhook JSON, after the example of
 * https://postmarkapp.com/developer/webhooks/inbound-webhook (fields FromFull, ToFull,
 * OriginalRecipient, Headers, Attachments with base64 Content and ContentID; RawEmail
 * when "Include raw email content" is on).
 */
function postmarkPayload(to: string, subject: string, options: { raw?: boolean } = {}): Record<string, unknown> {
  return {
    FromName: 'Weekly News',
    MessageStream: 'inbound',
    From: 'news@example.com',
    FromFull: { Email: 'news@example.com', Name: 'Weekly News', MailboxHash: '' },
    To: to,
    ToFull: [{ Email: to, Name: '', MailboxHash: '' }],
    Cc: '',
    CcFull: [],
    Bcc: '',
    BccFull: [],
    OriginalRecipient: to,
    Subject: subject,
    MessageID: '73e6d360-66eb-11e1-8e72-a8904824019b',
    ReplyTo: 'replyto@example.com',
    MailboxHash: '',
    Date: 'Fri, 27 Nov 2026 00:00:00 +0000',
    TextBody: `This week: ${subject}.`,
    HtmlBody: `<p>This week: <b>${subject}</b>. <img src="cid:logo@example.com" alt="logo"></p>`,
    StrippedTextReply: '',
    Tag: '',
    Headers: [
      { Name: 'X-Spam-Status', Value: 'No' },
      { Name: 'Message-ID', Value: `<${subject.replace(/\W/g, '')}@example.com>` },
      { Name: 'MIME-Version', Value: '1.0' },
    ],
    Attachments: [
      { Name: 'logo.png', Content: PNG.toString('base64'), ContentType: 'image/png', ContentLength: PNG.length, ContentID: 'logo@example.com' },
      { Name: 'issue.txt', Content: Buffer.from('The whole issue as text.').toString('base64'), ContentType: 'text/plain', ContentLength: 24, ContentID: '' },
    ],
    ...(options.raw ? { RawEmail: newsletter(to, subject) } : {}),
  };
}

function postPostmark(base: string, body: string | Buffer, credentials = POSTMARK) {
  return fetch(`${base}/inbound/postmark`, {
    method: 'POST', headers: { 'Content-Type': 'application/json', Authorization: basic(credentials) }, body: new Uint8Array(Buffer.from(body)),
  });
}

// ---------------------------------------------------------------- Mailgun

/**
 * A Mailgun route's forward(), after
 * https://documentation.mailgun.com/docs/mailgun/user-manual/receive-forward-store/ (the
 * parsed fields, message-headers as JSON [name, value] pairs, attachment-N files,
 * content-id-map; body-mime when the URL ends in "mime") signed as
 * https://documentation.mailgun.com/docs/mailgun/user-manual/webhooks/securing-webhooks
 * describes: signature = hex HMAC-SHA256(signing key, timestamp + token).
 */
function mailgunForm(to: string, subject: string, options: { mime?: boolean; timestamp?: number; token?: string; key?: string } = {}): Part[] {
  const timestamp = String(options.timestamp ?? now());
  const token = options.token ?? `token${Math.random().toString(36).slice(2)}${Date.now()}`;
  const signature = mailgunSignature(options.key ?? MAILGUN_KEY, timestamp, token);
  const parts: Part[] = [
    { name: 'recipient', value: to },
    { name: 'sender', value: 'bounces@example.com' },
    { name: 'from', value: 'Weekly News <news@example.com>' },
    { name: 'subject', value: subject },
    { name: 'timestamp', value: timestamp },
    { name: 'token', value: token },
    { name: 'signature', value: signature },
  ];
  if (options.mime) return [...parts, { name: 'body-mime', value: newsletter(to, subject) }];
  return [
    ...parts,
    { name: 'body-plain', value: `This week: ${subject}.` },
    { name: 'body-html', value: `<p>This week: <b>${subject}</b>. <img src="cid:logo@example.com" alt="logo"></p>` },
    { name: 'stripped-text', value: `This week: ${subject}.` },
    { name: 'message-headers', value: JSON.stringify([
      ['Received', 'from mail.example.com by mxa.mailgun.org'], ['From', 'Weekly News <news@example.com>'], ['To', to],
      ['Subject', subject], ['Date', 'Fri, 27 Nov 2026 00:00:00 +0000'], ['Mime-Version', '1.0'],
      ['Content-Type', 'multipart/mixed; boundary="lost"'], ['Message-Id', `<${subject.replace(/\W/g, '')}@example.com>`],
    ]) },
    { name: 'attachment-count', value: '2' },
    { name: 'content-id-map', value: JSON.stringify({ '<logo@example.com>': 'attachment-1' }) },
    { name: 'attachment-1', value: PNG, filename: 'logo.png', contentType: 'image/png' },
    { name: 'attachment-2', value: 'The whole issue as text.', filename: 'issue.txt', contentType: 'text/plain' },
  ];
}

function postForm(base: string, provider: string, form: { body: Buffer; contentType: string }, headers: Record<string, string> = {}) {
  return fetch(`${base}/inbound/${provider}`, { method: 'POST', headers: { 'Content-Type': form.contentType, ...headers }, body: new Uint8Array(form.body) });
}

// ---------------------------------------------------------------- SendGrid

/**
 * SendGrid Inbound Parse, after
 * https://www.twilio.com/docs/sendgrid/for-developers/parsing-email/setting-up-the-inbound-parse-webhook
 * (raw mode: `email` holds the full MIME, `envelope` JSON; parsed mode: headers, text,
 * html, charsets, attachment-info, attachmentN) with the example field set of
 * https://www.twilio.com/docs/sendgrid/for-developers/parsing-email/inbound-email.
 */
function sendgridForm(to: string, subject: string, options: { raw?: boolean } = {}): Part[] {
  const common: Part[] = [
    { name: 'dkim', value: '{@example.com : pass}' },
    { name: 'to', value: to },
    { name: 'from', value: 'Weekly News <news@example.com>' },
    { name: 'subject', value: subject },
    { name: 'sender_ip', value: '192.0.2.1' },
    { name: 'envelope', value: JSON.stringify({ to: [to], from: 'bounces@example.com' }) },
    { name: 'SPF', value: 'pass' },
  ];
  if (options.raw) {
    return [{ name: 'headers', value: newsletter(to, subject).split('\r\n\r\n')[0]! }, ...common, { name: 'charsets', value: '{"to":"UTF-8","subject":"UTF-8","from":"UTF-8"}' }, { name: 'email', value: newsletter(to, subject) }];
  }
  return [
    { name: 'headers', value: `From: Weekly News <news@example.com>\nTo: ${to}\nSubject: ${subject}\nDate: Fri, 27 Nov 2026 00:00:00 +0000\nMessage-ID: <${subject.replace(/\W/g, '')}@example.com>\nMIME-Version: 1.0\nContent-Type: multipart/mixed; boundary="lost"\n` },
    ...common,
    // The text field in ISO-8859-1, as `charsets` says: "Caf\xe9".
    { name: 'text', value: Buffer.concat([Buffer.from(`This week: ${subject}. Caf`), Buffer.from([0xe9])]) },
    { name: 'html', value: `<p>This week: <b>${subject}</b>. Café <img src="cid:ii_logo" alt="logo"></p>` },
    { name: 'charsets', value: '{"to":"UTF-8","html":"UTF-8","subject":"UTF-8","from":"UTF-8","text":"iso-8859-1"}' },
    { name: 'attachments', value: '2' },
    { name: 'attachment-info', value: JSON.stringify({ attachment1: { filename: 'logo.png', name: 'logo.png', type: 'image/png', 'content-id': 'ii_logo' }, attachment2: { filename: 'issue.txt', type: 'text/plain' } }) },
    { name: 'attachment1', value: PNG, filename: 'logo.png', contentType: 'image/png' },
    { name: 'attachment2', value: 'The whole issue as text.', filename: 'issue.txt', contentType: 'text/plain' },
  ];
}

/** The signed webhook's headers: ECDSA P-256 over the timestamp followed by the body, base64 DER. */
function sendgridSignature(body: Buffer, timestamp = String(now())): Record<string, string> {
  const signature = createSign('sha256').update(timestamp).update(body).sign({ key: sendgridPrivate, dsaEncoding: 'der' }).toString('base64');
  return { 'X-Twilio-Email-Event-Webhook-Signature': signature, 'X-Twilio-Email-Event-Webhook-Timestamp': timestamp };
}

function postSendgrid(base: string, form: { body: Buffer; contentType: string }, headers: Record<string, string> = { ...sendgridSignature(form.body), Authorization: basic(SENDGRID) }) {
  return postForm(base, 'sendgrid', form, headers);
}

// ---------------------------------------------------------------- the tests

describe('provider webhooks: Postmark, Mailgun, SendGrid', () => {
  let server: TestServer;
  before(async () => {
    server = await startTestServer({
      postmarkCredentials: POSTMARK, mailgunSigningKey: MAILGUN_KEY, sendgridCredentials: SENDGRID, sendgridPublicKey: SENDGRID_KEY, maxMessageBytes: '64k',
    });
  });
  after(async () => {
    await server.stop();
  });

  /** Journal rows so far: a refused request must not add one. */
  const journaled = async () => (await server.app.stores.queue.journalAfter(0, 100_000)).length;
  /** Every journaled message has been processed (stored, or found to be a duplicate). */
  const ingestIdle = () => waitFor(async () => {
    const stats = await server.app.stores.queue.queueStats(INGEST_TASK);
    return stats.ready + stats.claimed === 0;
  }, 30_000, 'ingest to finish');
  /** Sends a request, asserts its status and that nothing was journaled for it; returns the error code answered. */
  const refused = async (request: () => Promise<Response>, status: number, what: string) => {
    const before = await journaled();
    const res = await request();
    const text = await res.text();
    assert.equal(res.status, status, `${what}: ${text}`);
    assert.equal(await journaled(), before, `${what}: nothing journaled`);
    return (JSON.parse(text) as { error: { code: string } }).error.code;
  };

  describe('Postmark', () => {
    it('stores the RawEmail as one entry, and a retry of the same request as no second one', async () => {
      const feed = await createFeed(server.base);
      const body = JSON.stringify(postmarkPayload(feed.address, 'postmark raw', { raw: true }));
      const first = await postPostmark(server.base, body);
      assert.equal(first.status, 200, await first.text());
      const [entry] = await entriesOf(feed);
      assert.equal(entry!.title, 'postmark raw');
      assert.equal(entry!.author, 'Weekly News');
      assert.equal((await postPostmark(server.base, body)).status, 200, 'the retry is acknowledged');
      await ingestIdle();
      assert.equal((await readFeed(feed.feeds.json, 'json')).length, 1, 'one entry');
    });

    it('rebuilds the message from the parsed fields, attachments and inline image included', async () => {
      const feed = await createFeed(server.base);
      const body = JSON.stringify(postmarkPayload(feed.address, 'postmark parsed'));
      assert.equal((await postPostmark(server.base, body)).status, 200);
      const [entry] = await entriesOf(feed);
      assert.equal(entry!.title, 'postmark parsed');
      assert.equal(entry!.author, 'Weekly News');
      assert.match(entry!.html, /<b>postmark parsed<\/b>/);
      assert.doesNotMatch(entry!.html, /cid:/, 'the inline image is served by feedmail');
      assert.ok(entry!.enclosures.some((e) => e.type === 'text/plain'), 'the attachment is listed');
      assert.equal((await postPostmark(server.base, body)).status, 200);
      await ingestIdle();
      assert.equal((await readFeed(feed.feeds.json, 'json')).length, 1, 'the rebuilt message is the same bytes again: one entry');
    });

    it('refuses wrong or missing credentials (401), unknown recipients (403), malformed JSON (400) and oversize bodies (413)', async () => {
      const feed = await createFeed(server.base);
      const body = JSON.stringify(postmarkPayload(feed.address, 'refused'));
      await refused(() => postPostmark(server.base, body, POSTMARK.slice(0, -1) + 'X'), 401, 'a changed byte in the password');
      await refused(() => fetch(`${server.base}/inbound/postmark`, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body }), 401, 'no credentials');
      const unknown = await refused(() => postPostmark(server.base, JSON.stringify(postmarkPayload('nobody@localhost', 'x'))), 403, 'unknown recipient');
      assert.equal(unknown, 'unknown_recipient');
      await refused(() => postPostmark(server.base, body.slice(0, -1)), 400, 'truncated JSON');
      await refused(() => postPostmark(server.base, JSON.stringify({ ...postmarkPayload(feed.address, 'x'), Attachments: 'none' })), 400, 'JSON of another shape');
      await refused(() => postPostmark(server.base, JSON.stringify(postmarkPayload(feed.address, 'x'.repeat(100_000)))), 413, 'oversize');
      await ingestIdle();
      assert.equal((await readFeed(feed.feeds.json, 'json')).length, 0);
    });
  });

  describe('Mailgun', () => {
    it('stores body-mime posted to /inbound/mailgun-mime once; the same request again is refused (406)', async () => {
      const feed = await createFeed(server.base);
      const form = multipart(mailgunForm(feed.address, 'mailgun mime', { mime: true }));
      const first = await postForm(server.base, 'mailgun-mime', form);
      assert.equal(first.status, 200, await first.text());
      const [entry] = await entriesOf(feed);
      assert.equal(entry!.title, 'mailgun mime');
      const again = await refused(() => postForm(server.base, 'mailgun-mime', form), 406, 'the replayed token');
      assert.equal(again, 'replayed_delivery');
      await ingestIdle();
      assert.equal((await readFeed(feed.feeds.json, 'json')).length, 1);
    });

    it('rebuilds the parsed form posted to /inbound/mailgun, attachments and inline image included', async () => {
      const feed = await createFeed(server.base);
      const res = await postForm(server.base, 'mailgun', multipart(mailgunForm(feed.address, 'mailgun parsed')));
      assert.equal(res.status, 200, await res.text());
      const [entry] = await entriesOf(feed);
      assert.equal(entry!.title, 'mailgun parsed');
      assert.equal(entry!.author, 'Weekly News');
      assert.match(entry!.html, /<b>mailgun parsed<\/b>/);
      assert.doesNotMatch(entry!.html, /cid:/);
      assert.ok(entry!.enclosures.some((e) => e.type === 'text/plain'));
    });

    it('takes the same fields urlencoded (a message without attachments) and a non-ASCII file name', async () => {
      const feed = await createFeed(server.base);
      const fields = mailgunForm(feed.address, 'mailgun urlencoded', { mime: true });
      const body = Buffer.from(new URLSearchParams(fields.map((p) => [p.name, String(p.value)])).toString());
      const res = await postForm(server.base, 'mailgun-mime', { body, contentType: 'application/x-www-form-urlencoded' });
      assert.equal(res.status, 200, await res.text());
      assert.equal((await entriesOf(feed))[0]!.title, 'mailgun urlencoded');
      const other = await createFeed(server.base);
      const parts = mailgunForm(other.address, 'mailgun café').map((p) => (p.name === 'attachment-2' ? { ...p, filename: 'numéro.txt' } : p));
      assert.equal((await postForm(server.base, 'mailgun', multipart(parts))).status, 200);
      const [entry] = await entriesOf(other);
      assert.equal(entry!.title, 'mailgun café');
      const page = await (await fetch(entry!.link)).text();
      assert.match(page, /numéro\.txt/, 'the file name as sent');
    });

    it('refuses a changed signature or token, a 10-minute-old timestamp, another key (401) and an unknown recipient (406)', async () => {
      const feed = await createFeed(server.base);
      const changed = (parts: Part[], name: string) => parts.map((p) => (p.name === name ? { ...p, value: String(p.value).replace(/.$/, (c) => (c === '0' ? '1' : '0')) } : p));
      await refused(() => postForm(server.base, 'mailgun-mime', multipart(changed(mailgunForm(feed.address, 'x', { mime: true }), 'signature'))), 401, 'a changed byte in the signature');
      await refused(() => postForm(server.base, 'mailgun-mime', multipart(changed(mailgunForm(feed.address, 'x', { mime: true }), 'token'))), 401, 'a changed byte in the token');
      await refused(() => postForm(server.base, 'mailgun-mime', multipart(mailgunForm(feed.address, 'x', { mime: true, timestamp: now() - 600 }))), 401, 'a 10-minute-old timestamp');
      await refused(() => postForm(server.base, 'mailgun-mime', multipart(mailgunForm(feed.address, 'x', { mime: true, key: 'key-another-signing-key-000000000' }))), 401, 'another key');
      const unknown = await refused(() => postForm(server.base, 'mailgun-mime', multipart(mailgunForm('nobody@localhost', 'x', { mime: true }))), 406, 'unknown recipient');
      assert.equal(unknown, 'unknown_recipient');
      await ingestIdle();
      assert.equal((await readFeed(feed.feeds.json, 'json')).length, 0);
    });

    it('refuses a token used before even with a new timestamp, malformed forms (400) and oversize bodies (413)', async () => {
      const feed = await createFeed(server.base);
      const token = `token-once-${Date.now()}`;
      assert.equal((await postForm(server.base, 'mailgun-mime', multipart(mailgunForm(feed.address, 'token once', { mime: true, token, timestamp: now() - 5 })))).status, 200);
      await refused(() => postForm(server.base, 'mailgun-mime', multipart(mailgunForm(feed.address, 'token twice', { mime: true, token }))), 406, 'the token again, newly signed');
      const whole = multipart(mailgunForm(feed.address, 'x', { mime: true }));
      await refused(() => postForm(server.base, 'mailgun-mime', { ...whole, body: whole.body.subarray(0, whole.body.length - 40) }), 400, 'a truncated form');
      await refused(() => postForm(server.base, 'mailgun-mime', { ...whole, contentType: 'multipart/form-data' }), 400, 'no boundary');
      const badHeaders = mailgunForm(feed.address, 'x').map((p) => (p.name === 'message-headers' ? { ...p, value: '[["From"' } : p));
      await refused(() => postForm(server.base, 'mailgun', multipart(badHeaders)), 400, 'message-headers that are not JSON');
      await refused(() => postForm(server.base, 'mailgun', multipart([...mailgunForm(feed.address, 'x'), { name: 'attachment-3', value: Buffer.alloc(100_000), filename: 'big.bin' }])), 413, 'oversize');
      await ingestIdle();
      assert.equal((await readFeed(feed.feeds.json, 'json')).length, 1);
    });
    it('spends a token refused for good (406): the same token with another recipient and body is refused as a replay', async () => {
      const feed = await createFeed(server.base);
      const token = `token-refused-${Date.now()}`;
      const timestamp = now();
      const unknown = await refused(() => postForm(server.base, 'mailgun-mime', multipart(mailgunForm('nobody@localhost', 'legit', { mime: true, token, timestamp }))), 406, 'unknown recipient');
      assert.equal(unknown, 'unknown_recipient');
      const reused = await refused(() => postForm(server.base, 'mailgun-mime', multipart(mailgunForm(feed.address, 'mg INJECTED', { mime: true, token, timestamp }))), 406, 'the refused token, reused');
      assert.equal(reused, 'replayed_delivery');
      await ingestIdle();
      assert.equal((await readFeed(feed.feeds.json, 'json')).length, 0, 'nothing injected');
    });

    it('leaves a token fresh when the refusal asks for a retry (507 feed at its limit)', async () => {
      const limited = await startTestServer({ mailgunSigningKey: MAILGUN_KEY, feedMessagesPerDay: '1' });
      try {
        const feed = await createFeed(limited.base);
        assert.equal((await postForm(limited.base, 'mailgun-mime', multipart(mailgunForm(feed.address, 'first of the day', { mime: true })))).status, 200);
        const form = multipart(mailgunForm(feed.address, 'second of the day', { mime: true }));
        for (const attempt of ['first attempt', 'the retry']) {
          const res = await postForm(limited.base, 'mailgun-mime', form);
          const text = await res.text();
          assert.equal(res.status, 507, `${attempt}: ${text}`);
          assert.notEqual((JSON.parse(text) as { error: { code: string } }).error.code, 'replayed_delivery', `${attempt}: not refused as a replay`);
        }
      } finally {
        await limited.stop();
      }
    });
  });

  describe('SendGrid', () => {
    it('stores the raw-mode email once, and a retry of the same request as no second one', async () => {
      const feed = await createFeed(server.base);
      const form = multipart(sendgridForm(feed.address, 'sendgrid raw', { raw: true }));
      const headers = { ...sendgridSignature(form.body), Authorization: basic(SENDGRID) };
      const first = await postSendgrid(server.base, form, headers);
      assert.equal(first.status, 200, await first.text());
      const [entry] = await entriesOf(feed);
      assert.equal(entry!.title, 'sendgrid raw');
      assert.equal((await postSendgrid(server.base, form, headers)).status, 200);
      await ingestIdle();
      assert.equal((await readFeed(feed.feeds.json, 'json')).length, 1);
    });

    it('rebuilds the parsed mode in the charsets it names, attachments and inline image included', async () => {
      const feed = await createFeed(server.base);
      const res = await postSendgrid(server.base, multipart(sendgridForm(feed.address, 'sendgrid parsed')));
      assert.equal(res.status, 200, await res.text());
      const [entry] = await entriesOf(feed);
      assert.equal(entry!.title, 'sendgrid parsed');
      assert.match(entry!.html, /<b>sendgrid parsed<\/b>\. Café/);
      assert.doesNotMatch(entry!.html, /cid:/);
      assert.ok(entry!.enclosures.some((e) => e.type === 'text/plain'));
    });

    it('refuses a changed byte in the body or signature, missing credentials (401); unknown recipients get 200 and nothing stored', async () => {
      const feed = await createFeed(server.base);
      const form = multipart(sendgridForm(feed.address, 'sendgrid refused', { raw: true }));
      const headers: Record<string, string> = { ...sendgridSignature(form.body), Authorization: basic(SENDGRID) };
      const body = Buffer.from(form.body);
      body[body.indexOf('refused') + 1]! ^= 0x20;
      await refused(() => postSendgrid(server.base, { ...form, body }, headers), 401, 'a changed byte in the body');
      const signature = Buffer.from(headers['X-Twilio-Email-Event-Webhook-Signature']!, 'base64');
      signature[signature.length - 1]! ^= 0x01;
      await refused(() => postSendgrid(server.base, form, { ...headers, 'X-Twilio-Email-Event-Webhook-Signature': signature.toString('base64') }), 401, 'a changed byte in the signature');
      await refused(() => postSendgrid(server.base, form, { ...headers, 'X-Twilio-Email-Event-Webhook-Timestamp': String(now() + 1) }), 401, 'another timestamp');
      await refused(() => postSendgrid(server.base, form, sendgridSignature(form.body)), 401, 'no credentials');
      await refused(() => postSendgrid(server.base, form, { Authorization: basic(SENDGRID) }), 401, 'no signature');
      const unknown = multipart(sendgridForm('nobody@localhost', 'x', { raw: true }));
      const answer = await refused(() => postSendgrid(server.base, unknown), 200, 'unknown recipient');
      assert.equal(answer, 'unknown_recipient');
      await ingestIdle();
      assert.equal((await readFeed(feed.feeds.json, 'json')).length, 0);
    });

    it('refuses malformed forms and JSON fields (400) and oversize bodies (413)', async () => {
      const feed = await createFeed(server.base);
      const whole = multipart(sendgridForm(feed.address, 'x', { raw: true }));
      const truncated = { ...whole, body: whole.body.subarray(0, whole.body.length - 40) };
      await refused(() => postSendgrid(server.base, truncated), 400, 'a truncated form');
      const badEnvelope = multipart(sendgridForm(feed.address, 'x', { raw: true }).map((p) => (p.name === 'envelope' ? { ...p, value: '{"to":' } : p)));
      await refused(() => postSendgrid(server.base, badEnvelope), 400, 'an envelope that is not JSON');
      const oversize = multipart([...sendgridForm(feed.address, 'x'), { name: 'attachment3', value: Buffer.alloc(100_000), filename: 'big.bin' }]);
      await refused(() => postSendgrid(server.base, oversize), 413, 'oversize');
    });
  });

  it('authenticates SendGrid by credentials alone, or by signature alone, when only one is set', async () => {
    const byCredentials = await startTestServer({ sendgridCredentials: SENDGRID });
    const bySignature = await startTestServer({ sendgridPublicKey: SENDGRID_KEY });
    try {
      const feed = await createFeed(byCredentials.base);
      const form = multipart(sendgridForm(feed.address, 'credentials only', { raw: true }));
      const accepted = await postSendgrid(byCredentials.base, form, { Authorization: basic(SENDGRID) });
      assert.equal(accepted.status, 200);
      assert.equal(((await accepted.json()) as { accepted?: boolean }).accepted, true, 'journaled, not refused');
      assert.equal((await postSendgrid(byCredentials.base, form, { Authorization: basic(`${SENDGRID}x`) })).status, 401);
      await entriesOf(feed);
      const signed = await createFeed(bySignature.base);
      const signedForm = multipart(sendgridForm(signed.address, 'signature only', { raw: true }));
      assert.equal((await postSendgrid(bySignature.base, signedForm, sendgridSignature(signedForm.body))).status, 200);
      assert.equal((await postSendgrid(bySignature.base, signedForm, { Authorization: basic(SENDGRID) })).status, 401);
      await entriesOf(signed);
    } finally {
      await byCredentials.stop();
      await bySignature.stop();
    }
  });

  it('takes a SendGrid request signed alone once, and only with a timestamp within the retry period', async () => {
    const bySignature = await startTestServer({ sendgridPublicKey: SENDGRID_KEY });
    try {
      const journaled = async () => (await bySignature.app.stores.queue.journalAfter(0, 100_000)).length;
      const feed = await createFeed(bySignature.base);
      const post = async (subject: string, timestamp: string, form = multipart(sendgridForm(feed.address, subject, { raw: true }))) => {
        const res = await postSendgrid(bySignature.base, form, sendgridSignature(form.body, timestamp));
        return { status: res.status, answer: (await res.json()) as { accepted?: boolean; error?: { code: string } } };
      };
      const form = multipart(sendgridForm(feed.address, 'signed once', { raw: true }));
      const timestamp = String(now());
      const captured = sendgridSignature(form.body, timestamp);
      const first = await postSendgrid(bySignature.base, form, captured);
      assert.equal(first.status, 200);
      assert.equal(((await first.json()) as { accepted?: boolean }).accepted, true);
      const journaledOnce = await journaled();
      // Replayed as captured, and signed anew (ECDSA gives another signature for the same content).
      for (const [attempt, headers] of [['the captured request', captured], ['the same content signed anew', sendgridSignature(form.body, timestamp)]] as const) {
        const res = await postSendgrid(bySignature.base, form, headers);
        assert.equal(res.status, 200, `${attempt}: "do not retry" for SendGrid`);
        assert.equal(((await res.json()) as { error?: { code: string } }).error?.code, 'replayed_delivery', attempt);
      }
      assert.equal(await journaled(), journaledOnce, 'a replay journals nothing');
      for (const [what, stamp] of [['1970', '1'], ['five days old', String(now() - 5 * 86_400)], ['an hour ahead', String(now() + 3_600)], ['year 33658', '999999999999']]) {
        const res = await post(`stale ${what}`, stamp!);
        assert.equal(res.status, 401, `${what}: ${JSON.stringify(res.answer)}`);
      }
      assert.equal(await journaled(), journaledOnce, 'a stale timestamp journals nothing');
      const retried = await post('retried two days later', String(now() - 2 * 86_400));
      assert.equal(retried.answer.accepted, true, 'a delivery SendGrid retries within its three days is taken');
      assert.deepEqual((await waitForEntries(feed.feeds.json, 'json', 2, 30_000)).map((e) => e.title).sort(), ['retried two days later', 'signed once']);
    } finally {
      await bySignature.stop();
    }
  });

  it('answers 404 for every provider that is not configured', async () => {
    const off = await startTestServer();
    try {
      for (const provider of ['postmark', 'mailgun', 'mailgun-mime', 'sendgrid']) {
        const res = await fetch(`${off.base}/inbound/${provider}`, { method: 'POST', headers: { 'Content-Type': 'application/json', Authorization: basic(POSTMARK) }, body: '{}' });
        assert.equal(res.status, 404, provider);
      }
    } finally {
      await off.stop();
    }
  });
});
