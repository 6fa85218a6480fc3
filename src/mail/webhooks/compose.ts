/**
 * Rebuilds a MIME message from the parsed fields a provider posts when it does not
 * send the raw message (Postmark without RawEmail, Mailgun's and SendGrid's parsed
 * forms), so those deliveries take the same path as raw ones.
 *
 * The output is deterministic: the same fields give the same bytes (boundaries are
 * derived from the content, no Date or Message-ID is invented), so a provider's
 * retry of the same delivery is recognised by ingest as the same message (one entry
 * per feed for byte-identical raw mail, store/entries.ts).
 */
import { createHash } from 'node:crypto';

export interface TextBody {
  content: Buffer;
  /** The charset the bytes are in, e.g. utf-8. */
  charset: string;
}

export interface Attachment {
  filename: string;
  contentType: string;
  content: Buffer;
  /** Set for an inline image the HTML refers to as cid:<contentId> (without angle brackets). */
  contentId?: string;
}

export interface Composition {
  /** The message's own headers in order (From, To, Subject, Date, Message-ID, Received…); MIME structure headers are dropped. */
  headers: [string, string][];
  text?: TextBody;
  html?: TextBody;
  attachments: Attachment[];
}

/** Headers that describe the original MIME structure, which the rebuilt message replaces with its own. */
const STRUCTURAL = new Set(['content-type', 'content-transfer-encoding', 'mime-version', 'content-length', 'content-disposition', 'content-id']);

export function composeMessage(c: Composition): Buffer {
  const hash = createHash('sha256');
  for (const [name, value] of c.headers) hash.update(`${name}\0${value}\0`);
  for (const part of [c.text, c.html]) hash.update(part ? part.content : Buffer.alloc(0)).update(`\0${part?.charset ?? ''}\0`);
  for (const a of c.attachments) hash.update(`${a.filename}\0${a.contentType}\0${a.contentId ?? ''}\0`).update(a.content);
  const seed = hash.digest('hex').slice(0, 24);
  let boundaries = 0;
  // "=_" never starts a line of base64, the only body encoding used here.
  const boundary = () => `=_feedmail_${seed}_${boundaries++}`;

  const leaf = (contentType: string, content: Buffer, extra: string[] = []): string[] =>
    [`Content-Type: ${contentType}`, 'Content-Transfer-Encoding: base64', ...extra, '', ...base64Lines(content)];
  const multipart = (subtype: string, parts: string[][]): string[] => {
    const b = boundary();
    const lines = [`Content-Type: multipart/${subtype}; boundary="${b}"`, ''];
    for (const part of parts) lines.push(`--${b}`, ...part);
    lines.push(`--${b}--`);
    return lines;
  };

  const texts = [
    c.text && leaf(`text/plain; charset=${mimeToken(c.text.charset)}`, c.text.content),
    c.html && leaf(`text/html; charset=${mimeToken(c.html.charset)}`, c.html.content),
  ].filter((p): p is string[] => p !== undefined);
  let body = texts.length === 0 ? leaf('text/plain; charset=utf-8', Buffer.alloc(0)) : texts.length === 1 ? texts[0]! : multipart('alternative', texts);
  const attachmentPart = (a: Attachment, inline: boolean) => leaf(`${mimeToken(a.contentType, 'application/octet-stream')}; name=${quoted(a.filename)}`, a.content, [
    `Content-Disposition: ${inline ? 'inline' : 'attachment'}; filename=${quoted(a.filename)}`,
    ...(a.contentId ? [`Content-ID: <${headerValue(a.contentId).replace(/[<>\s]/g, '')}>`] : []),
  ]);
  const inline = c.attachments.filter((a) => a.contentId);
  const attached = c.attachments.filter((a) => !a.contentId);
  if (inline.length > 0) body = multipart('related', [body, ...inline.map((a) => attachmentPart(a, true))]);
  if (attached.length > 0) body = multipart('mixed', [body, ...attached.map((a) => attachmentPart(a, false))]);

  const head = c.headers
    .filter(([name]) => /^[!-9;-~]+$/.test(name) && !STRUCTURAL.has(name.toLowerCase()))
    .map(([name, value]) => `${name}: ${headerValue(value)}`);
  return Buffer.from([...head, 'MIME-Version: 1.0', ...body, ''].join('\r\n'), 'utf8');
}

/** An address as a header shows it: `"Name" <address>`, or the address alone. */
export function formatAddress(address: string, name?: string): string {
  return name ? `${quoted(name, false)} <${address}>` : address;
}

/** A header value on one line, words with non-ASCII characters as RFC 2047 encoded words. */
function headerValue(value: string): string {
  return value.replace(/[\r\n]+[ \t]*/g, ' ').replace(/\S*[^\x00-\x7f]\S*/g, (word) => {
    // Keep the address or quote around the word readable to the parser: encode only the word's text.
    const m = /^([<"(]*)(.*?)([>")]*)$/.exec(word)!;
    return `${m[1]}=?UTF-8?B?${Buffer.from(m[2]!, 'utf8').toString('base64')}?=${m[3]}`;
  });
}

/**
 * A quoted string for a display name or (`param`) a header parameter; non-ASCII text as
 * an encoded word, bare in a display name (RFC 2047), quoted in a parameter (as mail
 * programs write file names).
 */
function quoted(text: string, param = true): string {
  const clean = text.replace(/[\r\n]+/g, ' ');
  if (/[^\x00-\x7f]/.test(clean)) {
    const word = `=?UTF-8?B?${Buffer.from(clean, 'utf8').toString('base64')}?=`;
    return param ? `"${word}"` : word;
  }
  return `"${clean.replace(/["\\]/g, '\\$&')}"`;
}

/** A content type or charset as given when it is a plain token, else the fallback. */
function mimeToken(value: string, fallback = 'utf-8'): string {
  const v = value.trim().toLowerCase();
  return /^[a-z0-9!#$&^_.+-]+(\/[a-z0-9!#$&^_.+-]+)?$/.test(v) ? v : fallback;
}

function base64Lines(content: Buffer): string[] {
  const text = content.toString('base64');
  const lines: string[] = [];
  for (let i = 0; i < text.length; i += 76) lines.push(text.slice(i, i + 76));
  return lines;
}
