/**
 * Redaction, at a size CI can afford: it scans megabytes of base64 without throwing, and
 * leaves no feed's address in folded calendar lines, UTF-16 attachments, hex, nested
 * base64, binary attachments or another recipient's confirm link (security review F3 and
 * F10-F12).
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { parseMessage } from '../src/mail/parse.js';
import { confirmUrlForFeed, redactor, redactPart, WITHHELD_NOTE, type FeedSecrets } from '../src/mail/redact.js';
import type { NewPart } from '../src/store/entries.js';
import { prng } from './support/mutate.js';

const A: FeedSecrets = { inboxToken: '65mseglhwi2eannrt36pst6inq', feedToken: 'f3edtokqz5ya2wm4nrx6bc7ejh' };
const B: FeedSecrets = { inboxToken: 'k7q2m4xap3w5tgr6n2b4v7c3zd', feedToken: 'q4zbmd7w2ryxe5k3nhu6tcga2v' };
const ADDRESS = `${A.inboxToken}@feedmail.test`;

/** Decodes base64 or base64url text from each of its first four characters. */
function base64Decodings(s: string): string[] {
  const plain = s.replace(/[\r\n]/g, '').replace(/-/g, '+').replace(/_/g, '/').replace(/=/g, 'A');
  return [0, 1, 2, 3].map((k) => Buffer.from(plain.slice(k), 'base64').toString('latin1'));
}

/** Runs of 20 or more base64 characters (a loop: a regexp overflows its stack on megabyte runs). */
function runsOf(s: string): string[] {
  const runs: string[] = [];
  let start = 0;
  for (let i = 0; i <= s.length; i++) {
    if (i < s.length && /[A-Za-z0-9+/_=-]/.test(s[i]!)) continue;
    if (i - start >= 20) runs.push(s.slice(start, i));
    start = i + 1;
  }
  return runs;
}

/**
 * Where `token` still shows in `s`: plainly (any case), percent-decoded, in hex, or in base64
 * text at any alignment, and in base64 inside that (one level of nesting).
 */
function leaksOf(s: string, token: string): string[] {
  const found: string[] = [];
  const percentDecoded = s.replace(/%([0-9a-f]{2})/gi, (_, h: string) => String.fromCharCode(parseInt(h, 16)));
  if (percentDecoded.toLowerCase().includes(token)) found.push('plain');
  if (percentDecoded.toLowerCase().includes(Buffer.from(token).toString('hex'))) found.push('hex');
  for (const run of runsOf(percentDecoded)) {
    for (const decoded of base64Decodings(run)) {
      if (decoded.toLowerCase().includes(token)) found.push(`base64 in ${run.slice(0, 30)}…`);
      for (const inner of runsOf(decoded)) {
        if (base64Decodings(inner).some((d) => d.toLowerCase().includes(token))) found.push(`nested base64 in ${run.slice(0, 30)}…`);
      }
    }
  }
  return found;
}

function part(content: Buffer, contentType: string, extra: Partial<NewPart> = {}): NewPart {
  return { content, contentType, filename: 'file', contentId: null, inline: false, size: content.length, ...extra };
}

function randomBytes(n: number, seed: number): Buffer {
  const rng = prng(seed);
  const b = Buffer.allocUnsafe(n);
  for (let i = 0; i < n; i++) b[i] = Math.floor(rng() * 256);
  return b;
}

/** A multipart message with one attachment, the way a newsletter would send it. */
function messageWith(contentType: string, filename: string, body: Buffer, encoding: 'base64' | '8bit' = 'base64'): Buffer {
  const encoded = encoding === 'base64' ? body.toString('base64').replace(/.{76}/g, '$&\r\n') : body.toString('latin1');
  return Buffer.from([
    'From: events@example.com', `To: ${ADDRESS}`, 'Subject: You are invited', 'MIME-Version: 1.0',
    'Content-Type: multipart/mixed; boundary=mm', '',
    '--mm', 'Content-Type: text/plain; charset=utf-8', '', 'See the attachment.',
    '--mm', `Content-Type: ${contentType}; name=${filename}`, `Content-Disposition: attachment; filename=${filename}`,
    `Content-Transfer-Encoding: ${encoding}`, '', encoded, '--mm--', '',
  ].join('\r\n'), 'latin1');
}

async function onlyPart(raw: Buffer): Promise<NewPart> {
  const parsed = await parseMessage(raw, { maxPartBytes: 20_000_000 });
  assert.equal(parsed.parts.length, 1);
  return parsed.parts[0]!;
}

describe('redaction: megabytes of base64 (F3)', () => {
  it('redacts a 9 MB run of one base64 letter without throwing, and leaves it as it was', () => {
    const input = 'A'.repeat(9_000_000);
    assert.equal(redactor([A, B])(input), input);
  });

  it('redacts a forwarded .eml carrying a 6.6 MB PDF without throwing, and removes the address hidden in its base64', () => {
    const pdf = Buffer.concat([randomBytes(3_300_000, 1), Buffer.from(`/Author (${ADDRESS})`), randomBytes(3_300_000, 2)]);
    const inner = Buffer.from([
      'From: colleague@example.com', 'Subject: the report', 'MIME-Version: 1.0', 'Content-Type: multipart/mixed; boundary="IN"', '',
      '--IN', 'Content-Type: text/plain', '', 'see attached',
      '--IN', 'Content-Type: application/pdf', 'Content-Disposition: attachment; filename="report.pdf"', 'Content-Transfer-Encoding: base64', '',
      pdf.toString('base64').replace(/.{76}/g, '$&\r\n'), '--IN--', '',
    ].join('\r\n'));
    assert.ok(inner.length > 8_500_000, 'as long as the run that overflowed the regexp stack');
    const out = redactPart(part(inner, 'message/rfc822', { filename: 'report.eml' }), [A, B]);
    assert.ok(out.content, 'the forwarded message is kept');
    const text = out.content.toString('latin1');
    assert.deepEqual(leaksOf(text.slice(text.indexOf('base64\r\n\r\n')), A.inboxToken), []);
    assert.match(text, /redacted/);
    // Only the characters that encode the address changed: the rest of the message is as sent.
    assert.ok(Math.abs(out.content.length - inner.length) < 100);
    assert.equal(text.slice(0, 300), inner.subarray(0, 300).toString('latin1'));
  });

  it('redacts an address base64-encoded in a 9 MB data: URI body', () => {
    const payload = Buffer.concat([randomBytes(3_400_000, 3), Buffer.from(`{"email":"${ADDRESS}"}`), randomBytes(3_400_000, 4)]);
    const html = `<img src="data:image/png;base64,${payload.toString('base64')}">`;
    const out = redactor(A)(html);
    assert.deepEqual(leaksOf(out, A.inboxToken), []);
    assert.ok(out.startsWith('<img src="data:image/png;base64,') && out.endsWith('">'));
  });
});

describe('redaction: folded lines (F11)', () => {
  const ics = [
    'BEGIN:VCALENDAR', 'VERSION:2.0', 'METHOD:REQUEST', 'BEGIN:VEVENT', 'UID:42@events.example.com', 'SUMMARY:Webinar',
    // Folded at 75 octets, as RFC 5545 requires, in the middle of the token.
    `ATTENDEE;CN=Subscriber;RSVP=TRUE:mailto:${A.inboxToken.slice(0, 10)}\r\n ${A.inboxToken.slice(10)}@feedmail.test`,
    'END:VEVENT', 'END:VCALENDAR', '',
  ].join('\r\n');

  it('redacts an .ics attendee line folded inside the token, and keeps the rest of the invite', async () => {
    const parsed = await onlyPart(messageWith('text/calendar; charset=utf-8; method=REQUEST', 'invite.ics', Buffer.from(ics)));
    const out = redactPart(parsed, [A]);
    const text = out.content!.toString('utf8');
    assert.deepEqual(leaksOf(text, A.inboxToken), []);
    assert.ok(!text.includes(A.inboxToken.slice(0, 10)) && !text.includes(A.inboxToken.slice(10)), 'neither half of the address is left');
    assert.match(text, /^ATTENDEE;CN=Subscriber;RSVP=TRUE:mailto:redacted@feedmail\.test\r$/m);
    assert.equal(text.replace(/^ATTENDEE.*\r\n/m, ''), ics.replace(/^ATTENDEE.*\r\n .*\r\n/m, ''));
  });

  it('redacts a token folded with a bare newline and a tab, in a vCard and in text', () => {
    const vcard = `BEGIN:VCARD\nEMAIL:${A.inboxToken.slice(0, 5)}\n\t${A.inboxToken.slice(5)}@feedmail.test\nEND:VCARD\n`;
    const out = redactPart(part(Buffer.from(vcard), 'text/vcard'), [A]).content!.toString('utf8');
    assert.equal(out, 'BEGIN:VCARD\nEMAIL:redacted@feedmail.test\nEND:VCARD\n');
    assert.deepEqual(leaksOf(redactor(A)(`To: ${A.inboxToken.slice(0, 20)}\r\n ${A.inboxToken.slice(20)}@feedmail.test`), A.inboxToken), []);
  });
});

describe('redaction: text attachments in other charsets (F12)', () => {
  const csv = `Name;Address\r\nJosé;${ADDRESS}\r\n`;

  it('redacts a UTF-16LE attachment with a byte order mark and stores it as UTF-8', async () => {
    const parsed = await onlyPart(messageWith('text/plain; charset=utf-16', 'export.csv', Buffer.from(`\ufeff${csv}`, 'utf16le')));
    assert.equal(parsed.charset, 'utf-16');
    const out = redactPart(parsed, [A]);
    assert.equal(out.charset, 'utf-8');
    assert.equal(out.content!.toString('utf8'), 'Name;Address\r\nJosé;redacted@feedmail.test\r\n');
    assert.equal(out.size, out.content!.length);
  });

  it('redacts a UTF-16BE attachment without a byte order mark and stores it as UTF-8', async () => {
    const be = Buffer.from(csv, 'utf16le').swap16();
    for (const charset of ['utf-16be', 'UTF-16']) {
      const parsed = await onlyPart(messageWith(`text/plain; charset=${charset}`, 'export.csv', be));
      const out = redactPart(parsed, [A]);
      assert.equal(out.content!.toString('utf8'), 'Name;Address\r\nJosé;redacted@feedmail.test\r\n', charset);
      assert.equal(out.charset, 'utf-8');
    }
  });

  it('transcodes Latin-1 and Shift_JIS parts to UTF-8, and falls back for an unknown charset', async () => {
    const latin1 = await onlyPart(messageWith('text/plain; charset=iso-8859-1', 'a.txt', Buffer.from(`Grüße, ${ADDRESS}`, 'latin1'), '8bit'));
    assert.equal(redactPart(latin1, [A]).content!.toString('utf8'), 'Grüße, redacted@feedmail.test');
    const sjis = Buffer.concat([Buffer.from([0x82, 0xb1, 0x82, 0xf1, 0x82, 0xc9, 0x82, 0xbf, 0x82, 0xcd, 0x20]), Buffer.from(ADDRESS)]);
    assert.equal(redactPart(part(sjis, 'text/plain', { charset: 'shift_jis' }), [A]).content!.toString('utf8'), 'こんにちは redacted@feedmail.test');
    assert.equal(redactPart(part(Buffer.from(`é ${ADDRESS}`), 'text/plain', { charset: 'x-no-such-charset' }), [A]).content!.toString('utf8'), 'é redacted@feedmail.test');
  });

  it('keeps the bytes of a forwarded message in 8-bit charsets as they are, apart from the address', () => {
    const eml = Buffer.concat([Buffer.from('Subject: Gr'), Buffer.from([0xfc]), Buffer.from(`\r\nTo: ${ADDRESS}\r\n\r\n`), Buffer.from([0xe9, 0x00, 0xff])]);
    const out = redactPart(part(eml, 'message/rfc822'), [A]);
    assert.deepEqual(out.content, Buffer.concat([Buffer.from('Subject: Gr'), Buffer.from([0xfc]), Buffer.from('\r\nTo: redacted@feedmail.test\r\n\r\n'), Buffer.from([0xe9, 0x00, 0xff])]));
  });
});

describe('redaction: every token, every case', () => {
  it('redacts any token percent-encoded per character, uppercased, in either hex case, or in hex', () => {
    const rng = prng(2026);
    const alphabet = 'abcdefghijklmnopqrstuvwxyz234567';
    for (let n = 0; n < 300; n++) {
      const token = Array.from({ length: 26 }, () => alphabet[Math.floor(rng() * 32)]).join('');
      const redact = redactor({ inboxToken: token, feedToken: B.feedToken });
      const escaped = (t: string) => [...t].map((c) => `%${c.charCodeAt(0).toString(16)}`).join('');
      for (const form of [escaped(token.toUpperCase()).toUpperCase(), escaped(token.toUpperCase()), escaped(token).toUpperCase(), Buffer.from(token.toUpperCase()).toString('hex')]) {
        assert.equal(redact(`u=${form}&x`), 'u=redacted&x', `${token}: ${form}`);
      }
    }
  });
});

describe('redaction: hex and nested base64 (F12)', () => {
  const redact = redactor([A, B]);

  it('redacts the address in hex, in either case, and keeps the rest of the link', () => {
    for (const hex of [Buffer.from(ADDRESS).toString('hex'), Buffer.from(ADDRESS).toString('hex').toUpperCase()]) {
      const out = redact(`https://t.example/c?e=${hex}&x=1`);
      assert.deepEqual(leaksOf(out, A.inboxToken), []);
      assert.match(out, /^https:\/\/t\.example\/c\?e=redacted[0-9a-f]*&x=1$/i);
    }
  });

  it('redacts an address in base64 inside base64, as click-tracking wrappers send it, at every alignment', () => {
    for (const pad of ['', 'a', 'ab']) {
      const unsubscribe = `https://news.example.com/unsub?d=${Buffer.from(`${pad}{"email":"${ADDRESS}"}`).toString('base64')}`;
      for (const inner of [unsubscribe, encodeURIComponent(unsubscribe)]) {
        const link = `https://click.example.net/c/${Buffer.from(`${pad}${inner}`).toString('base64url')}?s=1`;
        assert.ok(leaksOf(link, A.inboxToken).some((l) => l.startsWith('nested')), 'the test input really nests it');
        const out = redact(link);
        assert.deepEqual(leaksOf(out, A.inboxToken), [], `${link} -> ${out}`);
        assert.ok(out.startsWith('https://click.example.net/c/') && out.endsWith('?s=1'));
      }
    }
  });

  it('redacts an address in UTF-16 inside base64, as in a forwarded message\'s UTF-16 attachment', () => {
    const attachment = Buffer.from(`\ufeffName;Address\r\nJosé;${ADDRESS}\r\n`, 'utf16le').toString('base64').replace(/.{76}/g, '$&\r\n');
    const out = redact(`Content-Type: text/csv; charset=utf-16\r\nContent-Transfer-Encoding: base64\r\n\r\n${attachment}\r\n`);
    const decoded = base64Decodings(out.slice(out.indexOf('\r\n\r\n') + 4)).map((d) => Buffer.from(d, 'latin1').toString('utf16le'));
    assert.ok(decoded.every((d) => !d.includes(A.inboxToken)), 'the address is gone from every decoding');
    assert.ok(decoded.some((d) => d.includes('Name;Address')), 'the rest still decodes');
  });

  it('leaves base64 and hex that carry no secret as they are', () => {
    const harmless = `x=${Buffer.from(Buffer.from('https://news.example.com/p/1').toString('base64')).toString('base64')} h=${Buffer.from('hello world').toString('hex')}`;
    assert.equal(redact(harmless), harmless);
  });
});

describe('redaction: binary attachments (F12)', () => {
  const pdf = (body: string) => Buffer.concat([Buffer.from('%PDF-1.4\n'), randomBytes(5000, 9), Buffer.from(`\nBT (${body}) Tj ET\n%%EOF\n`)]);

  it('lists a PDF or octet-stream that contains the address without offering its bytes', () => {
    const forms = {
      'application/pdf': pdf(`Registered to ${ADDRESS.toUpperCase()}`),
      'application/octet-stream': Buffer.concat([randomBytes(2000, 5), Buffer.from(ADDRESS, 'utf16le'), randomBytes(2000, 6)]),
      'application/x-bin': Buffer.concat([randomBytes(2000, 7), Buffer.from(ADDRESS, 'utf16le').swap16()]),
      'image/png': Buffer.concat([randomBytes(100, 8), Buffer.from(`tEXtComment\0${Buffer.from(ADDRESS).toString('base64')}`)]),
      'application/zip': Buffer.from(`PK${Buffer.from(ADDRESS).toString('hex')}`),
    };
    for (const [type, bytes] of Object.entries(forms)) {
      const out = redactPart(part(bytes, type, { filename: `for-${ADDRESS}.bin` }), [B, A]);
      assert.equal(out.content, null, type);
      assert.equal(out.note, WITHHELD_NOTE);
      assert.equal(out.filename, 'for-redacted@feedmail.test.bin');
      assert.equal(out.contentType, type);
    }
  });

  it('keeps a PDF without the address byte for byte', () => {
    const bytes = pdf('Quarterly report');
    const out = redactPart(part(bytes, 'application/pdf', { filename: 'report.pdf' }), [A, B]);
    assert.ok(out.content?.equals(bytes));
    assert.equal(out.note ?? null, null);
    assert.equal(out.size, bytes.length);
  });

  it('scans a 10 MB binary part without throwing', () => {
    const bytes = randomBytes(10_000_000, 11);
    assert.ok(redactPart(part(bytes, 'application/octet-stream'), [A, B]).content?.equals(bytes));
  });
});

describe('redaction: confirm links of a message sent to several feeds (F10)', () => {
  it('removes the other recipients\' secrets from the confirm URL and keeps the viewing feed\'s own whole', () => {
    const url = `https://example.com/confirm?email=${B.inboxToken}%40feedmail.test&me=${A.inboxToken}%40feedmail.test&d=${Buffer.from(`${B.inboxToken}@feedmail.test`).toString('base64url')}`;
    const forA = confirmUrlForFeed(url, A, [A, B]);
    assert.deepEqual(leaksOf(forA, B.inboxToken), []);
    assert.ok(forA.includes(`me=${A.inboxToken}%40feedmail.test`), 'the own address stays, so the link works for the owner');
    const forB = confirmUrlForFeed(url, B, [A, B]);
    assert.deepEqual(leaksOf(forB, A.inboxToken), []);
    assert.ok(forB.startsWith(`https://example.com/confirm?email=${B.inboxToken}%40feedmail.test&`));
    assert.equal(confirmUrlForFeed(url, A, [A]), url);
  });
});

describe('redaction: a part\'s media type and Content-ID (L1)', () => {
  const mediaType = /^[a-z0-9!#$&^_.+-]+\/[a-z0-9!#$&^_.+-]+$/;

  it('redacts the secret from a binary part\'s media type and Content-ID, and keeps the type valid', () => {
    const bytes = randomBytes(3000, 12);
    const out = redactPart(part(bytes, `application/x-${B.inboxToken}`, { contentId: `${B.inboxToken}@example.com`, filename: 'data.bin' }), [A, B]);
    assert.equal(out.contentType, 'application/x-redacted');
    assert.equal(out.contentId, 'redacted@example.com');
    assert.ok(out.content?.equals(bytes), 'the bytes carry no secret, so they are still offered');
  });

  it('keeps a media type valid when the secret takes the whole of it, and treats the bytes by the type as sent', () => {
    for (const type of [`${B.inboxToken}/${B.feedToken}`, `text/${Buffer.from(B.inboxToken).toString('base64').toLowerCase().replace(/=/g, '')}`, `text/x-${B.feedToken.toUpperCase()}`]) {
      const out = redactPart(part(Buffer.from(`Hello ${B.inboxToken}`), type.toLowerCase()), [A, B]);
      assert.match(out.contentType, mediaType, type);
      assert.ok(!out.contentType.includes(B.inboxToken) && !out.contentType.includes(B.feedToken), type);
      assert.deepEqual(leaksOf(out.contentType, B.inboxToken), [], type);
    }
    const text = redactPart(part(Buffer.from(`Hello ${B.inboxToken}`), `text/x-${B.inboxToken}`), [A, B]);
    assert.equal(text.contentType, 'text/x-redacted');
    assert.equal(text.content!.toString('utf8'), 'Hello redacted', 'still decoded and redacted as text');
  });

  it('leaves a media type and Content-ID without a secret as they are', () => {
    const out = redactPart(part(randomBytes(100, 13), 'image/png', { contentId: 'logo@news.example.com', inline: true }), [A, B]);
    assert.equal(out.contentType, 'image/png');
    assert.equal(out.contentId, 'logo@news.example.com');
  });

  it('redacts a Content-ID the same way as the HTML that references it, so the inline image still resolves', () => {
    for (const cid of [`${B.inboxToken}@example.com`, `img.${B.inboxToken.toUpperCase()}.1`]) {
      const out = redactPart(part(randomBytes(100, 14), 'image/png', { contentId: cid, inline: true }), [A, B]);
      assert.ok(!out.contentId!.toLowerCase().includes(B.inboxToken));
      assert.equal(redactor([A, B])(`<img src="cid:${cid}">`), `<img src="cid:${out.contentId}">`);
    }
  });

  it('redacts the type and Content-ID of a part that is withheld or too big to keep', () => {
    const withheld = redactPart(part(Buffer.from(`%PDF ${B.inboxToken}`), `application/x-${B.inboxToken}`, { contentId: B.inboxToken }), [A, B]);
    assert.equal(withheld.content, null);
    assert.equal(withheld.contentType, 'application/x-redacted');
    assert.equal(withheld.contentId, 'redacted');
    const dropped = redactPart(part(Buffer.alloc(0), `application/x-${B.inboxToken}`, { content: null, contentId: `<${B.inboxToken}>` }), [A, B]);
    assert.equal(dropped.contentType, 'application/x-redacted');
    assert.equal(dropped.contentId, '<redacted>');
  });
});

/** Quoted-printable and Q-encoded text decoded: `=XX` in either case, soft breaks removed. */
function qpDecoded(s: string): string {
  return s.replace(/=\r?\n/g, '').replace(/=([0-9a-f]{2})/gi, (_, h: string) => String.fromCharCode(parseInt(h, 16)));
}

/** Every character as a quoted-printable escape, in the given hex case. */
function qpEscaped(s: string, upper: boolean): string {
  return [...Buffer.from(s)].map((b) => `=${upper ? b.toString(16).toUpperCase() : b.toString(16)}`).join('');
}

describe('redaction: quoted-printable and encoded words in forwarded messages (L2)', () => {
  const redact = redactor([A, B]);

  it('redacts any token written as quoted-printable escapes, in either hex case and mixed with plain characters', () => {
    const rng = prng(77);
    const alphabet = 'abcdefghijklmnopqrstuvwxyz234567';
    for (let n = 0; n < 300; n++) {
      const token = Array.from({ length: 26 }, () => alphabet[Math.floor(rng() * 32)]).join('');
      const r = redactor({ inboxToken: token, feedToken: B.feedToken });
      const forms = [qpEscaped(token, true), qpEscaped(token, false), [...token].map((c) => (rng() < 0.5 ? qpEscaped(c, rng() < 0.5) : c)).join('')];
      for (const form of forms) {
        assert.equal(r(`Subject: =?utf-8?Q?Hi_${form}?=`), 'Subject: =?utf-8?Q?Hi_redacted?=', `${token}: ${form}`);
        assert.equal(r(`email=3D${form}=40feedmail.test`), 'email=3Dredacted=40feedmail.test', `${token}: ${form}`);
      }
    }
  });

  it('still redacts a token that starts with hex digits right after an `=`', () => {
    assert.ok(/^[0-9a-f]{2}/.test(A.inboxToken), 'the test token really starts with an escape-like pair');
    assert.equal(redact(`https://example.com/u?email=${A.inboxToken}@feedmail.test`), 'https://example.com/u?email=redacted@feedmail.test');
    assert.equal(redact(`a==${A.inboxToken}`), 'a==redacted');
  });

  it('redacts a forwarded .eml whose Q-encoded header and quoted-printable body carry the address', () => {
    const qp = qpEscaped(`${B.inboxToken}@feedmail.test`, true);
    const body = `Hello,=0D=0Ayour address is ${qp}.=0D=0A`;
    // Wrapped with soft breaks every 72 characters, some inside an escape (`=7=\r\n2`): decoders remove soft breaks first.
    const wrapped = body.replace(/.{72}/g, '$&=\r\n');
    assert.match(wrapped, /=[0-9A-F]=\r\n/, 'the test input really splits an escape');
    const eml = [
      'From: colleague@example.com', `To: =?utf-8?Q?${qp}?=`, `Subject: =?utf-8?q?${qpEscaped(B.inboxToken, false)}?=`, 'MIME-Version: 1.0',
      'Content-Type: text/plain; charset=utf-8', 'Content-Transfer-Encoding: quoted-printable', '', wrapped, '',
    ].join('\r\n');
    assert.ok(qpDecoded(eml).includes(B.inboxToken), 'the test input really carries the address');
    const out = redactPart(part(Buffer.from(eml), 'message/rfc822', { filename: 'fw.eml' }), [A, B]);
    const text = out.content!.toString('utf8');
    assert.ok(!qpDecoded(text).toLowerCase().includes(B.inboxToken), text);
    assert.ok(text.includes(`To: =?utf-8?Q?redacted${qpEscaped('@feedmail.test', true)}?=\r\n`), 'only the token is replaced');
    assert.ok(text.includes('Subject: =?utf-8?q?redacted?=\r\n'));
    assert.match(qpDecoded(text.slice(text.indexOf('\r\n\r\n'))), /your address is redacted@feedmail\.test\./);
    assert.match(text, /^From: colleague@example\.com\r$/m, 'the rest of the message is as sent');
  });

  it('redacts a B-encoded word carrying the address in a forwarded .eml, at every alignment', () => {
    for (const before of ['', 'a', 'ab', 'Fwd: your address ']) {
      const word = (s: string) => `=?utf-8?B?${Buffer.from(s).toString('base64')}?=`;
      const eml = `From: colleague@example.com\r\nTo: ${word(`Subscriber <${B.inboxToken}@feedmail.test>`)}\r\nSubject: ${word(`${before}${B.inboxToken}`)}\r\n\r\nhi\r\n`;
      const out = redactPart(part(Buffer.from(eml), 'message/rfc822', { filename: 'fw.eml' }), [A, B]).content!.toString('utf8');
      for (const header of out.split('\r\n').slice(1, 3)) {
        const encoded = header.slice(header.indexOf('?B?') + 3, header.lastIndexOf('?='));
        assert.deepEqual(leaksOf(encoded, B.inboxToken), [], header);
      }
      assert.match(out, /^From: colleague@example\.com\r\nTo: =\?utf-8\?B\?[^?]*\?=\r\nSubject: =\?utf-8\?B\?[^?]*\?=\r\n\r\nhi\r\n$/);
    }
  });

  it('reads 9 MB of quoted-printable escapes in one stretch without throwing, and leaves it as it was', () => {
    const input = '=3D'.repeat(3_000_000);
    assert.equal(redact(input), input);
  });
});

/** Each character as an HTML numeric character reference, in the given form. */
function references(s: string, form: 'decimal' | 'hex' | 'HEX' | 'padded' | 'bare'): string {
  return [...s].map((c) => {
    const code = c.charCodeAt(0);
    if (form === 'decimal') return `&#${code};`;
    if (form === 'hex') return `&#x${code.toString(16)};`;
    if (form === 'HEX') return `&#X${code.toString(16).toUpperCase()};`;
    if (form === 'padded') return `&#x000${code.toString(16)};`;
    // Without the `;`, which browsers accept for numeric references.
    return `&#00${code}`;
  }).join('');
}

/** HTML numeric character references decoded, as a browser reads them. */
function referencesDecoded(s: string): string {
  return s.replace(/&#(?:x([0-9a-f]+)|([0-9]+));?/gi, (_, h?: string, d?: string) => String.fromCodePoint(h ? parseInt(h, 16) : parseInt(d!, 10)));
}

describe('redaction: character references, hard wraps and JavaScript escapes in text attachments', () => {
  const redact = redactor([A, B]);

  it('redacts an address written as HTML numeric character references, decimal or hex, in any case, padded or without `;`', () => {
    for (const form of ['decimal', 'hex', 'HEX', 'padded', 'bare'] as const) {
      const html = `<a href="mailto:${references(B.inboxToken, form)}&#64;feedmail.test">Write to us</a>`;
      assert.ok(referencesDecoded(html).includes(B.inboxToken), `the ${form} test input really carries the address`);
      assert.equal(redact(html), '<a href="mailto:redacted&#64;feedmail.test">Write to us</a>', form);
    }
    const mixed = [...A.feedToken].map((c, i) => (i % 3 === 0 ? references(c, 'hex') : i % 3 === 1 ? c : references(c, 'decimal'))).join('');
    assert.equal(redact(`<p>${mixed}</p>`), '<p>redacted</p>', 'mixed with plain characters');
  });

  it('redacts an HTML attachment and a forwarded message\'s HTML body that write the address as references', () => {
    const html = `<html><body><p>Unsubscribe: <a href="mailto:${references(`${B.inboxToken}@feedmail.test`, 'hex')}">here</a></p></body></html>`;
    const page = redactPart(part(Buffer.from(html), 'text/html', { filename: 'page.html', charset: 'utf-8' }), [A, B]).content!.toString('utf8');
    assert.ok(!referencesDecoded(page).includes(B.inboxToken), page);
    assert.match(page, /^<html><body><p>Unsubscribe: <a href="mailto:redacted&#x40;/);
    const eml = `From: a@example.com\r\nContent-Type: text/html\r\n\r\n<p>${references(B.feedToken, 'decimal')}</p>\r\n`;
    const forwarded = redactPart(part(Buffer.from(eml), 'message/rfc822', { filename: 'fw.eml' }), [A, B]).content!.toString('utf8');
    assert.equal(forwarded, 'From: a@example.com\r\nContent-Type: text/html\r\n\r\n<p>redacted</p>\r\n');
  });

  it('redacts a token hard-wrapped by a bare line break, CRLF, LF or CR, and still one folded with a space', () => {
    for (const br of ['\r\n', '\n', '\r', '\r\n\r\n', '\r\n ', '\n\t']) {
      const text = `Unsubscribe: https://example.com/u?e=${B.inboxToken.slice(0, 10)}${br}${B.inboxToken.slice(10)}%40feedmail.test\r\nThanks`;
      assert.equal(redact(text), 'Unsubscribe: https://example.com/u?e=redacted%40feedmail.test\r\nThanks', JSON.stringify(br));
    }
    const wrapped = `Your feed: ${B.feedToken.slice(0, 3)}\n${B.feedToken.slice(3, 20)}\r\n${B.feedToken.slice(20)}.`;
    assert.equal(redactPart(part(Buffer.from(wrapped), 'text/plain'), [A, B]).content!.toString('utf8'), 'Your feed: redacted.');
  });

  it('redacts a token written with JavaScript or JSON escapes in .txt and .json parts', () => {
    const u = (s: string) => [...s].map((c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`).join('');
    const x = (s: string) => [...s].map((c) => `\\x${c.charCodeAt(0).toString(16).toUpperCase()}`).join('');
    const braces = (s: string) => [...s].map((c) => `\\u{${c.charCodeAt(0).toString(16)}}`).join('');
    const json = `{"email":"${u(B.inboxToken)}@feedmail.test","feed":"${u(B.feedToken.toUpperCase())}"}`;
    assert.equal(JSON.parse(json).email, `${B.inboxToken}@feedmail.test`, 'the test input really is JSON for the address');
    const out = redactPart(part(Buffer.from(json), 'application/json', { filename: 'data.json' }), [A, B]).content!.toString('utf8');
    assert.equal(out, '{"email":"redacted@feedmail.test","feed":"redacted"}');
    const script = `var e = "${x(B.inboxToken)}", f = "${braces(A.inboxToken)}";\n`;
    const txt = redactPart(part(Buffer.from(script), 'text/plain', { filename: 'snippet.txt' }), [A, B]).content!.toString('utf8');
    assert.equal(txt, 'var e = "redacted", f = "redacted";\n');
  });

  it('leaves ordinary text with entities, escapes and line breaks as it is', () => {
    const ordinary = [
      '<p>Fish &amp; chips &#169; 2026 &#x2014; &#X41;&#66 caf&eacute; &#; &#x; &#xZZ; &commat;</p>',
      'Line one\r\nline two\nline three\rline four\r\n folded', '{"s":"\\u00e9\\u{1F600}\\x41\\uZZ\\x4","t":"\\\\n"}',
      `${A.inboxToken.slice(0, 20)}\r\nnot the rest`, '&'.repeat(1000), '&#'.repeat(1000), `&#${'0'.repeat(10_000)}`, '\\u{'.repeat(1000),
    ];
    for (const text of ordinary) assert.equal(redact(text), text);
  });

  // How long 9 MB of references takes is measured by bench/redact.ts ("'&#65;' repeated"), not asserted here.
  it('reads a reference with a million leading zeros, and leaves 9 MB of references as they are', () => {
    const zeros = `mailto:&#x${'0'.repeat(1_000_000)}${B.inboxToken.charCodeAt(0).toString(16)};${B.inboxToken.slice(1)}@feedmail.test`;
    assert.equal(redact(zeros), 'mailto:redacted@feedmail.test');
    const many = '&#65;'.repeat(1_800_000);
    assert.equal(redact(many), many);
  });
});
