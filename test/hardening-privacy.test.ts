/**
 * No recipient's address leaks through the paths the security review found (F10-F12),
 * checked end to end: mail over SMTP to two feeds, then every shared page, part and
 * feed document of one feed searched for the other's secrets.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { createFeed, readFeed, sendRaw, startTestServer, waitForEntries, type CreatedFeed } from './helpers.js';

const tokenOf = (feed: CreatedFeed) => feed.address.split('@')[0]!;

/** Everything anyone holding feed A's feed URL or an entry link can fetch. */
async function everythingShared(feed: CreatedFeed): Promise<string> {
  const texts: string[] = [];
  for (const format of ['atom', 'rss', 'json'] as const) texts.push(await (await fetch(feed.feeds[format])).text());
  texts.push(await (await fetch(feed.page)).text());
  for (const item of await readFeed(feed.feeds.json, 'json')) {
    const page = await (await fetch(item.link)).text();
    texts.push(page, await (await fetch(`${item.link}/body`)).text());
    const parts = [...page.matchAll(/href="([^"]*\/e\/[a-z2-7]+\/parts\/\d+\/[^"]*)"/g)];
    for (const m of parts) {
      const res = await fetch(new URL(m[1]!.replace(/&amp;/g, '&'), feed.page));
      texts.push(Buffer.from(await res.arrayBuffer()).toString('latin1'));
    }
  }
  return texts.join('\n');
}

/** The token, or either half of it split anywhere by a fold, in latin1 or UTF-16 text. */
function leaks(haystack: string, token: string): boolean {
  const utf16 = Buffer.from(token, 'utf16le').toString('latin1');
  return haystack.toLowerCase().includes(token) || haystack.includes(utf16) || haystack.includes(token.slice(0, 13)) && haystack.includes(token.slice(13));
}

describe('hardening: no other recipient\'s address in shared views (F10-F12)', () => {
  it('a confirm link addressed to feed B shows on feed A without B\'s address, and whole on B\'s manage page (F10)', async () => {
    const server = await startTestServer();
    try {
      const a = await createFeed(server.base, 'A');
      const b = await createFeed(server.base, 'B');
      await sendRaw(server.smtpPort, [a.address, b.address], 'Subject: Please confirm your subscription\r\nContent-Type: text/html\r\n\r\n'
        + `<p>Please confirm your subscription to our newsletter.</p><a href="https://example.com/confirm?email=${b.address}">Confirm your subscription</a>`);
      await waitForEntries(a.feeds.json, 'json');
      await waitForEntries(b.feeds.json, 'json');
      const shared = await everythingShared(a);
      assert.match(shared, /subscription confirmation|Subscription to confirm/i, 'the confirmation is still surfaced on A');
      assert.ok(!leaks(shared, tokenOf(b)), 'B\'s address is nowhere in what A shares');
      assert.ok(!leaks(await (await fetch(a.manage)).text(), tokenOf(b)), 'nor on A\'s manage page');
      // B's owner still gets a working link with B's own address in it.
      assert.ok((await (await fetch(b.manage)).text()).includes(`confirm?email=${b.address}`));
    } finally {
      await server.stop();
    }
  });

  it('an .ics invite with the address folded across lines, a UTF-16 text attachment and a PDF carrying the address leak nothing (F11, F12)', async () => {
    const server = await startTestServer();
    try {
      const a = await createFeed(server.base, 'A');
      const b = await createFeed(server.base, 'B');
      const tb = tokenOf(b);
      const ics = 'BEGIN:VCALENDAR\r\nVERSION:2.0\r\nBEGIN:VEVENT\r\nSUMMARY:Webinar\r\n'
        + `ATTENDEE;CN=Subscriber;RSVP=TRUE:mailto:${tb.slice(0, 10)}\r\n ${tb.slice(10)}@feedmail.test\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n`;
      const utf16 = Buffer.concat([Buffer.from([0xff, 0xfe]), Buffer.from(`name,email\r\nsubscriber,${b.address}\r\n`, 'utf16le')]);
      const pdf = Buffer.from(`%PDF-1.4\n1 0 obj << /Title (Invoice for ${b.address}) >> endobj\n%%EOF\n`);
      const cleanPdf = Buffer.from('%PDF-1.4\n1 0 obj << /Title (Nothing to see) >> endobj\n%%EOF\n');
      const part = (type: string, name: string, data: Buffer) => `--X\r\nContent-Type: ${type}; name="${name}"\r\nContent-Disposition: attachment; filename="${name}"\r\n`
        + `Content-Transfer-Encoding: base64\r\n\r\n${data.toString('base64')}\r\n`;
      await sendRaw(server.smtpPort, [a.address, b.address], 'Subject: Your webinar\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary="X"\r\n\r\n'
        + '--X\r\nContent-Type: text/plain\r\n\r\nSee you there.\r\n'
        + part('text/calendar; charset=utf-8', 'invite.ics', Buffer.from(ics))
        + part('text/csv; charset=utf-16', 'export.csv', utf16)
        + part('application/pdf', 'invoice.pdf', pdf)
        + part('application/pdf', 'brochure.pdf', cleanPdf)
        + '--X--\r\n');
      const [item] = await waitForEntries(a.feeds.json, 'json');
      const shared = await everythingShared(a);
      assert.match(shared, /ATTENDEE;CN=Subscriber/, 'the invite itself was fetched and checked');
      assert.ok(!leaks(shared, tb), 'B\'s address is in none of A\'s pages, parts or feeds');
      assert.ok(!leaks(shared, tokenOf(a)), 'nor is A\'s own');
      const page = await (await fetch(item!.link)).text();
      assert.match(page, /invoice\.pdf/, 'the withheld attachment is still listed');
      assert.match(page, /contains the feed(&#39;|')s address/, 'with the reason it is not offered');
      assert.ok(!item!.enclosures.some((e) => /invoice/.test(e.url)), 'and it is no enclosure');
      const brochure = item!.enclosures.find((e) => /brochure/.test(e.url));
      assert.ok(brochure, 'an attachment without the address is offered');
      assert.deepEqual(Buffer.from(await (await fetch(brochure.url)).arrayBuffer()), cleanPdf, 'byte for byte');
      const csv = page.match(/href="([^"]*\/e\/[a-z2-7]+\/parts\/\d+\/export\.csv)"/);
      assert.ok(csv, 'the UTF-16 export is offered');
      assert.match(await (await fetch(new URL(csv[1]!, server.base))).text(), /subscriber,redacted@/, 'redacted and readable as UTF-8');
    } finally {
      await server.stop();
    }
  });
});
