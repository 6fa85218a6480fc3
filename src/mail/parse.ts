/**
 * MIME parsing: raw RFC 5322 bytes in, the pieces an entry needs out. Charsets,
 * transfer encodings, encoded words, format=flowed and forwarded messages are
 * handled by mailparser; this module decides what becomes the body, which
 * parts are inline images and which are attachments.
 */
import type { NewPart } from '../store/entries.js';
import { simpleParser, type AddressObject, type Attachment, type ParsedMail } from 'mailparser';
import { headTable, headText } from './forwarded.js';
import { repairMime } from './mime-repair.js';
import { isTextLike, MEDIA_TYPE } from './redact.js';
import { textToHtml } from './text-html.js';

/** A part as the store keeps it; parsing produces exactly that shape. */
export type ParsedPart = NewPart;

export interface ParsedMessage {
  subject: string;
  fromName: string;
  fromAddress: string;
  sentAt: number | null;
  /** Unsanitized HTML of the HTML part(s); '' for a text-only message (shown by textToHtml). */
  html: string;
  text: string;
  parts: ParsedPart[];
  /** Set when the message could only be partly understood. */
  note: string | null;
}

export interface ParseLimits {
  maxPartBytes: number;
}

const MAX_PARTS = 200;
/** Above this size a message's text body is not turned into HTML by mailparser (see below). */
const LARGE_MESSAGE_BYTES = 1024 * 1024;

/**
 * Messages forwarded as attachments are shown too (parsed in turn), to this depth, this many
 * in all, and as long as the bytes parsed for them stay within MAX_FORWARDED_BYTES; beyond
 * that they stay downloadable attachments only.
 */
const MAX_FORWARD_DEPTH = 8;
const MAX_FORWARDED = 20;
const MAX_FORWARDED_BYTES = 16 * 1024 * 1024;

/** What showing the messages forwarded as attachments may still cost, shared by the whole message. */
interface ForwardBudget { messages: number; bytes: number }

/** Parses a message; never throws on bad input, it degrades to what can be recovered. */
export async function parseMessage(original: Buffer, limits: ParseLimits): Promise<ParsedMessage> {
  return parseAt(original, limits, 0, { messages: MAX_FORWARDED, bytes: MAX_FORWARDED_BYTES });
}

async function parseAt(original: Buffer, limits: ParseLimits, depth: number, budget: ForwardBudget): Promise<ParsedMessage> {
  // Boundaries, charsets and list footers that mail clients forgive are repaired first.
  const raw = repairMime(original);
  let mail;
  try {
    mail = await parseWithoutTextAsHtml(terminated(raw));
  } catch (err) {
    return recoverAsText(original, (err as Error)?.message ?? 'unknown error');
  }

  const from = firstAddress(mail.from);
  let html = typeof mail.html === 'string' && mail.html.trim() !== '' ? repairForwardedHeaders(mail.html) : '';
  let text = mail.text ?? '';
  const parts = mail.attachments.slice(0, MAX_PARTS).map((a, i) => toPart(a, i, limits));
  const notes: string[] = [];
  const forwarded = await attachedMessages(mail, limits, depth, budget);
  if (forwarded.length > 0) {
    // Shown after the message's own body, as mail clients show attached messages, each after
    // its header block; as text only when nothing in the message has HTML (as mailparser does).
    if (html === '' && forwarded.some((f) => f.parsed.html !== '')) html = textToHtml(text);
    for (const f of forwarded) {
      if (html !== '') html += `<br/>\n${f.headHtml}<br/>\n${f.parsed.html || textToHtml(f.parsed.text)}`;
      text += `\n${f.headText}\n${f.parsed.text}`;
      // The images its HTML shows; its other attachments stay inside the .eml.
      parts.push(...f.parsed.parts.filter((p) => p.inline));
    }
    parts.splice(MAX_PARTS);
  }
  const boundary = multipartBoundary(mail.headers.get('content-type'));
  if (boundary !== null) {
    // Decoding the whole body as text is needed only when nothing else came out of it.
    // (mailparser's textAsHtml, skipped by the parse below LARGE_MESSAGE_BYTES, is '<p>…' for every
    // message with a text part: there, "no text part" is what its emptiness told.)
    const noTextPart = raw.length > LARGE_MESSAGE_BYTES ? (mail.textAsHtml ?? '').trim() === '' : mail.text === undefined;
    const nothing = html === '' && noTextPart && text.trim() === '' && parts.length === 0;
    const body = nothing ? bodyOf(raw) : '';
    if (body.trim() !== '') {
      // A multipart message whose parts cannot be found (no or wrong boundary) would otherwise
      // come out empty; its body is still worth showing as it is.
      text = body;
      notes.push('The parts of this message could not be separated; its body is shown as it arrived.');
    } else if (boundary !== '' && !raw.includes(`--${boundary}--`)) {
      notes.push('This message seems to be incomplete: it ends before its last part.');
    }
  }
  if (mail.attachments.length > MAX_PARTS) notes.push(`Only the first ${MAX_PARTS} of ${mail.attachments.length} attachments were kept.`);
  const dropped = parts.filter((p) => p.content === null).length;
  if (dropped > 0) notes.push(`${dropped} attachment(s) larger than ${limits.maxPartBytes} bytes were not kept.`);

  return {
    subject: oneLine(mail.subject ?? ''),
    fromName: unquote(oneLine(from?.name ?? '')),
    fromAddress: oneLine(from?.address ?? ''),
    sentAt: sentAt(mail.headerLines),
    html,
    text,
    parts,
    note: notes.length ? notes.join(' ') : null,
  };
}

interface AttachedMessage {
  parsed: ParsedMessage;
  headHtml: string;
  headText: string;
}

/** The messages forwarded as attachments (message/rfc822 parts mailparser kept as attachments), parsed in turn. */
async function attachedMessages(mail: ParsedMail, limits: ParseLimits, depth: number, budget: ForwardBudget): Promise<AttachedMessage[]> {
  const out: AttachedMessage[] = [];
  if (depth >= MAX_FORWARD_DEPTH) return out;
  for (const a of mail.attachments.slice(0, MAX_PARTS)) {
    if (safeContentType(a.contentType) !== 'message/rfc822' || !Buffer.isBuffer(a.content)) continue;
    if (budget.messages <= 0) break;
    if (a.content.length > budget.bytes || a.content.length > limits.maxPartBytes) continue;
    budget.messages--;
    budget.bytes -= a.content.length;
    const parsed = await parseAt(a.content, limits, depth + 1, budget);
    const inner = await headersOf(a.content);
    out.push({ parsed, headHtml: headTable(inner.html), headText: headText(inner.text) });
  }
  return out;
}

/** The From/Date/Subject/To/Cc of a forwarded message, as HTML (mailparser's address markup) and as text. */
async function headersOf(eml: Buffer): Promise<{ html: Parameters<typeof headTable>[0]; text: Parameters<typeof headText>[0] }> {
  // Only the header block is read again: a few KB at most, so forwarded messages cost one full parse each.
  const ends = [eml.indexOf('\r\n\r\n'), eml.indexOf('\n\n')].filter((i) => i !== -1);
  const head = ends.length ? eml.subarray(0, Math.min(...ends)) : eml.subarray(0, 1024 * 1024);
  let mail: ParsedMail;
  try {
    mail = await simpleParser(Buffer.concat([head, Buffer.from('\r\n\r\n')]), { skipTextToHtml: true, checksumAlgo: false });
  } catch {
    return { html: {}, text: {} };
  }
  const list = (a: AddressObject | AddressObject[] | undefined, form: 'html' | 'text') =>
    (Array.isArray(a) ? a : a ? [a] : []).map((x) => x[form]).join(', ');
  const dateLine = mail.headerLines.find((h) => h.key === 'date')?.line;
  const t = sentAt(mail.headerLines);
  const date = t === null ? oneLine(dateLine?.replace(/^date:\s*/i, '') ?? '') : new Date(t).toUTCString();
  const subject = oneLine(mail.subject ?? '');
  return {
    html: { fromHtml: list(mail.from, 'html'), toHtml: list(mail.to, 'html'), ccHtml: list(mail.cc, 'html'), subject, date },
    text: { from: oneLine(list(mail.from, 'text')), to: oneLine(list(mail.to, 'text')), cc: oneLine(list(mail.cc, 'text')), subject, date },
  };
}

const PARSER_OPTIONS = {
  keepCidLinks: true,
  defaultInlineEmbedded: true,
  maxChildNodes: 500,
  maxHtmlLengthToParse: 5_000_000,
  checksumAlgo: false,
} as const;

/** What mailparser puts between the pieces of a message's HTML (its own text parts made HTML among them). */
const HTML_PIECES_JOINED_BY = '<br/>\n';

/**
 * mailparser's text-to-HTML (escaping and linkifying a text part) serves two things: its
 * `textAsHtml`, which nothing here uses, and the HTML of a message whose text parts sit beside
 * HTML parts outside a multipart/alternative (a text part then a forwarded HTML part). It cost
 * 40% of parsing a newsletter (bench/results/profile-processing-2026-11-27.txt), so the first
 * parse skips it. Skipped, a text part of that second kind leaves an empty piece in the HTML
 * (mailparser joins the pieces with a `<br/>` line, and never adds an empty HTML part); only a
 * message whose HTML shows that mark, or ends or starts with the joining line of its own, is
 * parsed again in full, so what comes out is the same as with one full parse.
 *
 * mailparser's own text-to-HTML of a big text body runs to several copies of it: on
 * megabytes of '&' that exhausted the processing thread's heap. Big text bodies are turned
 * into HTML by textToHtml instead (from the capped text), so those are never parsed in full.
 */
async function parseWithoutTextAsHtml(raw: Buffer): Promise<ParsedMail> {
  const mail = await simpleParser(raw, { ...PARSER_OPTIONS, skipTextToHtml: true });
  if (raw.length > LARGE_MESSAGE_BYTES || typeof mail.html !== 'string') return mail;
  const html = mail.html;
  const emptyPiece = html === '' || html.startsWith(HTML_PIECES_JOINED_BY) || html.endsWith(HTML_PIECES_JOINED_BY) || html.includes(HTML_PIECES_JOINED_BY + HTML_PIECES_JOINED_BY);
  return emptyPiece ? simpleParser(raw, { ...PARSER_OPTIONS, skipTextToHtml: false }) : mail;
}

/**
 * mailparser never settles (no error, no result) when the input ends inside the header
 * block of an embedded message/rfc822, as a truncated forward does. A final blank line
 * closes any open header block; after a complete message it is harmless epilogue. Only
 * messages that embed one get it, so that no other message changes.
 */
function terminated(raw: Buffer): Buffer {
  const tail = raw.subarray(-4).toString('latin1');
  if (tail.endsWith('\n\n') || tail.endsWith('\n\r\n') || !/rfc822/i.test(raw.toString('latin1'))) return raw;
  return Buffer.concat([raw, Buffer.from('\r\n\r\n')]);
}

/** mailparser turns a date it cannot read into "now"; an unknown date is better left unknown. */
function sentAt(headerLines: readonly { key: string; line: string }[]): number | null {
  const line = headerLines.find((h) => h.key === 'date')?.line;
  if (!line) return null;
  const t = new Date(line.replace(/^date:\s*/i, '').replace(/\s+/g, ' ').trim()).getTime();
  return Number.isNaN(t) ? null : t;
}

/** `{ value, params }` of a multipart Content-Type: its boundary ('' when missing), else null. */
function multipartBoundary(header: unknown): string | null {
  if (typeof header !== 'object' || header === null) return null;
  const { value, params } = header as { value?: string; params?: Record<string, string> };
  if (!value?.toLowerCase().startsWith('multipart/')) return null;
  return params?.boundary ?? '';
}

function bodyOf(raw: Buffer): string {
  const text = raw.toString('utf8').replace(/\u0000/g, '');
  const m = /\r?\n\r?\n/.exec(text);
  return m ? text.slice(m.index + m[0].length) : '';
}

/**
 * mailparser shows the headers of a forwarded message in a table it does not close
 * (`<td></tr>` and a final `<table>` where `</td></tr>` and `</table>` belong), which
 * pulls the forwarded body into the table. Only its own exact markup is repaired.
 */
function repairForwardedHeaders(html: string): string {
  // Each table runs to the first `</tr><table>` after it, found by one forward search: a lazy
  // pattern rescanned to the end of the message for every unterminated table (quadratic).
  const OPEN = '<table class="mp_head">';
  const CLOSE = '</tr><table>';
  let out = '';
  let at = 0;
  for (;;) {
    const start = html.indexOf(OPEN, at);
    if (start < 0) break;
    const end = html.indexOf(CLOSE, start + OPEN.length);
    if (end < 0) break;
    const table = html.slice(start, end + CLOSE.length - '<table>'.length);
    out += html.slice(at, start) + table.replace(/<td><\/tr>/g, '</td></tr>') + '</table>';
    at = end + CLOSE.length;
  }
  return at === 0 ? html : out + html.slice(at);
}

/** Display names sometimes carry their quotes inside an encoded word: `=?utf-8?B?Ikphbm8i?=`. */
function unquote(name: string): string {
  return /^"[^"]*"$/.test(name) ? name.slice(1, -1).trim() : name;
}

function firstAddress(from: AddressObject | undefined): { name: string; address: string } | undefined {
  const v = from?.value?.[0];
  if (!v) return undefined;
  // A group has no address of its own; take its first member.
  if (!v.address && v.group?.[0]) return { name: v.group[0].name ?? '', address: v.group[0].address ?? '' };
  return { name: v.name ?? '', address: v.address ?? '' };
}

function toPart(a: Attachment, index: number, limits: ParseLimits): ParsedPart {
  const contentType = safeContentType(a.contentType);
  const size = a.size ?? a.content.length;
  const contentId = a.contentId ? a.contentId.replace(/^<|>$/g, '').trim() || null : (a.cid ?? null);
  const isImage = contentType.startsWith('image/');
  return {
    content: size > limits.maxPartBytes ? null : a.content,
    contentType,
    filename: safeFilename(a.filename, index, contentType),
    contentId,
    // Images referenced from the HTML are shown in place; everything else is an attachment.
    inline: isImage && Boolean(contentId) && (a.related || a.contentDisposition === 'inline'),
    size,
    // Attachments keep their bytes as sent; redaction decodes text parts from this charset.
    charset: isTextLike(contentType) ? declaredCharset(a) : null,
  };
}

/** The charset parameter of a part's Content-Type header, or null. */
function declaredCharset(a: Attachment): string | null {
  const header = a.headers?.get('content-type');
  if (typeof header !== 'object' || header === null || !('params' in header)) return null;
  const charset = (header as { params?: Record<string, unknown> }).params?.charset;
  return typeof charset === 'string' && /^[a-z0-9._:()+-]{1,40}$/i.test(charset.trim()) ? charset.trim().toLowerCase() : null;
}

function safeContentType(type: unknown): string {
  // Typed as a string, but a part with a mangled Content-Type header can yield something else.
  const t = typeof type === 'string' ? type.toLowerCase().trim() : '';
  return MEDIA_TYPE.test(t) ? t : 'application/octet-stream';
}

const EXTENSIONS: Record<string, string> = {
  'image/png': 'png', 'image/jpeg': 'jpg', 'image/gif': 'gif', 'image/webp': 'webp',
  'application/pdf': 'pdf', 'text/calendar': 'ics', 'message/rfc822': 'eml', 'text/plain': 'txt',
};

/** A filename that is safe in a URL path and a Content-Disposition header. */
export function safeFilename(name: string | undefined, index: number, contentType: string): string {
  const cleaned = (name ?? '')
    .normalize('NFC')
    .replace(/[\u0000-\u001f\u007f/\\]/g, '')
    .replace(/^\.+/, '')
    .trim()
    .slice(0, 150);
  if (cleaned) return cleaned;
  return `part-${index + 1}.${EXTENSIONS[contentType] ?? 'bin'}`;
}

function oneLine(s: string): string {
  return s.replace(/[\r\n\t]+/g, ' ').replace(/\s{2,}/g, ' ').trim().slice(0, 1000);
}

/**
 * Last resort for input that cannot be parsed or processed in time: the bytes as
 * text, the subject if a Subject line can be found, and a note saying why.
 */
export function recoverAsText(raw: Buffer, reason: string): ParsedMessage {
  const text = raw.subarray(0, 1_000_000).toString('utf8').replace(/\u0000/g, '');
  const subject = /^subject:[ \t]*(.*)$/im.exec(text)?.[1] ?? '';
  return {
    subject: oneLine(subject) || '(unreadable message)',
    fromName: '',
    fromAddress: '',
    sentAt: null,
    html: '',
    text,
    parts: [],
    note: `This message could not be processed (${reason}); its raw text is shown instead.`,
  };
}
