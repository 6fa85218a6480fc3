/**
 * Search and control as an owner does them in a real browser (Debian's Chromium), with
 * JavaScript off, so the core flows are shown to need none (issue 10): create a feed from
 * the start page, mail it, search from the feed page, delete an entry, replace the address,
 * block a sender, and read what became of each delivery.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { type Browser, type Page } from 'playwright-core';
import { launchChromium } from './support/browser.js';
import { sendRaw, startTestServer, type TestServer, waitFor } from './support/helpers.js';

const STEP_TIMEOUT = 15_000;

function message(from: string, to: string, subject: string, body: string): string {
  return [`From: ${from}`, `To: ${to}`, `Subject: ${subject}`, 'MIME-Version: 1.0', 'Content-Type: text/html; charset=utf-8', '', `<p>${body}</p>`, ''].join('\r\n');
}

describe('an owner in a browser without JavaScript', { timeout: 180_000 }, () => {
  let server: TestServer;
  let browser: Browser;
  let page: Page;

  before(async () => {
    server = await startTestServer();
    browser = await launchChromium();
    // A phone's width: every flow must work there too.
    const context = await browser.newContext({ javaScriptEnabled: false, viewport: { width: 390, height: 844 }, serviceWorkers: 'block' });
    context.setDefaultTimeout(STEP_TIMEOUT);
    context.setDefaultNavigationTimeout(STEP_TIMEOUT);
    const origin = new URL(server.base).origin;
    await context.route('**/*', (route) => (new URL(route.request().url()).origin === origin ? route.continue() : route.abort('blockedbyclient')));
    page = await context.newPage();
  });

  after(async () => {
    await browser?.close();
    await server?.stop();
  });

  /** Submits the form that holds `button` and waits for the page it leads to. */
  async function submit(button: string): Promise<void> {
    await Promise.all([page.waitForLoadState('load'), page.waitForNavigation(), page.click(button)]);
  }

  it('creates, searches, deletes, rotates, blocks and shows the deliveries', async () => {
    await page.goto(`${server.base}/`);
    await page.fill('input[name=title]', 'Control room');
    await submit('button[type=submit]');
    const address = await page.inputValue('#address');
    const manage = await page.inputValue('#manage');
    const feedPage = await page.getAttribute('text=Open the feed page', 'href');
    assert.match(address, /^[a-z2-7]{26}@localhost$/);
    assert.ok(manage && feedPage);

    for (const [from, subject, body] of [
      ['Wombat Weekly <news@wombat.example>', 'Burrows of the south', 'The wombat digs a burrow with a narwhal-shaped entrance.'],
      ['Wombat Weekly <news@wombat.example>', 'Sleeping habits', 'Mostly nocturnal, rarely seen by day.'],
      ['Spam Daily <deals@spam.example>', 'Deals deals deals', 'Buy now, a narwhal discount.'],
    ]) {
      const info = await sendRaw(server.smtpPort, address, message(from!, address, subject!, body!));
      assert.match(info.response, /^250 /);
    }

    // Search from the feed page: its form is a plain GET form.
    await page.goto(feedPage);
    await waitFor(async () => {
      await page.reload();
      return (await page.locator('ul.entries a.subject').count()) === 3;
    }, 15_000, 'three entries on the feed page');
    await page.fill('input[type=search]', 'burrow');
    await submit('form.search button[type=submit]');
    assert.equal(await page.locator('ol.results li').count(), 1);
    assert.equal(await page.locator('ol.results mark').first().textContent(), 'burrow');
    await Promise.all([page.waitForNavigation(), page.click('ol.results a.subject')]);
    assert.match(page.url(), /\/e\/[a-z2-7]{26}$/);
    assert.equal(await page.locator('h1').first().textContent(), 'Burrows of the south');

    // Delete one entry from the manage page, confirmed.
    await page.goto(manage);
    const row = page.locator('#entries li', { hasText: 'Deals deals deals' });
    await Promise.all([page.waitForNavigation(), row.locator('text=Delete…').click()]);
    await page.check('input[name=confirm]');
    await submit('button.danger');
    assert.ok(await page.locator('#entries', { hasText: 'The entry was deleted.' }).isVisible());
    assert.equal(await page.locator('#entries li', { hasText: 'Deals deals deals' }).count(), 0);
    await page.goto(`${feedPage}/search?q=narwhal`);
    assert.equal(await page.locator('ol.results li').count(), 1, 'the deleted entry is gone from search');

    // Replace the address: the old one is refused, the new one delivers.
    await page.goto(manage);
    const rotate = page.locator('form[action$="/rotate-address"]');
    await rotate.locator('input[name=confirm]').check();
    await submit('form[action$="/rotate-address"] button');
    const newAddress = (await page.content()).match(/[a-z2-7]{26}@localhost/)?.[0];
    assert.ok(newAddress && newAddress !== address, 'the new address is shown');
    await assert.rejects(sendRaw(server.smtpPort, address, message('a@b.example', address, 'old', 'x')), /550/);
    assert.match((await sendRaw(server.smtpPort, newAddress, message('Wombat Weekly <news@wombat.example>', newAddress, 'After the change', 'Still here.'))).response, /^250 /);

    // Block a domain: its mail is refused for good, and the deliveries say so.
    await page.goto(manage);
    await page.selectOption('select[name=action]', 'block');
    await page.fill('input[name=pattern]', 'spam.example');
    await submit('form[action$="/sender-rules"] button');
    assert.ok(await page.locator('code', { hasText: 'spam.example' }).isVisible(), 'the rule is listed');
    await assert.rejects(sendRaw(server.smtpPort, newAddress, message('Spam Daily <deals@spam.example>', newAddress, 'More deals', 'x'), 'deals@spam.example'), /550/);

    // The last message is listed as soon as it is received, and as stored once it is processed.
    await waitFor(async () => {
      await page.goto(manage);
      const listed = page.locator('ul.deliveries li');
      return (await listed.count()) >= 5 && (await listed.filter({ hasText: 'After the change' }).filter({ hasText: 'Stored' }).count()) === 1;
    }, 15_000, 'five deliveries listed, the last one stored');
    const deliveries = page.locator('ul.deliveries li');
    assert.ok(await deliveries.filter({ hasText: 'Blocked' }).count() >= 1, 'the blocked delivery is listed');
    assert.ok(await deliveries.filter({ hasText: 'After the change' }).filter({ hasText: 'Stored' }).count() === 1, 'the stored delivery is listed');
    assert.ok(await deliveries.filter({ hasText: 'Deals deals deals' }).count() === 1, 'deleted entries keep their delivery line');

    // Nothing is wider than the phone's screen.
    const overflow = await page.evaluate(() => document.documentElement.scrollWidth - document.documentElement.clientWidth);
    assert.ok(overflow <= 0, `the manage page fits 390 px (overflows by ${overflow} px)`);
  });
});
