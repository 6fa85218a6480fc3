/**
 * MIME parsing: raw RFC 5322 bytes in, the pieces an entry needs out. Charsets,
 * transfer encodings, encoded words, format=flowed and forwarded messages are
 * handled by mailparser; this module decides what becomes the body, which
 * parts are inline images and which are attachments.
 */
import { simpleParser, type AddressObject, type Attachment } from 'mailparser';

export interface ParsedPart {
  content: Buffer | null;
  contentType: string;
  filename: string;
  contentId: string | null;
  inline: boolean;
  size: number;
}

export interface ParsedMessage {
  subject: string;
  fromName: string;
  fromAddress: string;
  sentAt: number | null;
  /** Unsanitized HTML (from the HTML part, or the text part turned into HTML). */
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

/** Parses a message; never throws on bad input, it degrades to what can be recovered. */
export async function parseMessage(raw: Buffer, limits: ParseLimits): Promise<ParsedMessage> {
  let mail;
  try {
    mail = await simpleParser(raw, {
      keepCidLinks: true,
      defaultInlineEmbedded: true,
      maxChildNodes: 500,
      maxHtmlLengthToParse: 5_000_000,
      checksumAlgo: false,
    });
  } catch (err) {
    return recoverUnparsable(raw, err);
  }

  const from = firstAddress(mail.from);
  const html = typeof mail.html === 'string' && mail.html.trim() !== '' ? mail.html : (mail.textAsHtml ?? '');
  const text = mail.text ?? '';
  const sentAt = mail.date && !Number.isNaN(mail.date.getTime()) ? mail.date.getTime() : null;
  const parts = mail.attachments.slice(0, MAX_PARTS).map((a, i) => toPart(a, i, limits));
  const notes: string[] = [];
  if (mail.attachments.length > MAX_PARTS) notes.push(`Only the first ${MAX_PARTS} of ${mail.attachments.length} attachments were kept.`);
  const dropped = parts.filter((p) => p.content === null).length;
  if (dropped > 0) notes.push(`${dropped} attachment(s) larger than ${limits.maxPartBytes} bytes were not kept.`);

  return {
    subject: oneLine(mail.subject ?? ''),
    fromName: oneLine(from?.name ?? ''),
    fromAddress: oneLine(from?.address ?? ''),
    sentAt,
    html,
    text,
    parts,
    note: notes.length ? notes.join(' ') : null,
  };
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
  };
}

function safeContentType(type: string | undefined): string {
  const t = (type ?? '').toLowerCase().trim();
  return /^[a-z0-9!#$&^_.+-]+\/[a-z0-9!#$&^_.+-]+$/.test(t) ? t : 'application/octet-stream';
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

/** Last resort for input mailparser rejects: show the bytes as text, with a note. */
function recoverUnparsable(raw: Buffer, err: unknown): ParsedMessage {
  const text = raw.toString('utf8').replace(/\u0000/g, '');
  const subject = /^subject:[ \t]*(.*)$/im.exec(text)?.[1] ?? '';
  return {
    subject: oneLine(subject) || '(unreadable message)',
    fromName: '',
    fromAddress: '',
    sentAt: null,
    html: '',
    text,
    parts: [],
    note: `This message could not be parsed (${(err as Error)?.message ?? 'unknown error'}); its raw text is shown instead.`,
  };
}
