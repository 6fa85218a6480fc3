/**
 * One message to two feeds: nothing feed A shares (feed documents, feed page, entry pages,
 * bodies and parts) shows feed B's address or secrets, however the mail carries them: in a
 * confirm link, folded calendar lines, UTF-16 or PDF attachments, part headers, encoded
 * headers of a forwarded message, character references or hard-wrapped text. Checked end
 * to end over SMTP (security review F10-F12, and L1 and L2 of the review of the fixes).
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { simpleParser } from 'mailparser';
import { createFeed, readFeed, sendRaw, startTestServer, waitForEntries, type CreatedFeed } from './support/helpers.js';

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

/** Quoted-printable and Q-encoded text as a mail client decodes it: soft breaks removed, then `=XX`. */
function qpDecoded(s: string): string {
  return s.replace(/=\r?\n/g, '').replace(/=([0-9a-f]{2})/gi, (_, h: string) => String.fromCharCode(parseInt(h, 16)));
}

/** Every character as a quoted-printable escape. */
function qpEscaped(s: string, upper = true): string {
  return [...Buffer.from(s)].map((b) => `=${upper ? b.toString(16).toUpperCase() : b.toString(16)}`).join('');
}

describe('no other recipient\'s address in shared views (F10-F12)', () => {
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

  it('an attachment whose Content-Type and Content-ID carry feed B\'s address shows on feed A as application/x-redacted, and its inline image still loads (L1)', async () => {
    const server = await startTestServer();
    try {
      const a = await createFeed(server.base, 'A');
      const b = await createFeed(server.base, 'B');
      const tb = tokenOf(b);
      const png = Buffer.from('89504e470d0a1a0a0000000d49484452000000010000000108060000001f15c4890000000d49444154789c6360000002000001e221bc330000000049454e44ae426082', 'hex');
      await sendRaw(server.smtpPort, [a.address, b.address], 'Subject: Your data\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary="X"\r\n\r\n'
        + `--X\r\nContent-Type: multipart/related; boundary="R"\r\n\r\n--R\r\nContent-Type: text/html\r\n\r\n<p>Your export</p><img src="cid:${tb}@example.com">\r\n`
        + `--R\r\nContent-Type: image/png\r\nContent-ID: <${tb}@example.com>\r\nContent-Disposition: inline\r\nContent-Transfer-Encoding: base64\r\n\r\n${png.toString('base64')}\r\n--R--\r\n`
        + `--X\r\nContent-Type: application/x-${tb}; name="data.bin"\r\nContent-Disposition: attachment; filename="data.bin"\r\nContent-Transfer-Encoding: base64\r\n\r\n`
        + `${Buffer.from('harmless bytes').toString('base64')}\r\n--X--\r\n`);
      await waitForEntries(b.feeds.json, 'json');
      const [item] = await waitForEntries(a.feeds.json, 'json');
      const shared = await everythingShared(a);
      assert.ok(!leaks(shared, tb), 'B\'s address is in none of A\'s pages, parts or feeds');
      for (const format of ['atom', 'json'] as const) {
        const [entry] = await readFeed(a.feeds[format], format);
        const data = entry!.enclosures.find((e) => /data\.bin/.test(e.url));
        assert.equal(data?.type, 'application/x-redacted', `the ${format} enclosure is listed with a valid, redacted type`);
      }
      const img = item!.html.match(/<img[^>]*src="([^"]*)"/);
      assert.ok(img && /\/e\/[a-z2-7]+\/parts\/\d+\//.test(img[1]!), `the inline image still points at its part: ${img?.[0]}`);
      const res = await fetch(new URL(img[1]!.replace(/&amp;/g, '&'), a.page));
      assert.equal(res.headers.get('content-type'), 'image/png');
      assert.deepEqual(Buffer.from(await res.arrayBuffer()), png, 'and loads byte for byte');
    } finally {
      await server.stop();
    }
  });

  it('a forwarded .eml with feed B\'s address in Q-encoded and B-encoded headers and a quoted-printable body leaks nothing on feed A (L2)', async () => {
    const server = await startTestServer();
    try {
      const a = await createFeed(server.base, 'A');
      const b = await createFeed(server.base, 'B');
      const tb = tokenOf(b);
      const body = `Hello,=0D=0Ayour address is ${qpEscaped(b.address)}.=0D=0A`.replace(/.{72}/g, '$&=\r\n');
      const eml = [
        'From: colleague@example.com', `To: =?utf-8?Q?${qpEscaped(b.address, false)}?=`,
        `Subject: =?utf-8?Q?Fwd:_${tb[0]}${qpEscaped(tb.slice(1))}?=`, `Reply-To: =?utf-8?B?${Buffer.from(`Subscriber <${b.address}>`).toString('base64')}?=`,
        'MIME-Version: 1.0', 'Content-Type: text/plain; charset=utf-8', 'Content-Transfer-Encoding: quoted-printable', '', body, '',
      ].join('\r\n');
      await sendRaw(server.smtpPort, [a.address, b.address], 'Subject: Fwd: your account\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary="OUT"\r\n\r\n'
        + '--OUT\r\nContent-Type: text/plain\r\n\r\nForwarding.\r\n'
        + `--OUT\r\nContent-Type: message/rfc822\r\nContent-Disposition: attachment; filename="fw.eml"\r\n\r\n${eml}\r\n--OUT--\r\n`);
      await waitForEntries(b.feeds.json, 'json');
      const [item] = await waitForEntries(a.feeds.json, 'json');
      const shared = await everythingShared(a);
      assert.ok(!leaks(qpDecoded(shared), tb), 'B\'s address is nowhere in what A shares, quoted-printable decoded');
      const link = (await (await fetch(item!.link)).text()).match(/href="([^"]*\/e\/[a-z2-7]+\/parts\/\d+\/fw\.eml)"/);
      assert.ok(link, 'the forwarded message is offered');
      // Opened the way a reader's mail client would.
      const forwarded = await simpleParser(Buffer.from(await (await fetch(new URL(link[1]!, a.page))).arrayBuffer()));
      const seen = [forwarded.subject, forwarded.text, forwarded.headers.get('to'), forwarded.headers.get('reply-to')].map((x) => JSON.stringify(x)).join('\n');
      assert.ok(!leaks(seen, tb), seen);
      assert.match(forwarded.text ?? '', /your address is redacted@[a-z.]+\.\n/, 'the rest of the forwarded message reads as sent');
      assert.match(forwarded.subject ?? '', /^Fwd: redacted$/);
    } finally {
      await server.stop();
    }
  });

  it('an HTML attachment and a forwarded HTML message writing feed B\'s address as character references, and a text attachment hard-wrapping it, leak nothing on feed A', async () => {
    const server = await startTestServer();
    try {
      const a = await createFeed(server.base, 'A');
      const b = await createFeed(server.base, 'B');
      const tb = tokenOf(b);
      const decimal = [...b.address].map((c) => `&#${c.charCodeAt(0)};`).join('');
      const hex = [...b.address].map((c) => `&#X${c.charCodeAt(0).toString(16).toUpperCase().padStart(4, '0')}`).join('');
      const page = `<html><body><p>Questions? <a href="mailto:${hex}">Write to us</a></p></body></html>`;
      const eml = ['From: colleague@example.com', 'Subject: the newsletter', 'MIME-Version: 1.0', 'Content-Type: text/html; charset=utf-8', '',
        `<p>Sent to <a href="mailto:${decimal}">you</a>.</p>`, ''].join('\r\n');
      // As a plain-text mailer wraps a long URL: a bare line break inside the token.
      const url = `https://news.example.com/unsubscribe?list=weekly&e=${encodeURIComponent(b.address)}`;
      const cut = url.indexOf(tb) + 10;
      const wrapped = `To unsubscribe, open\r\n${url.slice(0, cut)}\r\n${url.slice(cut)}\r\n`;
      const attach = (type: string, name: string, data: string) => `--X\r\nContent-Type: ${type}; name="${name}"\r\nContent-Disposition: attachment; filename="${name}"\r\n`
        + `Content-Transfer-Encoding: base64\r\n\r\n${Buffer.from(data).toString('base64').replace(/.{76}/g, '$&\r\n')}\r\n`;
      await sendRaw(server.smtpPort, [a.address, b.address], 'Subject: This week\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary="X"\r\n\r\n'
        + '--X\r\nContent-Type: text/plain\r\n\r\nThis week\'s issue is attached.\r\n'
        + attach('text/html; charset=utf-8', 'page.html', page)
        + `--X\r\nContent-Type: message/rfc822\r\nContent-Disposition: attachment; filename="fw.eml"\r\n\r\n${eml}\r\n`
        + attach('text/plain; charset=utf-8', 'unsubscribe.txt', wrapped)
        + '--X--\r\n');
      await waitForEntries(b.feeds.json, 'json');
      await waitForEntries(a.feeds.json, 'json');
      const shared = await everythingShared(a);
      for (const name of ['page.html', 'fw.eml', 'unsubscribe.txt']) assert.match(shared, new RegExp(`/parts/\\d+/${name.replace('.', '\\.')}`), `${name} is offered and was fetched`);
      // What a browser or mail client shows: references decoded, wrapped lines joined.
      const read = shared.replace(/&#(?:x([0-9a-f]+)|([0-9]+));?/gi, (_, h?: string, d?: string) => String.fromCodePoint(h ? parseInt(h, 16) : parseInt(d!, 10)));
      assert.ok(read.includes('Questions? <a href="mailto:redacted@') && read.includes('Sent to <a href="mailto:redacted@'), 'the attachments were redacted, not dropped');
      assert.ok(read.includes('news.example.com/unsubscribe?list=weekly&e=redacted%40'), 'the wrapped link reads as sent around the token');
      assert.ok(!leaks(read, tb) && !leaks(read.replace(/\r?\n/g, ''), tb), 'B\'s address is nowhere in what A shares, references decoded, lines joined');
      assert.ok(!leaks(read, tokenOf(a)), 'nor is A\'s own');
    } finally {
      await server.stop();
    }
  });
});
