/**
 * The pages as people use them, in Debian's Chromium: axe-core finds no serious or critical
 * accessibility violation on any page at phone (390 px) and desktop (1280 px) widths, light and
 * dark; an entry with a long newsletter scrolls as one page (the body frame is exactly as tall
 * as the message, with no scrolling box inside the page); and the frame's sandbox, which keeps
 * the message's origin so our script can measure it, still lets nothing in the message run.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import { createRequire } from 'node:module';
import { after, before, describe, it } from 'node:test';
import { type Browser, type BrowserContext, type Frame, type Page } from 'playwright-core';
import { launchChromium } from './support/browser.js';
import { createFeed, fixture, sendRaw, startTestServer, type CreatedFeed, type FeedItemView, type TestServer, waitForEntries } from './support/helpers.js';

const AXE_SOURCE = fs.readFileSync(createRequire(import.meta.url).resolve('axe-core/axe.min.js'), 'utf8');
const WIDTHS = [390, 1280] as const;
const SCHEMES = ['light', 'dark'] as const;
const STEP_TIMEOUT = 20_000;

interface AxeViolation { id: string; impact: string | null; help: string; nodes: { target: unknown[]; failureSummary?: string }[] }

describe('pages in a real browser', () => {
  let server: TestServer;
  let browser: Browser;
  let origin: string;
  let feed: CreatedFeed;
  let entries: FeedItemView[];
  const contexts: BrowserContext[] = [];

  before(async () => {
    server = await startTestServer({ feedsPerHourPerClient: '0' });
    origin = server.base;
    browser = await launchChromium();
    feed = await createFeed(server.base, 'Weekly reading');
    // The last one has no doctype: it is shown in quirks mode, where the document measures differently.
    const samples = ['rich-newsletter.eml', 'newsletters/mailchimp-kotlin-weekly-388.eml', 'newsletters/cooperpress-node-weekly.eml', 'newsletters/substack-hongbo-title.eml'];
    for (const name of samples) {
      const info = await sendRaw(server.smtpPort, feed.address, fixture(name));
      assert.match(info.response, /^250 /, `${name} is accepted`);
    }
    entries = await waitForEntries(feed.feeds.json, 'json', samples.length, 15_000);
  });

  after(async () => {
    for (const c of contexts) await c.close().catch(() => undefined);
    await browser?.close();
    await server?.stop();
  });

  /** A page whose requests stay on our server (a newsletter's remote images are refused, never fetched). */
  async function newPage(options: { width: number; scheme: 'light' | 'dark'; bypassCSP?: boolean }): Promise<Page> {
    const context = await browser.newContext({
      viewport: { width: options.width, height: 844 },
      colorScheme: options.scheme,
      bypassCSP: options.bypassCSP ?? false,
      serviceWorkers: 'block',
    });
    contexts.push(context);
    context.setDefaultTimeout(STEP_TIMEOUT);
    context.setDefaultNavigationTimeout(STEP_TIMEOUT);
    await context.route('**/*', async (route) => {
      if (new URL(route.request().url()).origin === origin) await route.continue();
      else await route.abort('blockedbyclient');
    });
    return context.newPage();
  }

  function bodyFrame(page: Page): Frame {
    const frame = page.frames().find((f) => f !== page.mainFrame() && f.url().endsWith('/body'));
    assert.ok(frame, 'the entry page embeds its body');
    return frame;
  }

  /** Each page: how to open it in a fresh page. */
  const pages: [string, (page: Page) => Promise<void>][] = [
    ['home', async (page) => { await page.goto(`${origin}/`); }],
    ['created feed', async (page) => {
      await page.goto(`${origin}/`);
      await page.fill('input[name=title]', 'Accessible feed');
      await Promise.all([page.waitForURL(`${origin}/feeds`), page.click('form.create button[type=submit]')]);
    }],
    ['home with my feeds', async (page) => {
      await page.goto(`${origin}/`);
      await page.fill('input[name=title]', 'Remembered feed');
      await Promise.all([page.waitForURL(`${origin}/feeds`), page.click('form.create button[type=submit]')]);
      await page.goto(`${origin}/`);
      await page.waitForSelector('#my-feeds:not([hidden]) li');
    }],
    ['feed page', async (page) => { await page.goto(feed.page); }],
    ['entry page', async (page) => {
      await page.goto(entries.at(-1)!.link);
      await bodyFrame(page).waitForLoadState('load');
    }],
    ['search results', async (page) => {
      await page.goto(`${feed.page}/search?q=kotlin`);
      assert.ok(await page.locator('ol.results li').count() > 0, 'the search finds the newsletter');
    }],
    ['manage page', async (page) => { await page.goto(feed.manage); }],
    ['entry deletion page', async (page) => {
      await page.goto(feed.manage);
      await Promise.all([page.waitForURL(/\/delete/), page.click('#entries a:has-text("Delete")')]);
    }],
    ['not found', async (page) => {
      const res = await page.goto(`${origin}/feeds/${'0'.repeat(32)}`);
      assert.equal(res?.status(), 404);
    }],
  ];

  describe('axe-core finds no serious or critical violation', () => {
    for (const [name, open] of pages) {
      for (const width of WIDTHS) {
        for (const scheme of SCHEMES) {
          it(`${name} at ${width} px, ${scheme}`, async () => {
            // axe is injected as an inline script, which our CSP refuses: this test alone bypasses it.
            const page = await newPage({ width, scheme, bypassCSP: true });
            await open(page);
            await page.waitForLoadState('load');
            await page.addScriptTag({ content: AXE_SOURCE });
            // The message in the entry frame is the sender's, not ours: it is left out.
            const violations = await page.evaluate(async () => {
              const axe = (globalThis as unknown as { axe: { run(context: unknown, options: unknown): Promise<{ violations: AxeViolation[]; passes: unknown[] }> } }).axe;
              const result = await axe.run({ exclude: [['iframe.message']] }, { iframes: false, resultTypes: ['violations'] });
              if (result.passes.length < 10) throw new Error(`axe ran only ${result.passes.length} rules`);
              return result.violations.map((v) => ({ id: v.id, impact: v.impact, help: v.help, nodes: v.nodes.map((n) => ({ target: n.target, failureSummary: n.failureSummary })) }));
            });
            const bad = violations.filter((v) => v.impact === 'serious' || v.impact === 'critical');
            assert.deepEqual(bad, [], `${name} at ${width} px, ${scheme}:\n${JSON.stringify(bad, null, 2)}`);
            const overflow = await page.evaluate(() => document.documentElement.scrollWidth - document.documentElement.clientWidth);
            assert.ok(overflow <= 0, `${name} at ${width} px: the page is ${overflow} px wider than the window`);
          });
        }
      }
    }
  });

  it('no page scrolls sideways at 360 px', async () => {
    for (const [name, open] of pages) {
      const page = await newPage({ width: 360, scheme: 'light' });
      await open(page);
      await page.waitForLoadState('load');
      const overflow = await page.evaluate(() => document.documentElement.scrollWidth - document.documentElement.clientWidth);
      assert.ok(overflow <= 0, `${name} at 360 px: the page is ${overflow} px wider than the window`);
      await page.context().close();
    }
  });

  describe('an entry with a long newsletter scrolls as one page', () => {
    for (const width of WIDTHS) {
      it(`at ${width} px, for each newsletter`, async () => {
        const heights: number[] = [];
        const modes = new Set<string>();
        for (const entry of entries) {
          const page = await newPage({ width, scheme: 'light' });
          await page.goto(entry.link, { waitUntil: 'load' });
          const body = bodyFrame(page);
          await body.waitForLoadState('load');
          // Our script measures on the frame's load and on each image's: wait until the frame is fitted and stays so.
          await page.waitForFunction(() => document.querySelector('iframe.message.fitted') !== null);
          const measure = () => page.evaluate(() => {
            const frame = document.querySelector<HTMLIFrameElement>('iframe.message')!;
            const doc = frame.contentDocument!;
            const scroller = doc.scrollingElement!;
            return {
              mode: doc.compatMode,
              frameHeight: frame.clientHeight,
              contentHeight: Math.max(doc.documentElement.scrollHeight, scroller.scrollHeight),
              innerScroll: scroller.scrollHeight - scroller.clientHeight,
              pageHeight: document.documentElement.scrollHeight,
              windowHeight: window.innerHeight,
            };
          });
          await page.waitForFunction(() => {
            const frame = document.querySelector<HTMLIFrameElement>('iframe.message')!;
            const s = frame.contentDocument!.scrollingElement!;
            return s.scrollHeight <= s.clientHeight + 2;
          });
          const m = await measure();
          const label = `${entry.title} at ${width} px: ${JSON.stringify(m)}`;
          heights.push(m.contentHeight);
          modes.add(m.mode);
          assert.ok(Math.abs(m.frameHeight - m.contentHeight) <= 2, `${label}: the frame is as tall as the message`);
          assert.ok(m.innerScroll <= 2, `${label}: nothing scrolls inside the frame`);
          assert.ok(m.pageHeight > m.contentHeight, `${label}: the page holds the whole message`);
          // The page scrolls as one: to its end, where the frame's end and the links after it are.
          await page.evaluate(() => window.scrollTo(0, document.documentElement.scrollHeight));
          const end = await page.evaluate(() => document.querySelector('iframe.message')!.getBoundingClientRect().bottom);
          assert.ok(end <= m.windowHeight, `${label}: the end of the message is reached by scrolling the page (frame ends at ${end})`);
          const overflow = await page.evaluate(() => document.documentElement.scrollWidth - document.documentElement.clientWidth);
          assert.ok(overflow <= 0, `${label}: the page is ${overflow} px wider than the window`);
        }
        assert.ok(Math.max(...heights) > 3 * 844, `the long newsletters are several screens tall: ${heights.join(', ')} px`);
        assert.deepEqual([...modes].sort(), ['BackCompat', 'CSS1Compat'], 'standards and quirks mode messages are both measured');
      });
    }

    it('is re-measured when the window gets narrower or wider', async () => {
      const entry = entries.find((e) => /kotlin/i.test(e.title))!;
      const page = await newPage({ width: 1280, scheme: 'light' });
      await page.goto(entry.link, { waitUntil: 'load' });
      await bodyFrame(page).waitForLoadState('load');
      await page.waitForFunction(() => document.querySelector('iframe.message.fitted') !== null);
      const fitted = () => page.waitForFunction(() => {
        const frame = document.querySelector<HTMLIFrameElement>('iframe.message')!;
        const root = frame.contentDocument!.documentElement;
        // Content no taller than the frame, and the frame no taller than the content.
        return root.scrollHeight <= frame.clientHeight + 2 && Math.abs(frame.clientHeight - root.scrollHeight) <= 2;
      });
      await fitted();
      for (const width of [390, 1280]) {
        await page.setViewportSize({ width, height: 844 });
        await fitted();
      }
    });

    it('without JavaScript, is a tall frame with a link to the message on its own', async () => {
      const context = await browser.newContext({ javaScriptEnabled: false, viewport: { width: 390, height: 844 } });
      contexts.push(context);
      const page = await context.newPage();
      await page.goto(entries[0]!.link, { waitUntil: 'load' });
      const height = await page.evaluate(() => document.querySelector('iframe.message')!.getBoundingClientRect().height);
      assert.ok(height >= 0.8 * 844, `the frame is ${height} px tall`);
      assert.equal(await page.locator('a', { hasText: 'Open the message on its own' }).count(), 1);
      assert.equal(await page.inputValue('#share-link'), entries[0]!.link, 'the link to share is there to copy');
    });
  });

  describe('keyboard and share', () => {
    it('the first Tab reaches the skip link, which moves focus to the main content', async () => {
      const page = await newPage({ width: 390, scheme: 'light' });
      await page.goto(feed.page, { waitUntil: 'load' });
      await page.keyboard.press('Tab');
      assert.equal(await page.evaluate(() => document.activeElement?.textContent), 'Skip to content');
      const shown = await page.evaluate(() => document.activeElement!.getBoundingClientRect().top >= 0);
      assert.ok(shown, 'the focused skip link is on screen');
      await page.keyboard.press('Enter');
      assert.equal(await page.evaluate(() => document.activeElement?.id), 'main');
      await page.keyboard.press('Tab');
      // The next stop is inside the main content, not the header.
      assert.equal(await page.evaluate(() => document.activeElement?.closest('main') !== null), true);
    });

    it('the share button copies the entry link and says so', async () => {
      const entry = entries[0]!;
      const page = await newPage({ width: 390, scheme: 'dark' });
      await page.context().grantPermissions(['clipboard-read', 'clipboard-write'], { origin });
      await page.goto(entry.link, { waitUntil: 'load' });
      const button = page.locator('button[data-copy="share-link"]');
      await button.waitFor({ state: 'visible' });
      assert.equal(await button.textContent(), 'Copy link');
      await button.click();
      await page.waitForFunction(() => document.getElementById('share-link-status')?.textContent === 'Copied to the clipboard.');
      assert.equal(await page.getAttribute('#share-link-status', 'aria-live'), 'polite');
      assert.equal(await page.evaluate(() => navigator.clipboard.readText()), entry.link);
    });
  });

  describe('the body frame keeps its origin but runs nothing', () => {
    it('a script smuggled into the message runs neither in the frame nor in the page', async () => {
      const entry = entries[0]!;
      const page = await newPage({ width: 1280, scheme: 'light' });
      const errors: string[] = [];
      page.on('pageerror', (e) => errors.push(String(e)));
      // The server's own response (its CSP header, its document), with scripts put back into the body:
      // as if the sanitizer had missed them. The iframe's sandbox and the CSP must still stop them.
      await page.route(`${entry.link}/body`, async (route) => {
        const response = await route.fetch();
        const smuggled = '<script>window.__pwned = 1; try { parent.document.title = "pwned"; parent.__pwned = 1; } catch {}</script>'
          + '<img src="/nothing" onerror="window.__pwned = 2; parent.__pwned = 2">';
        await route.fulfill({ response, body: (await response.text()).replace('<body>', `<body>${smuggled}`) });
      });
      await page.goto(entry.link, { waitUntil: 'load' });
      const body = bodyFrame(page);
      await body.waitForLoadState('load');
      assert.match(await body.content(), /window\.__pwned = 1/, 'the script is in the frame');
      const csp = await page.evaluate(async (u) => (await fetch(u)).headers.get('content-security-policy'), `${entry.link}/body`);
      assert.match(csp ?? '', /sandbox allow-same-origin allow-popups allow-popups-to-escape-sandbox(;|$)/);
      assert.doesNotMatch(csp ?? '', /allow-scripts|script-src/);
      assert.equal(await page.getAttribute('iframe.message', 'sandbox'), 'allow-same-origin allow-popups allow-popups-to-escape-sandbox');
      // The smuggled image's error event has fired by now (our frame.js listens for it too).
      await body.waitForFunction(() => Array.from(document.images).every((i) => i.complete));
      assert.equal(await page.evaluate(() => (globalThis as { __pwned?: unknown }).__pwned), undefined, 'nothing reached the page');
      assert.equal(await body.evaluate(() => (globalThis as { __pwned?: unknown }).__pwned), undefined, 'nothing ran in the frame');
      assert.notEqual(await page.title(), 'pwned');
      assert.deepEqual(errors, []);
    });
  });
});
