/**
 * Fidelity of what parsing makes of real mail (issue 9, classes 5–8): the right characters,
 * the parts of broken MIME recovered, plain text in its own shape, and every forwarded
 * message with its header block. The fixtures are real public mail (see test/fixtures/README.md).
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { processMessage, type ProcessedMessage, type ProcessOptions } from '../src/mail/process.js';
import { textToHtml } from '../src/mail/text-html.js';
import { fixture } from './support/helpers.js';
import { unsafeConstructs } from './support/html-safety.js';

const OPTIONS: ProcessOptions = { maxPartBytes: 10_000_000, keepTrackingPixels: false };

function processFixture(name: string): Promise<ProcessedMessage> {
  return processMessage(fixture(name), OPTIONS);
}

/** The text a reader sees in an HTML fragment: blocks on lines of their own, other tags dropped, entities decoded. */
function shownText(html: string): string {
  return html.replace(/<\/?(?:blockquote|div|p|br|table|tr)\b[^>]*>/g, '\n').replace(/<[^>]*>/g, '')
    .replace(/&lt;/g, '<').replace(/&gt;/g, '>').replace(/&quot;/g, '"').replace(/&#39;/g, "'").replace(/&amp;/g, '&');
}

describe('fidelity (class 7): plain-text mail keeps its shape', () => {
  it('keeps the indentation, aligned lists and blank lines of a Mailman digest, with its links', async () => {
    const r = await processFixture('real-mailman-digest.eml');
    assert.match(r.html, /white-space: pre-wrap/);
    const shown = shownText(r.html);
    assert.ok(shown.includes("Today's Topics:\n\n   1. testing #1 (Barry A. Warsaw)\n   2. testing #2 (Barry A. Warsaw)\n"), shown);
    assert.ok(shown.includes('Send Ppp mailing list submissions to\n\tppp@zzz.org\n\nTo subscribe'), 'tab indentation and blank lines kept');
    assert.ok(r.html.includes('<a href="http://www.zzz.org/mailman/listinfo/ppp" target="_blank" rel="noopener noreferrer nofollow">'), 'URLs are links');
    assert.ok(!r.html.includes('<p>'), 'no paragraphs invented');
    assert.deepEqual(unsafeConstructs(r.html), []);
  });

  it('sets off quoted lines, links only http(s), mailto and www, and escapes everything else', () => {
    const html = textToHtml('Hi <b>all</b> & co,\n\n> quoted https://example.com/a_(b).\n> > deeper\nback\njavascript:alert(1) data:text/html,x mailto:x@example.org www.example.net/p?q=1&r=2.');
    assert.ok(html.includes('Hi &lt;b&gt;all&lt;/b&gt; &amp; co,'), html);
    assert.equal((html.match(/<blockquote /g) ?? []).length, 2);
    assert.ok(html.includes('<a href="https://example.com/a_(b)" '), html);
    assert.ok(html.includes('<a href="mailto:x@example.org" '), html);
    assert.ok(html.includes('<a href="http://www.example.net/p?q=1&amp;r=2" '), html);
    assert.ok(!/href="(?:javascript|data):/.test(html), html);
    assert.equal((html.match(/<a /g) ?? []).length, 3);
    assert.equal(shownText(html).replace(/\n+/g, '\n').trim(), 'Hi <b>all</b> & co,\n> quoted https://example.com/a_(b).\n> > deeper\nback\njavascript:alert(1) data:text/html,x mailto:x@example.org www.example.net/p?q=1&r=2.');
    assert.deepEqual(unsafeConstructs(html), []);
  });

  it('keeps a blank line before a quote visible', () => {
    // A pre-wrap block ignores its last newline, so a block ending in a blank line needs one more.
    const html = textToHtml('text\n\n> quote');
    assert.ok(html.includes('>text\n\n<blockquote'), html);
  });
});

describe('fidelity (class 5): the right characters', () => {
  it('reads EUC-JP bytes labelled ISO-2022-JP as the Japanese they are', async () => {
    const r = await processFixture('real-charset-eucjp-labelled-iso2022jp.eml');
    assert.equal(r.subject, '日本語メールテスト (testing Japanese emails)');
    assert.match(r.text, /日本語が\n正常に\n送れているか\nテスト\./);
    assert.ok(!r.text.includes('\ufffd'));
  });

  it('falls back to Windows-1252 for 8-bit text without a charset, as mail clients do', async () => {
    const r = await processFixture('real-charset-undeclared-8bit.eml');
    assert.ok(r.html.includes('—'), r.html);
    assert.ok(!(r.html + r.text).includes('\ufffd'));
  });

  it('takes 8-bit text without a charset as UTF-8 when it is valid UTF-8', async () => {
    const raw = Buffer.from('Subject: x\r\nContent-Type: text/plain\r\nContent-Transfer-Encoding: 8bit\r\n\r\nGrüße aus Köln\r\n', 'utf8');
    const r = await processMessage(raw, OPTIONS);
    assert.equal(r.text.trimEnd(), 'Grüße aus Köln');
  });

  it('does not decode a list footer appended after a base64 body into binary garbage', async () => {
    // The footer of the Mailman digest above, appended the way Mailman appends it to a base64 body.
    const body = Buffer.from('Grüße aus Köln, der Newsletter.\n').toString('base64');
    const footer = '_______________________________________________\r\nPpp mailing list\r\nPpp@zzz.org\r\nhttp://www.zzz.org/mailman/listinfo/ppp\r\n';
    const raw = Buffer.from(`Subject: x\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: base64\r\n\r\n${body}\r\n${footer}`);
    const r = await processMessage(raw, OPTIONS);
    assert.match(r.text, /^Grüße aus Köln, der Newsletter\.\n+_{47}\nPpp mailing list\nPpp@zzz\.org\nhttp:\/\/www\.zzz\.org\/mailman\/listinfo\/ppp$/);
  });
});

describe('fidelity (class 6): broken MIME', () => {
  it('recovers the parts of a multipart message whose boundary lines lack their leading --', async () => {
    const r = await processFixture('real-broken-boundary-dashes.eml');
    assert.equal(r.note, null);
    assert.match(r.html, /<p>Dear Sir<\/p>/);
    assert.match(r.html, /The footer/);
    for (const raw of ['Content-Type', 'Content-Transfer-Encoding', 'NextPart', '=3D']) assert.ok(!r.html.includes(raw), `${raw} in ${r.html}`);
  });
});

describe('fidelity (class 8): forwarded and nested messages', () => {
  it('shows each message of a MIME digest with its From/Date/Subject block', async () => {
    const r = await processFixture('real-mailman-digest.eml');
    const shown = shownText(r.html);
    for (const n of [1, 3, 4, 5]) assert.ok(shown.includes(`Subject: [Ppp] testing #${n}\n`), `message ${n} in ${shown}`);
    assert.equal((shown.match(/^From: "Barry A\. Warsaw" <barry@digicool\.com>$/gm) ?? []).length, 5);
    assert.equal((shown.match(/^Date: .*2001/gm) ?? []).length, 5);
    assert.ok(!shown.includes('Message: 1'), 'the digest separators are headers, not text');
  });
});
