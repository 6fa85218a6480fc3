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
