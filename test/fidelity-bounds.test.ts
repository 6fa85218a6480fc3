/**
 * Fidelity code that reads sender markup runs in time linear in its input (security review 9,
 * findings 1–4). Each case below used to take minutes on the input it is given here; the
 * generous per-test timeout only keeps a regression from hanging the run. No time is asserted
 * (bench/fidelity-bounds.ts measures it): each test checks that the output is right.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { parseMessage } from '../src/mail/parse.js';
import { boundMarkup, HTML_BOUNDS, senderDoctype } from '../src/mail/sanitize.js';
import { linkify } from '../src/mail/text-html.js';
import { bodyDocument, pageBackground } from '../src/web/presenters.js';

const LONG = { timeout: 60_000 };

describe('page background of the body frame (finding 1)', () => {
  it('a colour followed by a long run of spaces and a word is dropped, not backtracked over', LONG, () => {
    assert.equal(pageBackground(`background-color: red${' '.repeat(2_000_000)}x`), '');
    assert.equal(pageBackground(`background-color: red${' '.repeat(2_000_000)}!important; background-image: url(https://cdn.example.com/bg.png)`),
      'background-color:red;background-image:url(https://cdn.example.com/bg.png)');
  });

  it('a shorthand of many unclosed rgb( is read once', LONG, () => {
    assert.equal(pageBackground(`background: ${'rgb( '.repeat(400_000)}`), '');
    assert.equal(pageBackground(`background: ${'hsla(1 '.repeat(400_000)} #123`), 'background-color:#123');
  });

  it('a colour with a long run of spaces inside it is dropped', LONG, () => {
    assert.equal(pageBackground(`background: rgb(1${' '.repeat(1_000_000)}2 3)`), '');
  });

  it('the body document of such a wrapper carries no page background', LONG, () => {
    const body = `<div data-fm-body style="background-color: red${' '.repeat(1_000_000)}x"><p>hi</p></div>`;
    const doc = bodyDocument(body);
    assert.ok(doc.startsWith('<!doctype html><html><head>'));
    assert.ok(!doc.includes('<style>html{'));
    const plain = bodyDocument('<div data-fm-body style="background-color: #222222"><p>hi</p></div>');
    assert.ok(plain.includes('<style>html{background-color:#222222}</style>'));
  });
});

describe('the sender doctype (finding 2)', () => {
  it('many empty comments before no doctype: none, without backtracking over them', LONG, () => {
    assert.equal(senderDoctype('<!---->'.repeat(40) + 'x'), '');
    assert.equal(senderDoctype('<!---->'.repeat(200_000) + '<p>x'), '');
  });

  it('a doctype after many comments and spaces is found', LONG, () => {
    assert.equal(senderDoctype('\ufeff' + '<!-- c -->\n'.repeat(200_000) + '<!DOCTYPE html><p>x'), 'html');
    assert.equal(senderDoctype('<!---->'.repeat(40) + '<!doctype html PUBLIC "-//W3C//DTD XHTML 1.0 Transitional//EN">'),
      'html PUBLIC "-//W3C//DTD XHTML 1.0 Transitional//EN"');
  });

  it('a doctype with a long run of spaces is read once', LONG, () => {
    assert.equal(senderDoctype('<!doctype a' + ' '.repeat(1_000_000) + 'b'), '');
    assert.equal(senderDoctype('<!doctype html' + ' '.repeat(1_000_000) + '>'), 'html');
    assert.equal(senderDoctype('<!doctype a' + ' '.repeat(1_000_000) + 'b>'), 'html');
  });

  it('a comment ends at its first -->, as in a browser', () => {
    assert.equal(senderDoctype('<!-- a --> b --><!doctype html>'), '');
    assert.equal(senderDoctype('<!-- unclosed <!doctype html>'), '');
    assert.equal(senderDoctype('<!doctype>'), '');
  });
});

describe('URLs in plain text (finding 3)', () => {
  it('URLs ending in thousands of unmatched closing brackets are trimmed in one pass each', LONG, () => {
    const n = 2000;
    const html = linkify(('http://a' + ')'.repeat(4092) + ' ').repeat(n));
    assert.equal(html.split('<a href="http://a" ').length - 1, n);
    assert.equal(html.split('>http://a</a>' + ')'.repeat(4092) + ' ').length - 1, n);
  });

  it('balanced brackets stay in the link, unbalanced ones and punctuation do not', () => {
    assert.equal(linkify('see (https://en.wikipedia.org/wiki/Foo_(bar)).'),
      'see (<a href="https://en.wikipedia.org/wiki/Foo_(bar)" target="_blank" rel="noopener noreferrer nofollow">https://en.wikipedia.org/wiki/Foo_(bar)</a>).');
  });
});

describe('doctypes and forwarded-header tables in bulk (finding 4)', () => {
  it('many doctypes after many blank comments: the first doctype is kept, each output entry looked at once', LONG, () => {
    const k = 200_000;
    const r = boundMarkup(' <!---->'.repeat(k) + '<!doctype a>'.repeat(k) + '<style/>', HTML_BOUNDS);
    assert.equal(r.selfClosedStyle, true);
    assert.equal(r.html, ' '.repeat(k) + '<!doctype a><style></style>');
  });

  it('a doctype after content is not written out again', () => {
    const r = boundMarkup('<p>x</p><!doctype html><style/>', HTML_BOUNDS);
    assert.equal(r.html, '<p>x</p><style></style>');
  });

  const html = (body: string) => Buffer.from('From: a@example.com\r\nTo: b@example.com\r\nSubject: t\r\n'
    + 'Content-Type: text/html; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n' + body + '\r\n');

  it('many mailparser header tables without their end are left as they are, found by one search', LONG, async () => {
    const n = 150_000;
    const parsed = await parseMessage(html('<table class="mp_head"><td></tr>'.repeat(n) + 'x'), { maxPartBytes: 25 * 1024 * 1024 });
    assert.equal(parsed.html.split('<table class="mp_head"><td></tr>').length - 1, n);
  });

  it('many mailparser header tables with their end are each repaired', LONG, async () => {
    const n = 100_000;
    const parsed = await parseMessage(html('<table class="mp_head"><tr><td>a<td></tr><table>x'.repeat(n)), { maxPartBytes: 25 * 1024 * 1024 });
    assert.equal(parsed.html.split('<table class="mp_head"><tr><td>a</td></tr></table>x').length - 1, n);
  });
});
