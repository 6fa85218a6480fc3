/**
 * Screenshots of every page for the README: `node --import tsx scripts/screenshots.ts`.
 * Starts a feedmail with sample data in a temporary directory (real SMTP, real SQLite), opens
 * each page in Debian's Chromium (CHROMIUM_PATH to use another) at 390 px and 1280 px, light
 * and dark, and saves docs/screenshots/<page>-<width>-<scheme>.png: the top of the page, at
 * most MAX_HEIGHT px of it. Remote images of the sample newsletters are not fetched.
 */
import fs from 'node:fs';
import { fileURLToPath } from 'node:url';
import type { Page } from 'playwright-core';
import { launchChromium } from '../test/support/browser.js';
import { createFeed, fixture, sendRaw, startTestServer, waitForEntries } from '../test/support/helpers.js';

const OUT = fileURLToPath(new URL('../docs/screenshots/', import.meta.url));
const WIDTHS = [390, 1280] as const;
const SCHEMES = ['light', 'dark'] as const;
const MAX_HEIGHT = 1600;
const SAMPLES = ['rich-newsletter.eml', 'newsletters/mailchimp-kotlin-weekly-388.eml', 'newsletters/cooperpress-node-weekly.eml', 'newsletters/hey-world-dhh.eml'];

async function main(): Promise<void> {
  fs.mkdirSync(OUT, { recursive: true });
  const server = await startTestServer({ feedsPerHourPerClient: '0' });
  const browser = await launchChromium();
  try {
    const feed = await createFeed(server.base, 'Weekly reading');
    for (const name of SAMPLES) await sendRaw(server.smtpPort, feed.address, fixture(name), 'newsletter@example.com');
    const entries = await waitForEntries(feed.feeds.json, 'json', SAMPLES.length, 20_000);
    const entry = entries.find((e) => /kotlin/i.test(e.title)) ?? entries[0]!;

    const pages: [string, (page: Page) => Promise<void>][] = [
      ['home', async (page) => { await page.goto(`${server.base}/`); }],
      ['created', async (page) => {
        await page.goto(`${server.base}/`);
        await page.fill('input[name=title]', 'Weekly reading');
        await Promise.all([page.waitForURL(`${server.base}/feeds`), page.click('form.create button[type=submit]')]);
      }],
      ['feed', async (page) => { await page.goto(feed.page); }],
      ['entry', async (page) => {
        await page.goto(entry.link);
        await page.waitForFunction(() => document.querySelector('iframe.message.fitted') !== null);
      }],
      ['search', async (page) => { await page.goto(`${feed.page}/search?q=kotlin OR node`); }],
      ['manage', async (page) => { await page.goto(feed.manage); }],
      ['not-found', async (page) => { await page.goto(`${server.base}/e/${'0'.repeat(32)}`); }],
    ];
    for (const width of WIDTHS) {
      for (const scheme of SCHEMES) {
        const context = await browser.newContext({ viewport: { width, height: 844 }, colorScheme: scheme, serviceWorkers: 'block' });
        // Nothing but our own server: the sample newsletters' remote images stay unloaded.
        await context.route('**/*', async (route) => {
          if (new URL(route.request().url()).origin === server.base) await route.continue();
          else await route.abort('blockedbyclient');
        });
        try {
          for (const [name, open] of pages) {
            const page = await context.newPage();
            await open(page);
            await page.waitForLoadState('load');
            const height = await page.evaluate(() => document.documentElement.scrollHeight);
            const file = `${OUT}${name}-${width}-${scheme}.png`;
            await page.screenshot({ path: file, fullPage: true, clip: { x: 0, y: 0, width, height: Math.min(height, MAX_HEIGHT) } });
            console.log(`${file} (${Math.round(fs.statSync(file).size / 1024)} KiB)`);
            await page.close();
          }
        } finally {
          await context.close();
        }
      }
    }
  } finally {
    await browser.close();
    await server.stop();
  }
}

await main();
