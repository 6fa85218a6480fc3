/**
 * What a real browser (Debian's Chromium) does with newsletter HTML. Hostile messages must
 * stay inert everywhere they are shown (entry page, the body on its own, the feed page, and
 * the feed's HTML loaded with no CSP at all); a rich newsletter must look right, with its
 * inline images and its PDF; our own pages must load their own stylesheet and script under
 * their CSP.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { type Browser, type BrowserContext, type Frame, type Page } from 'playwright-core';
import { launchChromium } from './support/browser.js';
import { createFeed, fixture, readFeed, sendRaw, startTestServer, type CreatedFeed, type FeedItemView, type TestServer, waitFor, waitForEntries } from './support/helpers.js';

const ATTACKER = 'attacker.invalid';
const HOSTILE = fs.readdirSync(new URL('./fixtures/', import.meta.url)).filter((f) => /^hostile-.*\.eml$/.test(f)).sort();
// Written where test output goes; the copies in docs/screenshots are updated by hand.
const SCREENSHOTS = fileURLToPath(new URL('../test-results/screenshots/', import.meta.url));
/** Long enough for a meta refresh, an onload or a timer to have fired had any survived. */
const SETTLE_MS = 600;
const STEP_TIMEOUT = 15_000;

/** What happened in one browser context while we looked at hostile content. */
interface Watch {
  dialogs: string[];
  attackerRequests: string[];
  popups: string[];
  navigations: string[];
  csp: string[];
  errors: string[];
}

interface Audit {
  scripts: string[];
  handlers: string[];
  badUrls: string[];
  embeds: string[];
  forms: string[];
  heads: string[];
  attackerRefs: string[];
}

/** Walks one document for anything that could run, load or navigate on its own. Runs in the page. */
function auditDocument(): Audit {
  const out: Audit = { scripts: [], handlers: [], badUrls: [], embeds: [], forms: [], heads: [], attackerRefs: [] };
  const urlAttrs = ['href', 'src', 'action', 'formaction', 'background', 'poster', 'cite', 'data', 'srcset', 'dynsrc', 'lowsrc', 'xlink:href', 'codebase'];
  for (const el of Array.from(document.querySelectorAll('*'))) {
    const tag = el.tagName.toLowerCase();
    if (tag === 'script') out.scripts.push(el.getAttribute('src') ?? `inline: ${(el.textContent ?? '').slice(0, 60)}`);
    if (['iframe', 'frame', 'frameset', 'object', 'embed', 'applet', 'portal', 'fencedframe'].includes(tag)) out.embeds.push(`${tag} ${el.getAttribute('src') ?? el.getAttribute('data') ?? ''}`);
    if (['form', 'input', 'button', 'textarea', 'select', 'isindex'].includes(tag)) out.forms.push(tag);
    // The body document's own <base target="_blank"> has no href and is ours.
    if ((tag === 'base' && el.hasAttribute('href')) || tag === 'link' || (tag === 'meta' && el.hasAttribute('http-equiv'))) out.heads.push(el.outerHTML.slice(0, 120));
    for (const attr of Array.from(el.attributes)) {
      const name = attr.name.toLowerCase();
      if (name.startsWith('on')) out.handlers.push(`${tag}.${name}`);
      // CSS may keep a neutralized declaration that still names the host (`blocked: url(...)`); whether
      // any CSS loads from it is what the request log checks.
      if (name !== 'style' && attr.value.includes('attacker.invalid')) out.attackerRefs.push(`${tag}.${name}=${attr.value}`);
      if (name === 'style' && /expression\s*\(|javascript:|vbscript:|@import|behavior|binding/i.test(attr.value)) out.badUrls.push(`${tag}.style=${attr.value}`);
      if (!urlAttrs.includes(name)) continue;
      // How the URL parser reads it: tabs and newlines anywhere and leading controls or spaces do not count.
      const v = attr.value.replace(/[\t\n\r]/g, '').replace(/^[\u0000-\u0020]+/, '').toLowerCase();
      const scheme = /^([a-z][a-z0-9+.-]*):/.exec(v)?.[1];
      const rasterData = tag === 'img' && name === 'src' && /^data:image\/(png|gif|jpe?g|webp);/.test(v);
      if (scheme && !['http', 'https', 'mailto', 'tel'].includes(scheme) && !rasterData) out.badUrls.push(`${tag}.${name}=${attr.value}`);
    }
  }
  return out;
}

/** Resolves to the value, or rejects after `ms` with a message naming what hung. */
function bounded<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  return Promise.race([
    p.finally(() => clearTimeout(timer)),
    new Promise<T>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms: ${what}`)), ms);
    }),
  ]);
}

describe('in a real browser (Chromium)', { timeout: 240_000 }, () => {
  let server: TestServer;
  let browser: Browser;
  const contexts: BrowserContext[] = [];
  let origin: string;

  before(async () => {
    server = await startTestServer();
    origin = new URL(server.base).origin;
    // launch() gives every run a fresh temporary profile of its own.
    browser = await launchChromium();
  });

  after(async () => {
    for (const c of contexts) await c.close().catch(() => undefined);
    await browser?.close();
    await server?.stop();
  });

  /** A fresh context that records everything we assert on and keeps all traffic on 127.0.0.1. */
  async function newWatchedPage(viewport = { width: 1280, height: 900 }): Promise<{ context: BrowserContext; page: Page; watch: Watch }> {
    const context = await browser.newContext({ viewport, serviceWorkers: 'block' });
    contexts.push(context);
    context.setDefaultTimeout(STEP_TIMEOUT);
    context.setDefaultNavigationTimeout(STEP_TIMEOUT);
    const watch: Watch = { dialogs: [], attackerRequests: [], popups: [], navigations: [], csp: [], errors: [] };
    context.on('request', (r) => {
      if (r.url().includes(ATTACKER)) watch.attackerRequests.push(r.url());
    });
    // Nothing leaves the machine: requests to anything but our server are recorded above and refused here.
    await context.route('**/*', async (route) => {
      const url = new URL(route.request().url());
      if (url.origin === origin) await route.continue();
      else await route.abort('blockedbyclient');
    });
    context.on('dialog', (d) => {
      watch.dialogs.push(`${d.type()}: ${d.message()}`);
      d.dismiss().catch(() => undefined);
    });
    const page = await context.newPage();
    context.on('page', (p) => watch.popups.push(p.url()));
    page.on('framenavigated', (f) => watch.navigations.push(f.url()));
    page.on('console', (m) => {
      if (m.text().includes('Content Security Policy')) watch.csp.push(m.text());
    });
    page.on('pageerror', (e) => watch.errors.push(String(e)));
    return { context, page, watch };
  }

  async function pwnedIn(frame: Frame): Promise<unknown> {
    return bounded(frame.evaluate(() => (globalThis as { __pwned?: unknown }).__pwned), 5000, `evaluate in ${frame.url()}`);
  }

  /** The checks that make content inert: nothing ran, nothing loaded from the attacker, nothing navigated. */
  async function assertInert(page: Page, watch: Watch, label: string, allowedUrl: (u: string) => boolean): Promise<void> {
    await page.waitForTimeout(SETTLE_MS);
    assert.deepEqual(watch.dialogs, [], `${label}: no dialog opens`);
    assert.deepEqual(watch.attackerRequests, [], `${label}: nothing is requested from ${ATTACKER}`);
    assert.deepEqual(watch.popups, [], `${label}: no window opens`);
    const away = watch.navigations.filter((u) => !allowedUrl(u));
    assert.deepEqual(away, [], `${label}: no frame navigates away`);
    for (const frame of page.frames()) {
      assert.ok(allowedUrl(frame.url()), `${label}: frame at ${frame.url()}`);
      assert.equal(await pwnedIn(frame), undefined, `${label}: window.__pwned in ${frame.url()}`);
    }
  }

  function assertCleanDom(audit: Audit, label: string): void {
    assert.deepEqual(audit.scripts, [], `${label}: no script element`);
    assert.deepEqual(audit.handlers, [], `${label}: no event handler attribute`);
    assert.deepEqual(audit.badUrls, [], `${label}: no script, vbscript or data URL`);
    assert.deepEqual(audit.embeds, [], `${label}: no frame, object or embed`);
    assert.deepEqual(audit.forms, [], `${label}: no form controls`);
    assert.deepEqual(audit.heads, [], `${label}: no base, link or meta http-equiv`);
    assert.deepEqual(audit.attackerRefs, [], `${label}: no attribute or stylesheet points at ${ATTACKER}`);
  }

  function bodyFrame(page: Page): Frame {
    const frame = page.frames().find((f) => f !== page.mainFrame() && f.url().endsWith('/body'));
    assert.ok(frame, `the entry page embeds its body; frames: ${page.frames().map((f) => f.url()).join(', ')}`);
    return frame;
  }

  async function deliver(name: string): Promise<{ feed: CreatedFeed; entry: FeedItemView }> {
    const feed = await createFeed(server.base, name);
    const info = await sendRaw(server.smtpPort, feed.address, fixture(name));
    assert.match(info.response, /^250 /, `${name} is accepted`);
    const [entry] = await waitForEntries(feed.feeds.json, 'json', 1, 10_000, `the entry of ${name}`);
    return { feed, entry: entry! };
  }

  const ours = (u: string) => u.startsWith(`${origin}/`);
  const blank = (u: string) => u === 'about:blank';

  it('has hostile fixtures to test', () => {
    assert.ok(HOSTILE.length >= 4, `found ${HOSTILE.join(', ')}`);
  });

  for (const name of HOSTILE) {
    describe(name, () => {
      let feed: CreatedFeed;
      let entry: FeedItemView;
      before(async () => {
        ({ feed, entry } = await deliver(name));
      });

      it('is inert on the entry page and in its sandboxed body frame', async () => {
        const { page, watch } = await newWatchedPage();
        const res = await page.goto(entry.link, { waitUntil: 'load' });
        assert.equal(res?.status(), 200);
        const body = bodyFrame(page);
        await body.waitForLoadState('load');
        assert.ok(((await body.evaluate(() => document.body.innerText)) ?? '').trim().length > 0, 'the body frame shows the message');
        await assertInert(page, watch, `${name} entry page`, ours);
        assertCleanDom(await body.evaluate(auditDocument), `${name} body frame`);
        // Our page itself: only our own script and our own body frame.
        const top = await page.evaluate(auditDocument);
        assert.deepEqual(top.scripts, ['/static/copy.js', '/static/frame.js']);
        assert.deepEqual(top.handlers, []);
        assert.deepEqual(top.embeds, [`iframe ${entry.link}/body`]);
        assert.equal(await page.title(), entry.title || '(no subject)', 'the subject is text, not markup');
      });

      it('is inert when the body URL is opened on its own', async () => {
        const { page, watch } = await newWatchedPage();
        const res = await page.goto(`${entry.link}/body`, { waitUntil: 'load' });
        assert.equal(res?.status(), 200);
        await assertInert(page, watch, `${name} body`, ours);
        assertCleanDom(await page.evaluate(auditDocument), `${name} body`);
      });

      it('is inert on the feed page', async () => {
        const { page, watch } = await newWatchedPage();
        const res = await page.goto(feed.page, { waitUntil: 'load' });
        assert.equal(res?.status(), 200);
        await assertInert(page, watch, `${name} feed page`, ours);
        const subjects = await page.locator('ul.entries a.subject').allTextContents();
        assert.deepEqual(subjects, [entry.title || '(no subject)'], 'the subject shows as text');
        const top = await page.evaluate(auditDocument);
        // Our own scripts only: the copy buttons, and the live updates of the list (issue 11).
        assert.deepEqual(top.scripts, ['/static/copy.js', '/static/live.js']);
        assert.deepEqual(top.handlers, []);
        assert.deepEqual(top.embeds, []);
      });

      it('serves its parts as raster images or inert downloads', async () => {
        const urls = [...new Set([...entry.html.matchAll(/(?:src|href)="([^"]*\/parts\/\d+\/[^"]*)"/g)].map((m) => m[1]!.replace(/&amp;/g, '&')))];
        // The loop below proves nothing without parts: the fixture made for them must yield some.
        if (name === 'hostile-parts.eml') assert.ok(urls.length > 0, 'hostile-parts.eml has part URLs to check');
        const { page, watch } = await newWatchedPage();
        for (const url of urls) {
          const res = await fetch(url);
          assert.equal(res.status, 200, url);
          await res.arrayBuffer();
          const type = res.headers.get('content-type') ?? '';
          assert.match(res.headers.get('content-security-policy') ?? '', /sandbox/, url);
          if (/^image\/(png|gif|jpeg|webp)$/.test(type)) continue;
          assert.match(res.headers.get('content-disposition') ?? '', /^attachment;/, `${url} (${type}) is a download`);
          assert.doesNotMatch(type, /html/i, `${url} is never served as HTML`);
          // In the browser too: opening the part downloads it instead of showing it.
          const download = page.waitForEvent('download', { timeout: STEP_TIMEOUT });
          await page.goto(url).catch(() => undefined);
          await (await download).delete();
        }
        await assertInert(page, watch, `${name} parts`, (u) => ours(u) || blank(u));
      });

      it('is inert in the feed content, even with no CSP at all', async () => {
        const { page, watch } = await newWatchedPage();
        await page.setContent(`<!doctype html><html><head><meta charset="utf-8"><title>reader</title></head><body>${entry.html}</body></html>`, { waitUntil: 'load' });
        await assertInert(page, watch, `${name} feed content`, blank);
        assertCleanDom(await page.evaluate(auditDocument), `${name} feed content`);
        // Activate every link a reader could: none may run anything (web links only open a blocked window).
        const hrefs = await page.evaluate(() => Array.from(document.querySelectorAll('a[href], area[href]')).map((a) => (a as HTMLAnchorElement).protocol));
        assert.ok(hrefs.every((p) => ['http:', 'https:', 'mailto:', 'tel:'].includes(p)), `link schemes: ${hrefs.join(' ')}`);
        await page.evaluate(() => {
          for (const a of Array.from(document.querySelectorAll('a'))) {
            if (!/^(mailto|tel|https?):/i.test(a.getAttribute('href') ?? '')) a.click();
          }
        });
        await assertInert(page, watch, `${name} feed content after clicks`, blank);
      });
    });
  }

  describe('rich-newsletter.eml', () => {
    let feed: CreatedFeed;
    let entry: FeedItemView;
    before(async () => {
      ({ feed, entry } = await deliver('rich-newsletter.eml'));
    });

    /** Waits for every image in the frame to finish and reports each one's natural size. */
    async function imagesIn(frame: Frame): Promise<{ src: string; width: number; complete: boolean }[]> {
      await frame.waitForFunction(() => Array.from(document.images).every((i) => i.complete), undefined, { timeout: STEP_TIMEOUT });
      return frame.evaluate(() => Array.from(document.images).map((i) => ({ src: i.src, width: i.naturalWidth, complete: i.complete })));
    }

    it('shows both inline images inside the body frame', async () => {
      const { page, watch } = await newWatchedPage();
      await page.goto(entry.link, { waitUntil: 'load' });
      const body = bodyFrame(page);
      await body.waitForLoadState('load');
      const images = await imagesIn(body);
      assert.equal(images.length, 2, JSON.stringify(images));
      for (const img of images) {
        assert.match(img.src, /\/e\/[a-z2-7]{26}\/parts\/\d+\/(banner|marsh)\.png$/);
        assert.ok(img.width > 0, `${img.src} renders`);
      }
      assert.deepEqual(watch.csp, [], 'no CSP violation on the entry page or in its body');
      assert.deepEqual(watch.errors, []);
    });

    it("keeps the newsletter's own stylesheet: <style> in <head>, media queries included", async () => {
      // Nearly every newsletter puts its <style> in <head>; inline styles alone lose colours and the phone layout.
      const { page } = await newWatchedPage({ width: 390, height: 844 });
      await page.goto(entry.link, { waitUntil: 'load' });
      const body = bodyFrame(page);
      await body.waitForLoadState('load');
      const look = await body.evaluate(() => ({
        heading: getComputedStyle(document.querySelector('h1')!).color,
        column: getComputedStyle(document.querySelector('td.col')!).display,
      }));
      assert.equal(look.heading, 'rgb(31, 78, 121)', 'h1.title { color: #1f4e79 } from the <head> stylesheet applies');
      assert.equal(look.column, 'block', 'the @media (max-width: 620px) rule stacks the columns on a phone');
    });

    it('shows the inline images in the feed content too', async () => {
      const { page } = await newWatchedPage();
      await page.setContent(`<!doctype html><html><body>${entry.html}</body></html>`, { waitUntil: 'load' });
      const images = await imagesIn(page.mainFrame());
      assert.equal(images.length, 2);
      for (const img of images) assert.ok(img.width > 0, `${img.src} renders in a reader`);
    });

    it('lists the PDF as a download on the entry page and as an enclosure in every feed', async () => {
      const { page } = await newWatchedPage();
      await page.goto(entry.link, { waitUntil: 'load' });
      const link = page.locator('ul.attachments a[download]');
      assert.equal(await link.count(), 1);
      assert.equal(await link.textContent(), 'field-notes-map.pdf');
      const href = new URL((await link.getAttribute('href'))!, entry.link).href;
      assert.match(href, /\/parts\/\d+\/field-notes-map\.pdf$/);

      const [download] = await Promise.all([page.waitForEvent('download'), link.click()]);
      assert.equal(download.suggestedFilename(), 'field-notes-map.pdf');
      const saved = await download.path();
      assert.ok(fs.readFileSync(saved).subarray(0, 5).equals(Buffer.from('%PDF-')));
      await download.delete();

      const res = await fetch(href);
      assert.equal(res.status, 200);
      // Only raster images keep their type; everything else downloads as bytes (review F14).
      assert.equal(res.headers.get('content-type'), 'application/octet-stream');
      assert.match(res.headers.get('content-disposition') ?? '', /^attachment; filename="field-notes-map\.pdf"/);
      assert.ok(Buffer.from(await res.arrayBuffer()).subarray(0, 5).equals(Buffer.from('%PDF-')));

      for (const format of ['atom', 'rss', 'json'] as const) {
        const [item] = await readFeed(feed.feeds[format], format);
        assert.deepEqual(item!.enclosures, [{ url: href, type: 'application/pdf' }], `${format} enclosure`);
      }
    });

    it('looks right at phone and desktop widths (screenshots in test-results/screenshots)', async () => {
      fs.mkdirSync(SCREENSHOTS, { recursive: true });
      for (const [label, viewport] of [['phone', { width: 390, height: 844 }], ['desktop', { width: 1280, height: 900 }]] as const) {
        const { page } = await newWatchedPage(viewport);
        await page.goto(entry.link, { waitUntil: 'load' });
        const body = bodyFrame(page);
        await body.waitForLoadState('load');
        assert.ok((await imagesIn(body)).every((i) => i.width > 0));
        // The page must not scroll sideways on a phone.
        const overflow = await page.evaluate(() => document.documentElement.scrollWidth - document.documentElement.clientWidth);
        assert.ok(overflow <= 0, `${label}: page is ${overflow}px wider than the screen`);
        await page.screenshot({ path: path.join(SCREENSHOTS, `entry-${label}.png`), fullPage: true });
      }
    });
  });

  it('loads our own stylesheet and script under our CSP on every page, from the form to the entry', async () => {
    const { page, watch } = await newWatchedPage();
    const styled = () => page.evaluate(() => getComputedStyle(document.querySelector('header.site')!).borderBottomStyle === 'solid');

    await page.goto(`${server.base}/`, { waitUntil: 'load' });
    assert.ok(await styled(), 'home: style.css applies');

    await page.fill('input[name=title]', 'Browser feed');
    const [created] = await Promise.all([
      page.waitForResponse((r) => r.url() === `${server.base}/feeds` && r.request().method() === 'POST'),
      page.click('button[type=submit]'),
    ]);
    assert.equal(created.status(), 201);
    await page.waitForLoadState('load');
    assert.ok(await styled(), 'created page: style.css applies');
    // copy.js shows the copy buttons where the clipboard API exists (127.0.0.1 is a secure context).
    await page.waitForFunction(() => document.querySelectorAll('button.copy-button:not([hidden])').length > 0, undefined, { timeout: STEP_TIMEOUT });
    const address = await page.inputValue('#address');
    assert.match(address, /^[a-z2-7]{26}@localhost$/);

    await sendRaw(server.smtpPort, address, fixture('rich-newsletter.eml'));
    await page.click('text=Open the feed page');
    await page.waitForURL(/\/feeds\/[a-z2-7]{26}$/, { waitUntil: 'load' });
    assert.ok(await styled(), 'feed page: style.css applies');
    await waitFor(async () => {
      await page.reload({ waitUntil: 'load' });
      return (await page.locator('ul.entries a.subject').count()) > 0;
    }, 10_000, 'the entry on the feed page');

    await page.click('ul.entries a.subject');
    await page.waitForURL(/\/e\/[a-z2-7]{26}$/, { waitUntil: 'load' });
    assert.ok(await styled(), 'entry page: style.css applies');
    await bodyFrame(page).waitForLoadState('load');
    await page.waitForTimeout(SETTLE_MS);

    const ownViolations = watch.csp.filter((m) => m.includes(origin) || m.includes("'self'"));
    assert.deepEqual(ownViolations, [], 'no CSP violation for our own resources');
    assert.deepEqual(watch.csp, [], 'no CSP violation at all on our pages');
    assert.deepEqual(watch.errors, [], 'no script error');
  });
});
