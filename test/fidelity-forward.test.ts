/**
 * Forwarded and nested messages (issue 9, class 8), as a reader checks them: every forwarded
 * message, inline or attached, nested or not, shows its From/Date/Subject block in order and
 * its own body with its own styling (read in Chromium), an attached one stays downloadable,
 * and the feed's address in forwarded headers is still redacted. Fixtures: real public mail
 * (see test/fixtures/README.md).
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { simpleParser } from 'mailparser';
import { type Browser, type Frame } from 'playwright-core';
import { launchChromium } from './support/browser.js';
import { scopeCss } from '../src/mail/forwarded.js';
import { processMessage, redactForRecipients, type ProcessedMessage, type ProcessOptions } from '../src/mail/process.js';
import { createFeed, fixture, sendRaw, startTestServer, waitForEntries, type FeedItemView, type TestServer } from './support/helpers.js';
import { unsafeConstructs } from './support/html-safety.js';

const OPTIONS: ProcessOptions = { maxPartBytes: 10_000_000, keepTrackingPixels: false };
/** The made-up inbox the fidelity templates are addressed to (test/fixtures/README.md). */
const INBOX = { inboxToken: 'k7q2m4xap3w5tgr6n2b4v7c3zd', feedToken: 'f3edtokqz5ya2wm4nrx6bc7ejh' };

function processFixture(name: string): Promise<ProcessedMessage> {
  return processMessage(fixture(name), OPTIONS);
}

/** The text a reader sees: blocks and table rows on lines of their own, cells apart, tags dropped, entities decoded. */
function shownText(html: string): string {
  return html.replace(/<style>[\s\S]*?<\/style>/g, '').replace(/<\/?(?:blockquote|div|p|br|table|tr)\b[^>]*>/g, '\n').replace(/<\/td>/g, ' ').replace(/<[^>]*>/g, '')
    .replace(/&lt;/g, '<').replace(/&gt;/g, '>').replace(/&quot;/g, '"').replace(/&#39;/g, "'").replace(/&amp;/g, '&');
}

/** Indexes of each needle in `text`, searched one after the other: -1 once one is missing or out of order. */
function inOrder(text: string, needles: string[]): number[] {
  let from = 0;
  return needles.map((n) => {
    const at = from < 0 ? -1 : text.indexOf(n, from);
    from = at < 0 ? -1 : at + n.length;
    return at;
  });
}

describe('fidelity (class 8): forwarded messages, inline and attached, nested', () => {
  it('shows a message forwarded as an attachment three levels deep, each with its header block, in order (ddeboer/imap)', async () => {
    const r = await processFixture('real-forward-nested-attachments.eml');
    const shown = shownText(r.html);
    const order = inOrder(shown, [
      '3-third-content',
      'From: test@example.com\nSubject: 2-second-subject\n', '2-second-content',
      'From: test@example.com\nSubject: 1-first-subject\n', '1-first-content',
      'From: test@example.com\nSubject: 0-zero-subject\n', '0-zero-content',
    ]);
    assert.ok(order.every((i) => i >= 0), `${JSON.stringify(order)} in ${shown}`);
    assert.match(r.text, /2-second-subject[\s\S]*1-first-subject[\s\S]*0-zero-content/);
    // The attached message is still offered as the .eml it was.
    const eml = r.parts.filter((p) => p.contentType === 'message/rfc822');
    assert.deepEqual(eml.map((p) => [p.filename, p.inline]), [['2-second-email.eml', false]]);
    const inner = await simpleParser(eml[0]!.content!);
    assert.equal(inner.subject, '2-second-subject');
    assert.deepEqual(unsafeConstructs(r.html), []);
  });

  it('shows both messages of a twice-forwarded HTML newsletter (inline, then attached), From/Date/Subject in order', async () => {
    const r = await processFixture('real-forward-twice-styled.eml');
    const heads = [...r.html.matchAll(/<div data-fm-forward-head="" [^>]*>([\s\S]*?)<\/table><\/div>/g)].map((m) => shownText(m[1]!));
    assert.equal(heads.length, 2, r.html.slice(0, 3000));
    const expected = [
      ['From: Blueprints <news@blueprints.example>', 'Date: Tue, 01 Dec 2026 09:00:00 GMT', 'Subject: Designing Your Template', 'To: k7q2m4xap3w5tgr6n2b4v7c3zd@feeds.example.net'],
      ['From: Cerberus <hello@cerberus.example>', 'Date: Tue, 01 Dec 2026 09:00:00 GMT', 'Subject: Praesent laoreet malesuada cursus', 'To: k7q2m4xap3w5tgr6n2b4v7c3zd@feeds.example.net'],
    ];
    heads.forEach((head, i) => {
      const rows = head.split('\n').map((l) => l.replace(/:\s+/, ': ').trim()).filter(Boolean);
      assert.deepEqual(rows, expected[i], head);
    });
    const shown = shownText(r.html);
    assert.ok(inOrder(shown, ['This is the message body.', 'Subject: Designing Your Template', 'Use this area to offer a short teaser', 'Subject: Praesent laoreet malesuada cursus', 'Praesent laoreet malesuada cursus.'])
      .every((i) => i >= 0), shown);
    // Only the outer message decides the document's doctype and margins; each inner body is a styled wrapper of its own.
    assert.ok(!r.html.includes('<div data-fm-body'), 'the outer message is plain text: no document body wrapper');
    assert.equal((r.html.match(/<div data-fm-message-body[ >]/g) ?? []).length, 2);
    assert.match(r.html, /<div data-fm-message-body [^>]*style="background-color: #222222; margin: 0; mso-line-height-rule: exactly"/);
    // The attached message stays downloadable, and its background image is shown from its own related part.
    assert.deepEqual(r.parts.filter((p) => !p.inline).map((p) => [p.filename, p.contentType]), [['Praesent laoreet malesuada cursus.eml', 'message/rfc822']]);
    assert.deepEqual(r.parts.filter((p) => p.inline).map((p) => [p.filename, p.contentId]), [['bg-680x180.png', 'bg-680x180@cerberus']]);
    assert.deepEqual(unsafeConstructs(r.html), []);
  });

  it('redacts the feed\'s address in the header blocks of forwarded messages', async () => {
    const r = redactForRecipients(await processFixture('real-forward-twice-styled.eml'), [INBOX]);
    for (const field of [r.html, r.text]) assert.ok(!field.includes(INBOX.inboxToken), 'the inbox address is gone');
    assert.equal((r.html.match(/To:<\/td><td class="mp_head_value">/g) ?? []).length, 2, 'the To rows are still shown');
  });

  it('scopes an inner message\'s style sheet to it: selectors prefixed, html/body mapped, @media kept, nothing escapes', () => {
    const scope = '[data-fm-message="3"]';
    const body = `${scope} [data-fm-message-body]`;
    assert.equal(scopeCss('body{margin:0} html, body{height:100%} #bodyTable td.x, p{color:red}', scope),
      `${body}{margin:0}${scope}, ${body}{height:100%}${scope} #bodyTable td.x, ${scope} p{color:red}`);
    assert.equal(scopeCss('@media only screen and (max-width:480px){body.a{x:1} .b{y:2}} @font-face{font-family:F}', scope),
      `@media only screen and (max-width:480px){${body}.a{x:1}${scope} .b{y:2}}@font-face{font-family:F}`);
    assert.equal(scopeCss('a[title="}{"]{c:1} html > body .c{d:2}', scope), `${scope} a[title="}{"]{c:1}${body} .c{d:2}`);
    // Stray closing braces cannot end the scope early, and the rule after them is scoped too.
    assert.equal(scopeCss('a{}}} body{color:red}', scope), `${scope} a{}${body}{color:red}`);
    // Grouping blocks nested without end are dropped past a small depth, in time linear in their length.
    const deep = `${'@media all{'.repeat(100_000)}p{x:1}${'}'.repeat(100_000)}q{y:2}`;
    const out = scopeCss(deep, scope);
    assert.ok(!out.includes('p{x:1}') && out.endsWith(`${scope} q{y:2}`), out.slice(-200));
  });
});

describe('fidelity (class 8): a twice-forwarded newsletter in Chromium', { timeout: 120_000 }, () => {
  let server: TestServer;
  let browser: Browser;
  let entry: FeedItemView;
  let frame: Frame;

  before(async () => {
    server = await startTestServer();
    const feed = await createFeed(server.base, 'forwards');
    const info = await sendRaw(server.smtpPort, feed.address, fixture('real-forward-twice-styled.eml'));
    assert.match(info.response, /^250 /);
    [entry] = (await waitForEntries(feed.feeds.json, 'json', 1, 10_000)) as [FeedItemView];
    browser = await launchChromium();
    const context = await browser.newContext({ viewport: { width: 1280, height: 900 }, serviceWorkers: 'block' });
    const origin = new URL(server.base).origin;
    await context.route('**/*', async (route) => {
      if (new URL(route.request().url()).origin === origin) await route.continue();
      else await route.abort('blockedbyclient');
    });
    const page = await context.newPage();
    await page.goto(entry.link, { waitUntil: 'load' });
    const body = page.frames().find((f) => f !== page.mainFrame() && f.url().endsWith('/body'));
    assert.ok(body, 'the entry page embeds its body');
    await body.waitForLoadState('load');
    frame = body;
  });

  after(async () => {
    await browser?.close();
    await server?.stop();
  });

  const css = (selector: string, prop: string) =>
    frame.evaluate(([s, p]) => getComputedStyle(document.querySelector(s!)!).getPropertyValue(p!), [selector, prop]);

  it('shows each forwarded message\'s header block, in order', async () => {
    const heads = await frame.evaluate(() => [...document.querySelectorAll('[data-fm-forward-head]')].map((h) => (h as HTMLElement).innerText));
    assert.equal(heads.length, 2);
    for (const [i, subject] of ['Designing Your Template', 'Praesent laoreet malesuada cursus'].entries()) {
      const at = inOrder(heads[i]!, ['From:', 'Date:', 'Subject:', subject]);
      assert.ok(at.every((n) => n >= 0), heads[i]);
    }
  });

  it('applies each inner message\'s own body style and style sheet to it, and to nothing else', async () => {
    // Mailchimp's `body, #bodyTable { background-color: #DEE0E2 }`, scoped to its own body.
    assert.equal(await css('[data-fm-message="1"] [data-fm-message-body]', 'background-color'), 'rgb(222, 224, 226)');
    assert.equal(await css('[data-fm-message="1"] #templateContainer', 'width'), '600px');
    assert.equal(await css('[data-fm-message="1"] #templateBody', 'background-color'), 'rgb(244, 244, 244)');
    // Cerberus's <body bgcolor="#222222">, attached to the forwarded message.
    assert.equal(await css('[data-fm-message="2"] [data-fm-message-body]', 'background-color'), 'rgb(34, 34, 34)');
    // Neither sheet restyles the document or the other message.
    assert.equal(await css('body', 'background-color'), 'rgba(0, 0, 0, 0)');
    assert.notEqual(await css('[data-fm-message="2"] [data-fm-message-body]', 'height'), await frame.evaluate(() => `${document.documentElement.clientHeight}px`));
    assert.equal(await css('[data-fm-message="2"] table', 'background-color'), 'rgba(0, 0, 0, 0)', '#bodyTable rules stay in message 1');
  });

  it('shows the attached message\'s background image from its own part, and keeps the .eml downloadable', async () => {
    const background = await frame.evaluate(() => document.querySelector('[data-fm-message="2"] td[background]')?.getAttribute('background'));
    assert.match(background ?? '', /\/parts\/\d+\/bg-680x180\.png$/);
    const eml = entry.enclosures.find((e) => e.type === 'message/rfc822');
    assert.ok(eml, 'the attached message is an enclosure');
    const res = await fetch(eml.url);
    assert.equal(res.status, 200);
    const forwarded = await simpleParser(Buffer.from(await res.arrayBuffer()));
    assert.equal(forwarded.subject, 'Praesent laoreet malesuada cursus');
  });
});
