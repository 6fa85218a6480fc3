/**
 * End to end through SMTP and HTTP: the inbox address never reaches a shared view or a
 * feed, confirmations are surfaced, and foreign charsets display correctly.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { createFeed, fixture, sendRaw, startTestServer, type TestServer, waitForEntries } from './support/helpers.js';

describe('privacy and display, end to end', () => {
  let server: TestServer;
  before(async () => {
    server = await startTestServer();
  });
  after(async () => {
    await server.stop();
  });

  async function deliver(to: string, raw: string | Buffer, feedUrl: string) {
    await sendRaw(server.smtpPort, to, raw);
    return waitForEntries(feedUrl, 'json', 1, 10_000, 'the entry');
  }

  it('keeps the inbox address out of the entry page, its body, the feed page and all three feeds', async () => {
    const feed = await createFeed(server.base, 'Private');
    const address = feed.address;
    const token = address.split('@')[0]!;
    const b64 = Buffer.from(address).toString('base64');
    const html = `<p>Hi ${address}, thanks for reading.</p>
<p><a href="https://news.example.com/unsubscribe?email=${address}">Unsubscribe</a>
 · <a href="https://news.example.com/u?e=${encodeURIComponent(address)}">manage</a>
 · <a href="https://news.example.com/o?d=${b64}">preferences</a></p>`;
    const raw = [
      'From: Example News <news@example.com>', `To: ${address}`, `Subject: Your issue, ${address}`,
      'MIME-Version: 1.0', 'Content-Type: multipart/alternative; boundary=zz', '',
      '--zz', 'Content-Type: text/plain; charset=utf-8', '', `Hello ${address}. Unsubscribe: https://news.example.com/unsubscribe?email=${address}`,
      '--zz', 'Content-Type: text/html; charset=utf-8', '', html, '--zz--', '',
    ].join('\r\n');
    const [item] = await deliver(address, raw, feed.feeds.json);
    const pages = [item!.link, `${item!.link}/body`, feed.page, feed.feeds.atom, feed.feeds.rss, feed.feeds.json];
    for (const url of pages) {
      const body = await (await fetch(url)).text();
      assert.ok(!body.toLowerCase().includes(token), `${url} does not contain the inbox token`);
      assert.ok(!body.includes(b64.replace(/=+$/, '')), `${url} does not contain the base64 address`);
    }
    // The links are still there, only without the secret.
    const body = await (await fetch(`${item!.link}/body`)).text();
    assert.match(body, /href="https:\/\/news\.example\.com\/unsubscribe\?email=redacted@localhost"/);
    assert.match(item!.title, /^Your issue, redacted@localhost$/);
  });

  it('keeps each recipient feed\'s address out of the other\'s copy, and out of text attachments', async () => {
    const a = await createFeed(server.base);
    const b = await createFeed(server.base);
    const raw = [
      'From: news@example.com', `To: ${a.address}, ${b.address}`, 'Subject: to both', 'MIME-Version: 1.0',
      'Content-Type: multipart/mixed; boundary=mm', '',
      '--mm', 'Content-Type: text/plain', '', `Sent to ${a.address} and ${b.address}.`,
      '--mm', 'Content-Type: text/calendar; name=invite.ics', 'Content-Disposition: attachment; filename=invite.ics', '',
      `BEGIN:VCALENDAR\r\nATTENDEE:mailto:${a.address}\r\nATTENDEE:mailto:${b.address}\r\nEND:VCALENDAR`,
      '--mm--', '',
    ].join('\r\n');
    await sendRaw(server.smtpPort, [a.address, b.address], raw);
    for (const feed of [a, b]) {
      const [item] = await waitForEntries(feed.feeds.json, 'json');
      const attachment = item!.enclosures.find((e) => e.url.endsWith('invite.ics'));
      assert.ok(attachment, 'the calendar file is an enclosure');
      const texts = [await (await fetch(item!.link)).text(), await (await fetch(`${item!.link}/body`)).text(), await (await fetch(feed.feeds.atom)).text(), await (await fetch(attachment.url)).text()];
      for (const other of [a, b]) {
        const token = other.address.split('@')[0]!;
        for (const t of texts) assert.ok(!t.includes(token), 'no recipient address in any copy or attachment');
      }
    }
  });

  it('shows the confirm link of a subscription confirmation on the entry page, the feed page and the manage page', async () => {
    const feed = await createFeed(server.base);
    const [item] = await deliver(feed.address, fixture('confirm-subscription.eml'), feed.feeds.json);
    const entryPage = await (await fetch(item!.link)).text();
    assert.match(entryPage, /subscription confirmation[\s\S]*<a href="https:\/\/[^"]*"[^>]*>Confirm the subscription<\/a>/);
    const feedPage = await (await fetch(feed.page)).text();
    assert.match(feedPage, /Subscription to confirm:[\s\S]*Confirm the subscription/);
    const managePage = await (await fetch(feed.manage)).text();
    assert.match(managePage, /Subscription to confirm:/);
    assert.match(item!.html, /Confirm the subscription/, 'the feed content carries the confirm link too');
  });

  it('shows a confirm link that carries the inbox address redacted on shared views, and whole on the manage page', async () => {
    const feed = await createFeed(server.base);
    const token = feed.address.split('@')[0]!;
    const link = `https://news.example.com/confirm?email=${feed.address}&list=7`;
    const raw = ['From: news@example.com', `To: ${feed.address}`, 'Subject: Please confirm your subscription', 'Content-Type: text/html', '',
      `<p>Please confirm your subscription to our newsletter.</p><a href="${link}">Confirm your subscription</a>`, ''].join('\r\n');
    const [item] = await deliver(feed.address, raw, feed.feeds.json);
    const entryPage = await (await fetch(item!.link)).text();
    assert.match(entryPage, /<a href="https:\/\/news\.example\.com\/confirm\?email=redacted@localhost[^"]*"[^>]*>Confirm the subscription<\/a>/);
    const feedPage = await (await fetch(feed.page)).text();
    assert.match(feedPage, /Subscription to confirm:/);
    assert.match(feedPage, /confirm\?email=redacted@localhost/);
    for (const [name, text] of [['entry page', entryPage], ['feed page', feedPage], ['atom', await (await fetch(feed.feeds.atom)).text()],
      ['rss', await (await fetch(feed.feeds.rss)).text()], ['json', await (await fetch(feed.feeds.json)).text()]] as const) {
      assert.ok(!text.toLowerCase().includes(token), `the ${name} does not contain the inbox token`);
    }
    // The owner's manage page is not shared: it carries the link as sent, so the confirmation works.
    const managePage = await (await fetch(feed.manage)).text();
    assert.ok(managePage.includes(`href="${link.replace(/&/g, '&amp;')}"`), 'the manage page has the whole link');
  });

  const charsets: [string, string, string][] = [
    ['charset-shift-jis.eml', '今週のお知らせ', '日本語のニュースレターです。'],
    ['charset-iso-2022-jp.eml', 'メールマガジン第5号', 'こんにちは、世界。'],
    ['charset-windows-1252.eml', '“Hello” – €1', '“Smart quotes” cost €5 – it’s true…'],
  ];
  for (const [file, subject, text] of charsets) {
    it(`displays the subject and body of ${file}`, async () => {
      const feed = await createFeed(server.base);
      const [item] = await deliver(feed.address, fixture(file), feed.feeds.json);
      assert.equal(item!.title, subject);
      const page = await (await fetch(item!.link)).text();
      assert.ok(page.includes(`<h1>${subject.replace(/&/g, '&amp;')}</h1>`), 'the entry page shows the subject');
      const body = await (await fetch(`${item!.link}/body`)).text();
      assert.ok(body.includes(text), `the body shows "${text}"`);
    });
  }
});
