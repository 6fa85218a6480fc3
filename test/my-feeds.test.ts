/**
 * My feeds (issue 11): the browser remembers the feeds it created in localStorage, lists them
 * on the home page with their latest entry, and exports them as OPML built in the page.
 * The list is never sent to the server, the inbox address is never stored, and the manage
 * link only when the user asks for it.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import { after, before, describe, it } from 'node:test';
import type { Browser, Page } from 'playwright-core';
import { launchChromium } from './support/browser.js';
import { sendRaw, startTestServer, waitFor, type TestServer } from './support/helpers.js';

const TITLE = 'Tom & Jerry <weekly> "news"';

function message(to: string, subject: string): string {
  return ['From: My News <news@mine.example>', `To: ${to}`, `Subject: ${subject}`, 'MIME-Version: 1.0', 'Content-Type: text/plain; charset=utf-8', '', `Body of ${subject}`, ''].join('\r\n');
}

interface Outline { type: string; text: string; title: string; xmlUrl: string; htmlUrl: string }

/** Parses the OPML with a real XML parser (python's xml.etree), as a feed reader would. */
function parseOpml(file: string): { version: string; outlines: Outline[] } {
  const out = execFileSync('python3', ['-c', [
    'import sys, json, xml.etree.ElementTree as ET',
    'root = ET.parse(sys.argv[1]).getroot()',
    'print(json.dumps({"version": root.get("version"), "outlines": [dict(o.attrib) for o in root.iter("outline")]}))',
  ].join('\n'), file], { encoding: 'utf8' });
  return JSON.parse(out) as { version: string; outlines: Outline[] };
}

describe('my feeds, kept in the browser', { timeout: 120_000 }, () => {
  let server: TestServer;
  let browser: Browser;

  before(async () => {
    server = await startTestServer();
    browser = await launchChromium();
  });

  after(async () => {
    await browser?.close();
    await server?.stop();
  });

  it('lists a created feed with its latest entry, exports OPML that parses, sends nothing, and removes it', async () => {
    const context = await browser.newContext({ acceptDownloads: true });
    const page: Page = await context.newPage();
    const violations: string[] = [];
    const errors: string[] = [];
    page.on('console', (m) => { if (/Content Security Policy/i.test(m.text())) violations.push(m.text()); });
    page.on('pageerror', (e) => errors.push(String(e)));
    const requests: string[] = [];
    page.on('request', (r) => requests.push(`${r.method()} ${r.url().replace(server.base, '')}`));
    try {
      await page.goto(`${server.base}/`);
      assert.equal(await page.isVisible('#my-feeds'), false, 'no list before a feed was created');

      await page.fill('input[name=title]', TITLE);
      await Promise.all([page.waitForURL(`${server.base}/feeds`), page.click('button[type=submit]')]);
      await page.waitForSelector('#my-feed:not([hidden])');
      const address = await page.inputValue('#address');
      const atom = await page.inputValue('#atom');
      const json = await page.inputValue('#json');
      const manage = await page.inputValue('#manage');

      // Stored: title and URLs, but never the address, and not the manage link unless asked.
      const stored = async () => await page.evaluate(() => localStorage.getItem('feedmail.myFeeds')) ?? '';
      let saved = await stored();
      assert.ok(saved.includes(atom));
      assert.ok(!saved.includes(address.split('@')[0]!), 'the inbox address is never stored');
      assert.ok(!saved.includes(manage), 'the manage link is not stored by default');
      await page.check('#remember-manage');
      saved = await stored();
      assert.ok(saved.includes(manage), 'the manage link is stored once the box is ticked');
      await page.uncheck('#remember-manage');
      assert.ok(!(await stored()).includes(manage), 'and forgotten when it is unticked');

      // The home page lists it, with its title as text.
      requests.length = 0;
      await page.goto(`${server.base}/`);
      await page.waitForSelector('#my-feeds li .latest >> text=No entries yet.');
      assert.deepEqual(await page.locator('#my-feeds li a.subject').allTextContents(), [TITLE]);
      assert.equal(await page.locator('#my-feeds li a.subject').getAttribute('href'), new URL(json.replace(/\.json$/, ''), server.base).href);

      // A mailed entry shows as the latest after a reload.
      await sendRaw(server.smtpPort, address, message(address, 'First <i>issue</i> & more'));
      await waitFor(async () => ((await (await fetch(json)).json()) as { items: unknown[] }).items.length === 1, 10_000, 'the entry stored');
      await page.reload();
      await page.waitForSelector('#my-feeds li .latest-subject >> text=First <i>issue</i> & more');
      assert.equal(await page.locator('#my-feeds i').count(), 0, 'data is set as text, never as HTML');
      assert.ok(await page.locator('#my-feeds li time').count() === 1, 'the date of the latest entry');

      // Export OPML: a download built in the page.
      const [download] = await Promise.all([page.waitForEvent('download'), page.click('#my-feeds button.export')]);
      const file = await download.path();
      assert.ok(file);
      assert.equal(download.suggestedFilename(), 'feedmail-feeds.opml');
      const opml = parseOpml(file);
      assert.equal(opml.version, '2.0');
      assert.equal(opml.outlines.length, 1);
      const outline = opml.outlines[0]!;
      assert.equal(outline.xmlUrl, atom);
      assert.equal(outline.type, 'rss');
      assert.equal(outline.title, TITLE, 'the title survives XML escaping');
      assert.equal(outline.text, TITLE);
      assert.equal(outline.htmlUrl, new URL(json.replace(/\.json$/, ''), server.base).href);
      assert.ok(fs.readFileSync(file, 'utf8').includes('Tom &amp; Jerry &lt;weekly&gt;'));

      // The server never heard of the list: only the page, its own files, and GETs of the feed's JSON.
      const jsonPath = new URL(json).pathname;
      const other = requests.filter((r) => !['GET /', 'GET /static/style.css', 'GET /static/copy.js', 'GET /static/my-feeds.js', `GET ${jsonPath}`].includes(r) && !r.startsWith('GET /favicon'));
      assert.deepEqual(other, [], 'no request carries the list');
      assert.ok(requests.every((r) => r.startsWith('GET ')));
      assert.ok(requests.includes(`GET ${jsonPath}`), 'the latest entry came from the feed\'s own JSON Feed');

      // Remove from this list.
      await page.click('#my-feeds button.remove');
      assert.equal(await page.isVisible('#my-feeds'), false, 'the empty list hides');
      assert.equal(await stored(), '[]');
      await page.reload();
      assert.equal(await page.locator('#my-feeds li').count(), 0);

      assert.deepEqual(violations, []);
      assert.deepEqual(errors, []);
    } finally {
      await context.close();
    }
  });

  it('links the manage page only when the user kept its link, and says when a feed is gone', async () => {
    const context = await browser.newContext();
    const page = await context.newPage();
    try {
      for (const title of ['Kept manage link', 'Deleted later']) {
        await page.goto(`${server.base}/`);
        await page.fill('input[name=title]', title);
        await Promise.all([page.waitForURL(`${server.base}/feeds`), page.click('button[type=submit]')]);
        await page.waitForSelector('#my-feed:not([hidden])');
        if (title === 'Kept manage link') await page.check('#remember-manage');
      }
      const manage = await page.inputValue('#manage');
      const token = new URL(await page.inputValue('#atom')).pathname.split('/')[2]!.replace(/\.atom$/, '');
      const row = await server.app.stores.app.feedByFeedToken(token);
      await server.app.stores.app.deleteFeed(row!.id);
      await page.goto(`${server.base}/`);
      // Newest first.
      assert.deepEqual(await page.locator('#my-feeds li a.subject').allTextContents(), ['Deleted later', 'Kept manage link']);
      await page.waitForSelector('#my-feeds li:first-child .latest >> text=no longer exists');
      assert.equal(await page.locator('#my-feeds li:first-child a:text-is("Manage")').count(), 0);
      const kept = page.locator('#my-feeds li:nth-child(2) a:text-is("Manage")');
      assert.equal(await kept.count(), 1);
      assert.notEqual(await kept.getAttribute('href'), manage, 'each feed keeps its own manage link');
      assert.match(await kept.getAttribute('href') ?? '', /\/manage\/[a-z2-7]+$/);
    } finally {
      await context.close();
    }
  });

  it('shows no list and loads nothing without JavaScript', async () => {
    const context = await browser.newContext({ javaScriptEnabled: false });
    const page = await context.newPage();
    try {
      await page.goto(`${server.base}/`);
      assert.equal(await page.isVisible('#my-feeds'), false);
      await page.fill('input[name=title]', 'No script');
      await Promise.all([page.waitForURL(`${server.base}/feeds`), page.click('button[type=submit]')]);
      assert.match(await page.inputValue('#address'), /@/);
      assert.equal(await page.isVisible('#my-feed'), false, 'no promise of a list that is not kept');
    } finally {
      await context.close();
    }
  });
});
