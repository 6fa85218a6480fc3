/**
 * Newsletters look the way their senders meant (issue 9, classes 1-4, 9, 10 and phone width).
 * Real public templates (test/fixtures/fidelity-*.eml, sources and licences in the fixtures
 * README) are delivered and their entry body is read in Chromium, for what a reader would
 * notice: the page colour of <body>, template CSS keyed to ids, the first rule of a
 * <style><!-- --> block, @media rules on a phone, table background images, quirks mode, and
 * a 600 px layout on a 390 px screen. The sanitizer's part (spacers) is checked directly.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { type Browser, type BrowserContext, type Frame } from 'playwright-core';
import { launchChromium } from './support/browser.js';
import { sanitizeNewsletterHtml } from '../src/mail/sanitize.js';
import { htmlForFeedReaders, pageBackground } from '../src/web/presenters.js';
import { createFeed, fixture, sendRaw, startTestServer, waitForEntries, type FeedItemView, type TestServer } from './support/helpers.js';

const PHONE = { width: 390, height: 844 };
const DESKTOP = { width: 1280, height: 900 };
const STRIP = { keepTrackingPixels: false };

describe('fidelity: spacers are layout, trackers are not (class 9)', () => {
  const srcs = (html: string) => [...html.matchAll(/<img\b[^>]*\bsrc="([^"]*)"[^>]*>/g)].map((m) => m[0]);

  it('keeps spacer images whose markup gives them a real size, even when named like a tracker', () => {
    const html = '<table><tr><td><img src="https://cdn.example.com/images/spacer.gif" width="20" height="1" alt=""></td>'
      + '<td><img src="https://cdn.example.com/img/pixel.gif" width="600" height="1" alt="" style="display:block"></td>'
      + '<td><img src="https://cdn.example.com/img/open.gif" height="30" width="1" alt=""></td></tr></table>';
    const out = sanitizeNewsletterHtml(html, STRIP);
    assert.equal(srcs(out).length, 3, out);
    assert.match(out, /width="20" height="1"/);
    assert.match(out, /width="600" height="1"/);
  });

  it('still removes 1x1, hidden, unsized tracker-path and known-host images', () => {
    for (const img of [
      '<img src="https://cdn.example.com/spacer.gif" width="1" height="1">',
      '<img src="https://cdn.example.com/a.gif" style="display:none" width="600" height="1">',
      '<img src="https://t.example.com/pixel.gif">',
      '<img src="https://list.us1.list-manage.com/track/open.php?u=1" width="600" height="1">',
      '<img src="https://x.hubspotemail.net/e/o/abc" width="300" height="2">',
    ]) {
      assert.deepEqual(srcs(sanitizeNewsletterHtml(`<p>x</p>${img}`, STRIP)), [], img);
    }
  });
});

describe('fidelity: an image keeps the srcset a mail client chooses from, validated', () => {
  const substack = 'https://substackcdn.com/image/fetch/w_135,c_limit,f_auto,q_auto:good/https%3A%2F%2Fsubstack.com%2Fimg%2Femail%2Fpublish-button.png';

  it('keeps a srcset of absolute https candidates with width or density descriptors, commas inside URLs included', () => {
    const srcset = `${substack} 1x, ${substack.replace('w_135', 'w_270')} 2x`;
    const out = sanitizeNewsletterHtml(`<img src="${substack.replace('w_135', 'w_270')}" srcset="${srcset}" width="135" alt="Start writing">`, STRIP);
    assert.ok(out.includes(`srcset="${srcset}"`), out);
    assert.ok(sanitizeNewsletterHtml('<img src="https://a.example/x.png" srcset="https://a.example/x.png 300w, https://a.example/y.png 600w" width="300">', STRIP).includes('srcset='));
  });

  it('drops a srcset with any other scheme, a relative or tracker URL, or odd descriptors, and keeps the image by its src', () => {
    for (const srcset of [
      'javascript:alert(1) 1x',
      'http://a.example/x.png 1x',
      'https://a.example/x.png 1x, data:image/png;base64,AAAA 2x',
      '/manage/abc/delete 1x',
      'cid:part1 1x',
      'https://list.us1.list-manage.com/track/open.php?u=1 1x',
      'https://a.example/x.png 1x onerror=alert(1)',
      'https://a.example/x.png 1x,https://a.example/y.png 2x',
    ]) {
      const out = sanitizeNewsletterHtml(`<img src="https://a.example/x.png" srcset="${srcset}" width="300">`, STRIP);
      assert.doesNotMatch(out, /srcset/, srcset);
      assert.match(out, /<img src="https:\/\/a\.example\/x\.png"/, srcset);
    }
  });

  it('leaves srcset out of feed documents, where readers show src', () => {
    const html = '<p><img src="https://a.example/x.png" srcset="https://a.example/x.png 1x, https://a.example/y.png 2x" width="300"></p>';
    assert.doesNotMatch(htmlForFeedReaders(sanitizeNewsletterHtml(html, STRIP)), /srcset/);
  });
});

describe('fidelity: the page background of <body> reaches the frame document, validated (class 1)', () => {
  it('carries plain colours and image URLs, the last declaration winning', () => {
    assert.equal(pageBackground('background-color: #222222'), 'background-color:#222222');
    assert.equal(pageBackground('background-color: red; background: #fff url(https://cdn.example.com/bg.png) repeat-x top'),
      'background-color:#fff;background-image:url(https://cdn.example.com/bg.png)');
    assert.equal(pageBackground('background:rgb(1, 2, 3) !important'), 'background-color:rgb(1, 2, 3)');
    assert.equal(pageBackground('background-color: #111; background-color: transparent'), 'background-color:transparent');
    assert.equal(pageBackground('color: red; margin: 0'), '');
  });

  it('carries nothing that could leave the declaration or load from elsewhere', () => {
    for (const style of [
      'background-color: red}html{display:none',
      'background: url(http://tracker.example.com/p.gif)',
      'background-image: url(javascript:alert(1))',
      'background-color: expression(alert(1))',
      'background: url(&quot;https://x.example.com/a.png&quot;)&lt;/style&gt;',
      'background-color: #fff</style><script>alert(1)</script>',
      'background-image: url(data:image/png;base64,AAAA)',
    ]) {
      const out = pageBackground(style);
      assert.doesNotMatch(out, /[<>{}\\]|javascript|expression|http:|data:/i, `${style} -> ${out}`);
    }
  });
});

describe('fidelity: real templates in Chromium', { timeout: 180_000 }, () => {
  let server: TestServer;
  let browser: Browser;
  const contexts: BrowserContext[] = [];
  const entries = new Map<string, FeedItemView>();

  before(async () => {
    server = await startTestServer();
    browser = await launchChromium();
    for (const name of ['fidelity-cerberus-hybrid.eml', 'fidelity-mailchimp-boxed.eml', 'fidelity-bewelcome-style-comment.eml', 'fidelity-shopizer-quirks.eml']) {
      const feed = await createFeed(server.base, name);
      const info = await sendRaw(server.smtpPort, feed.address, fixture(name));
      assert.match(info.response, /^250 /);
      const [entry] = await waitForEntries(feed.feeds.json, 'json', 1, 10_000, name);
      entries.set(name, entry!);
    }
  });

  after(async () => {
    for (const c of contexts) await c.close().catch(() => undefined);
    await browser?.close();
    await server?.stop();
  });

  /** The entry page of a fixture at a viewport, and its body frame once loaded. Remote images are refused. */
  async function open(name: string, viewport = DESKTOP): Promise<{ frame: Frame; pageOverflow: () => Promise<number> }> {
    const context = await browser.newContext({ viewport, serviceWorkers: 'block' });
    contexts.push(context);
    const origin = new URL(server.base).origin;
    await context.route('**/*', async (route) => {
      if (new URL(route.request().url()).origin === origin) await route.continue();
      else await route.abort('blockedbyclient');
    });
    const page = await context.newPage();
    await page.goto(entries.get(name)!.link, { waitUntil: 'load' });
    const frame = page.frames().find((f) => f !== page.mainFrame() && f.url().endsWith('/body'));
    assert.ok(frame, 'the entry page embeds its body');
    await frame.waitForLoadState('load');
    return { frame, pageOverflow: () => page.evaluate(() => document.documentElement.scrollWidth - document.documentElement.clientWidth) };
  }

  const css = (frame: Frame, selector: string, prop: string) =>
    frame.evaluate(([s, p]) => getComputedStyle(document.querySelector(s!)!).getPropertyValue(p!), [selector, prop]);

  it('carries <body bgcolor> onto the wrapper that replaces <body> (class 1, Cerberus)', async () => {
    const { frame } = await open('fidelity-cerberus-hybrid.eml');
    assert.equal(await css(frame, '[data-fm-body]', 'background-color'), 'rgb(34, 34, 34)');
    assert.equal(await css(frame, '[data-fm-body]', 'margin-top'), '0px', 'the body\'s own style="margin: 0" is kept');
    // A mail client paints the body colour over the whole pane, below short content too.
    assert.equal(await css(frame, 'html', 'background-color'), 'rgb(34, 34, 34)');
  });

  it('resolves td background="cid:…" to the attached image and keeps bgcolor/valign (class 4, Cerberus)', async () => {
    const { frame } = await open('fidelity-cerberus-hybrid.eml');
    const cell = await frame.evaluate(() => {
      const td = document.querySelector('td[background]')!;
      return { attr: td.getAttribute('background'), image: getComputedStyle(td).backgroundImage, bg: getComputedStyle(td).backgroundColor, valign: td.getAttribute('valign') };
    });
    assert.match(cell.attr ?? '', /\/e\/[a-z2-7]{26}\/parts\/\d+\/bg-680x180\.png$/);
    assert.match(cell.image, /parts\/\d+\/bg-680x180\.png/);
    assert.equal(cell.bg, 'rgb(34, 34, 34)');
    assert.equal(cell.valign, 'middle');
    const loaded = await frame.evaluate(async (url) => {
      const img = new Image();
      img.src = url!;
      await img.decode();
      return img.naturalWidth;
    }, cell.attr);
    assert.equal(loaded, 16, 'the background image loads from the entry\'s part');
  });

  it('applies the @media rules of the template on a phone (Cerberus)', async () => {
    const { frame } = await open('fidelity-cerberus-hybrid.eml', PHONE);
    assert.equal(await css(frame, '.email-container p', 'font-size'), '17px');
  });

  it('keeps ids, so #bodyTable and #templateContainer CSS applies (class 2, Mailchimp)', async () => {
    const { frame } = await open('fidelity-mailchimp-boxed.eml');
    assert.equal(await css(frame, '#bodyTable', 'background-color'), 'rgb(222, 224, 226)');
    assert.equal(await css(frame, '#templateContainer', 'width'), '600px');
    assert.equal(await css(frame, '#templateBody', 'background-color'), 'rgb(244, 244, 244)');
    assert.equal(await css(frame, 'body', 'margin-left'), '0px', 'leftmargin="0" reaches the document\'s body');
    assert.equal(await frame.evaluate(() => document.compatMode), 'CSS1Compat', 'an XHTML Transitional doctype is not quirks mode');
  });

  it('fits a 600 px template on a 390 px phone through its own @media rules (Mailchimp)', async () => {
    const { frame, pageOverflow } = await open('fidelity-mailchimp-boxed.eml', PHONE);
    const fit = await frame.evaluate(() => ({
      container: document.getElementById('templateContainer')!.getBoundingClientRect().width,
      view: document.documentElement.clientWidth,
      preheader: getComputedStyle(document.getElementById('templatePreheader')!).display,
    }));
    assert.ok(fit.container <= fit.view, `container ${fit.container}px in a ${fit.view}px frame`);
    assert.equal(fit.preheader, 'none', '#templatePreheader{display:none !important} in @media applies');
    assert.ok(await pageOverflow() <= 0, 'the entry page does not scroll sideways');
  });

  it('keeps the first rule of <style><!-- … --></style> and the rest (class 3, BeWelcome)', async () => {
    const { frame } = await open('fidelity-bewelcome-style-comment.eml');
    assert.equal(await css(frame, 'blockquote', 'border-left-color'), 'rgb(243, 112, 0)', 'the first rule, right after <!--');
    assert.equal(await css(frame, 'blockquote', 'border-left-width'), '8px');
    assert.equal(await css(frame, '#message', 'background-color'), 'rgb(229, 229, 229)');
    assert.equal(await css(frame, '#footer', 'background-color'), 'rgb(243, 112, 0)', 'the last rule, just before -->');
  });

  it('renders a document without a doctype in quirks mode, as a mail client does (class 10, Shopizer)', async () => {
    const { frame } = await open('fidelity-shopizer-quirks.eml');
    assert.equal(await frame.evaluate(() => document.compatMode), 'BackCompat');
    assert.equal(await css(frame, '.holder', 'width'), '550px');
    assert.equal(await css(frame, 'body', 'text-align'), 'center', 'the body rule, first in its <style>, applies');
  });

  it('lets a layout wider than a phone scroll inside the frame instead of cutting it off (Shopizer, Cerberus)', async () => {
    for (const name of ['fidelity-shopizer-quirks.eml', 'fidelity-cerberus-hybrid.eml']) {
      const { frame, pageOverflow } = await open(name, PHONE);
      assert.ok(await pageOverflow() <= 0, `${name}: the entry page does not scroll sideways`);
      const reach = await frame.evaluate(() => {
        const root = document.scrollingElement!;
        const hidden = root.scrollWidth - root.clientWidth;
        root.scrollLeft = hidden;
        return { hidden, scrolled: root.scrollLeft };
      });
      // Everything wider than the frame can be scrolled to: nothing is cut off.
      assert.ok(reach.hidden <= 0 || reach.scrolled >= reach.hidden - 1, `${name}: ${JSON.stringify(reach)}`);
    }
  });
});
