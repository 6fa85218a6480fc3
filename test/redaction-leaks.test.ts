/**
 * Leaks of a recipient's address found by the issue-9 security review (findings 5, 6 and 9):
 * a hard-wrapped URL in plain-text mail split by the link markup around it, a tracking
 * parameter in base64 inside a quoted-printable attached message, and the address in
 * UTF-32, in full-width forms, or in ASCII labelled UTF-16.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { fallbackForRecipients, processMessage, redactForRecipients, type ProcessOptions } from '../src/mail/process.js';
import { bytesContainSecret, redactPart, redactor, type FeedSecrets } from '../src/mail/redact.js';
import type { NewPart } from '../src/store/entries.js';
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

  it('leaves a hard-wrapped URL as text where the text becomes HTML before redaction (a message with a forwarded HTML part)', async () => {
    const raw = 'Subject: fwd\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary="M"\r\n\r\n'
      + '--M\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n'
      + `See below. To stop: https://news.example.com/unsubscribe?email=${ADDRESS.slice(0, 13)}\r\n${ADDRESS.slice(13)}&list=7\r\n\r\n`
      + '--M\r\nContent-Type: message/rfc822\r\nContent-Disposition: attachment; filename="fwd.eml"\r\n\r\n'
      + 'From: News <news@example.com>\r\nSubject: Weekly\r\nContent-Type: text/html; charset=utf-8\r\n\r\n<p>Inner <b>news</b></p>\r\n'
      + '--M--\r\n';
    const c = redactForRecipients(await processMessage(Buffer.from(raw), OPTIONS), [SECRETS]);
    assert.match(c.html, /Inner/, 'the forwarded message is shown');
    for (const value of [c.html, shown(c.html)]) {
      assert.ok(!value.includes(SECRETS.inboxToken.slice(0, 13)) && !value.includes(SECRETS.inboxToken.slice(13)), value.slice(0, 3000));
    }
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

/** Quoted-printable as a mailer writes it: `=` and 8-bit bytes escaped, lines soft-broken after 60 characters. */
function qp(s: string): string {
  return s.replace(/[=\x80-\xff]/g, (c) => `=${c.charCodeAt(0).toString(16).toUpperCase().padStart(2, '0')}`).replace(/(.{60})/g, '$1=\r\n');
}

function qpDecode(s: string): string {
  return s.replace(/=\r?\n/g, '').replace(/=([0-9A-F]{2})/gi, (_, h: string) => String.fromCharCode(parseInt(h, 16)));
}

/** A forwarded message attached as .eml, its HTML quoted-printable, linking a tracker whose parameter is base64 of JSON with the address. */
function attachedEmlMessage(address: string): { raw: string; link: string } {
  const link = `https://t.example.com/c?p=${Buffer.from(JSON.stringify({ e: address, l: 'unsub-weekly-digest' })).toString('base64')}`;
  const inner = `From: News <news@example.com>\r\nTo: ${address}\r\nSubject: weekly\r\nMIME-Version: 1.0\r\nContent-Type: text/html; charset=utf-8\r\n`
    + `Content-Transfer-Encoding: quoted-printable\r\n\r\n${qp(`<html><body><p>Hi there, weekly digest. Manage: <a href="${link}">unsubscribe</a></p></body></html>`)}\r\n`;
  const raw = `Subject: Fwd: weekly\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary="OUT"\r\n\r\n--OUT\r\nContent-Type: text/plain\r\n\r\nSee attached.\r\n`
    + `--OUT\r\nContent-Type: message/rfc822\r\nContent-Disposition: attachment; filename="weekly.eml"\r\n\r\n${inner}\r\n--OUT--\r\n`;
  return { raw, link };
}

/** Whether the address shows in an attached message's text once quoted-printable and its base64 `p=` parameter are decoded. */
function emlLeaks(eml: string, token: string): boolean {
  const decoded = qpDecode(eml);
  const p = /p=([A-Za-z0-9+/=]+)/.exec(decoded)?.[1] ?? '';
  const offsets = [0, 1, 2, 3].map((k) => Buffer.from(p.slice(k), 'base64').toString('latin1'));
  return [eml, decoded, ...offsets].some((x) => x.toLowerCase().includes(token));
}

describe('redaction leaks: base64 in a quoted-printable attached message (finding 6)', () => {
  it('finds the address in a base64 tracking parameter across soft breaks and =3D', async () => {
    const { raw, link } = attachedEmlMessage(ADDRESS);
    // The reproduction really does put soft breaks inside the base64 parameter.
    assert.ok(qp(link).includes('=\r\n'));
    const processed = await processMessage(Buffer.from(raw), OPTIONS);
    const eml = processed.parts.find((p) => p.contentType === 'message/rfc822');
    assert.ok(eml?.content && emlLeaks(eml.content.toString('latin1'), SECRETS.inboxToken));
    const c = redactForRecipients(processed, [SECRETS]);
    const redacted = c.parts.find((p) => p.contentType === 'message/rfc822');
    assert.ok(redacted?.content, 'the attached message is still offered, redacted');
    const text = redacted.content.toString('utf8');
    assert.ok(!emlLeaks(text, SECRETS.inboxToken), text);
    assert.match(qpDecode(text), /p=[A-Za-z0-9+/]*redacted/);
  });

  it('finds it at every quoted-printable line length and base64 alignment', () => {
    const redact = redactor(SECRETS);
    for (let width = 7; width <= 76; width += 3) {
      for (const pad of ['', 'a', 'ab']) {
        const b64 = Buffer.from(`${pad}{"e":"${ADDRESS}"}`).toString('base64');
        const text = qp(`<a href="https://t.example.com/c?p=${b64}">x</a>`).replace(/=\r\n/g, '').replace(new RegExp(`(.{${width}})`, 'g'), '$1=\r\n');
        assert.ok(!emlLeaks(redact(text), SECRETS.inboxToken), `${width} ${pad}: ${redact(text)}`);
      }
    }
  });
});

function part(contentType: string, content: Buffer, charset: string | null = null): NewPart {
  return { filename: 'list.txt', contentType, contentId: null, inline: false, charset, note: null, content, size: content.length };
}

function utf32(s: string, order: 'le' | 'be'): Buffer {
  const b = Buffer.alloc(s.length * 4);
  [...s].forEach((c, i) => (order === 'le' ? b.writeUInt32LE(c.codePointAt(0)!, i * 4) : b.writeUInt32BE(c.codePointAt(0)!, i * 4)));
  return b;
}

/** Full-width forms of an ASCII string (U+FF01-FF5E). */
function fullWidth(s: string): string {
  return s.replace(/[!-~]/g, (c) => String.fromCharCode(c.charCodeAt(0) + 0xfee0));
}

describe('redaction leaks: UTF-32, full-width forms, ASCII labelled UTF-16 (finding 9)', () => {
  const text = `Subscribers:\n${ADDRESS}\nend\n`;

  it('finds the address in UTF-32 (LE and BE, with or without a byte order mark), as text and in binary attachments', () => {
    const redact = redactor(SECRETS);
    for (const order of ['le', 'be'] as const) {
      const bytes = utf32(text, order);
      assert.ok(bytesContainSecret(bytes, SECRETS), order);
      assert.ok(!redact(bytes.toString('latin1')).toLowerCase().includes([...SECRETS.inboxToken].join('\0\0\0')), order);
      assert.equal(redactPart(part('application/octet-stream', bytes), [SECRETS]).content, null);
      const bom = order === 'le' ? Buffer.from([0xff, 0xfe, 0, 0]) : Buffer.from([0, 0, 0xfe, 0xff]);
      for (const [content, charset] of [[Buffer.concat([bom, bytes]), null], [bytes, `utf-32${order}`], [bytes, 'utf-32']] as const) {
        const out = redactPart(part('text/plain', content, charset), [SECRETS]);
        const shownText = out.content!.toString('utf8');
        assert.ok(!shownText.replace(/\0/g, '').includes(SECRETS.inboxToken), `${order} ${charset}: ${JSON.stringify(shownText)}`);
        assert.match(shownText, /redacted/, `${order} ${charset}`);
      }
    }
  });

  it('finds the address in full-width forms, plain and as character references', () => {
    const redact = redactor(SECRETS);
    const wide = fullWidth(ADDRESS);
    for (const input of [`宛先：${wide}。`, `<a href="https://x.example/u?e=${wide}">x</a>`, [...wide].map((c) => `&#x${c.charCodeAt(0).toString(16)};`).join(''), `${fullWidth(SECRETS.inboxToken.toUpperCase())}`]) {
      const out = redact(input);
      assert.match(out, /redacted/, out);
      assert.ok(!out.normalize('NFKC').toLowerCase().includes(SECRETS.inboxToken), out);
    }
    // Full-width text with no address is left alone.
    assert.equal(redact(fullWidth('nothing secret here at all')), fullWidth('nothing secret here at all'));
  });

  it('reads an ASCII attachment labelled UTF-16 as the ASCII it is, and redacts it', () => {
    for (const charset of ['utf-16', 'utf-16le', 'utf-16be', 'UTF-16']) {
      const out = redactPart(part('text/plain', Buffer.from(text, 'ascii'), charset), [SECRETS]);
      const shownText = out.content!.toString('utf8');
      assert.equal(shownText, 'Subscribers:\nredacted@feedmail.test\nend\n', charset);
    }
    // Real UTF-16 keeps being read as UTF-16: Latin text (zero bytes) and CJK text (not UTF-8).
    const latin = redactPart(part('text/plain', Buffer.from(text, 'utf16le'), 'utf-16le'), [SECRETS]);
    assert.equal(latin.content!.toString('utf8'), 'Subscribers:\nredacted@feedmail.test\nend\n');
    const cjk = '購読者の一覧です。来週もよろしくお願いします。';
    const be = Buffer.from(cjk, 'utf16le').swap16();
    assert.equal(redactPart(part('text/plain', be, 'utf-16be'), [SECRETS]).content!.toString('utf8'), cjk);
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
