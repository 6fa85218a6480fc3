/**
 * The little intake needs from a message before it is journaled: the From: addresses
 * (sender rules match them) and the subject (the owner's recent deliveries show it).
 * Only the header is read, and at most HEAD_MAX_BYTES of it; every step is a plain loop
 * or a regular expression without nested repetition, and nothing here throws: a header
 * that cannot be read gives no addresses and no subject.
 */
import iconv from 'iconv-lite';

/**
 * Bytes of a message looked at for its header; what lies past them is never read. Large,
 * so that padding (long display names, comments, many headers) cannot push a From: address
 * out of sight of the sender rules; a header longer still is judged again when the message
 * is processed, by the parser that makes the entry (see ingest.ts).
 */
export const HEAD_MAX_BYTES = 1024 * 1024;
/** From: addresses kept, all From: headers together. */
const MAX_FROM_ADDRESSES = 1000;
/** Characters of a header value looked at: all of it, within the header's bound. */
const MAX_VALUE_CHARS = HEAD_MAX_BYTES;
/** Characters of the subject kept. */
export const SUBJECT_MAX_CHARS = 200;
/** An address longer than this is no address (RFC 5321's path limit). */
const MAX_ADDRESS_CHARS = 254;

export interface MessageHead {
  /** Lowercase addresses of every From: header, in order, at most MAX_FROM_ADDRESSES. */
  from: string[];
  /** Decoded, one line, at most SUBJECT_MAX_CHARS characters; null when there is no Subject: header. */
  subject: string | null;
  /** The header runs past HEAD_MAX_BYTES, so what lies past the bound was not read. */
  cut: boolean;
}

export function readHead(raw: Buffer): MessageHead {
  try {
    return headOf(raw);
  } catch {
    return { from: [], subject: null, cut: true };
  }
}

function headOf(raw: Buffer): MessageHead {
  // latin1 keeps every byte as one character, so positions are byte positions and 8-bit
  // values survive to be decoded as UTF-8 below.
  const text = raw.subarray(0, HEAD_MAX_BYTES).toString('latin1');
  let end = text.length;
  for (const blank of ['\n\n', '\n\r\n']) {
    const at = text.indexOf(blank);
    if (at !== -1 && at < end) end = at;
  }
  // Cut short by the bound: the last line may be incomplete, so it is not read.
  const cut = end === text.length && raw.length > HEAD_MAX_BYTES;
  if (cut) end = Math.max(0, text.lastIndexOf('\n'));
  const from: string[] = [];
  let subject: string | null = null;
  let name = '';
  let value = '';
  const take = () => {
    if (name === 'from') for (const a of addressesOf(value)) if (from.length < MAX_FROM_ADDRESSES) from.push(a);
    if (name === 'subject' && subject === null) subject = cleanSubject(value);
  };
  for (const line of text.slice(0, end).split('\n')) {
    const l = line.endsWith('\r') ? line.slice(0, -1) : line;
    if (l.startsWith(' ') || l.startsWith('\t')) {
      // A folded line continues the header before it.
      if (name && value.length < MAX_VALUE_CHARS) value += l;
      continue;
    }
    take();
    const colon = l.indexOf(':');
    name = colon > 0 ? l.slice(0, colon).trim().toLowerCase() : '';
    value = colon > 0 ? l.slice(colon + 1) : '';
  }
  take();
  return { from, subject, cut };
}

/** A latin1 string of header bytes as text: UTF-8 when the bytes are valid UTF-8 (SMTPUTF8 mail), else as they are. */
function bytesAsText(s: string): string {
  if (!/[^\u0000-\u007f]/.test(s)) return s;
  try {
    return new TextDecoder('utf-8', { fatal: true }).decode(Buffer.from(s, 'latin1'));
  } catch {
    return s;
  }
}

const ENCODED_WORD = /=\?([^?\s]{1,64})\?([bBqQ])\?([^?\s]*)\?=/g;

/** Decodes RFC 2047 encoded words; one that cannot be decoded stays as it is. */
function decodeWords(s: string): string {
  // Whitespace between two encoded words is not part of the text.
  return s.replace(/\?=[ \t]+=\?/g, '?==?').replace(ENCODED_WORD, (word, charset: string, encoding: string, data: string) => {
    try {
      const cs = charset.split('*')[0]!.toLowerCase();
      if (!iconv.encodingExists(cs)) return word;
      const bytes = encoding.toLowerCase() === 'b'
        ? Buffer.from(data, 'base64')
        : Buffer.from(data.replace(/_/g, ' ').replace(/=([0-9a-fA-F]{2})/g, (_m, hex: string) => String.fromCharCode(parseInt(hex, 16))), 'latin1');
      return iconv.decode(bytes, cs);
    } catch {
      return word;
    }
  });
}

/** A subject as one plain line: decoded, without control or direction-changing characters, bounded. */
function cleanSubject(value: string): string {
  const decoded = decodeWords(bytesAsText(value.slice(0, MAX_VALUE_CHARS)));
  const line = decoded.replace(/[\u0000-\u001f\u007f-\u009f\u200e\u200f\u202a-\u202e\u2066-\u2069\ufeff]/g, ' ').replace(/\s+/g, ' ').trim();
  const chars = Array.from(line);
  return chars.length > SUBJECT_MAX_CHARS ? `${chars.slice(0, SUBJECT_MAX_CHARS - 1).join('')}…` : line;
}

/**
 * The addresses of an address-list header value, every member of the list: of a member
 * with an address in angle brackets that address, of any other the words holding an '@'
 * (`"A" <a@b.example>, c@d.example` is both). Comments are dropped and quoted strings
 * (display names) cannot contribute an address, so `"a@b.example" <c@d.example>` is
 * c@d.example. Members are separated by ',' (and a group's ';') outside angle brackets.
 */
export function addressesOf(value: string): string[] {
  const s = bytesAsText(value.slice(0, MAX_VALUE_CHARS));
  let plain = '';
  let depth = 0;
  let quoted = false;
  for (let i = 0; i < s.length; i++) {
    const c = s[i]!;
    if (c === '\\' && (quoted || depth > 0)) {
      i++;
      continue;
    }
    if (quoted) {
      if (c === '"') quoted = false;
      continue;
    }
    if (depth > 0) {
      if (c === '(') depth++;
      else if (c === ')') depth--;
      continue;
    }
    if (c === '"') {
      quoted = true;
      plain += 'q';
    } else if (c === '(') {
      depth = 1;
      plain += ' ';
    } else {
      plain += c;
    }
  }
  const candidates: string[] = [];
  // Quoted strings and comments are gone, so the only ',' that does not separate members is
  // one inside a source route (<@a,@b:user@host>).
  for (const member of plain.match(/(?:<[^<>]*>?|[^,;<])+/g) ?? []) {
    const angled = [...member.matchAll(/<([^<>]*)>/g)].map((m) => m[1]!);
    candidates.push(...(angled.length > 0 ? angled : member.split(/[\s,;:<>]+/)));
  }
  const out: string[] = [];
  for (const c of candidates) {
    // A source route (<@relay:user@host>) is not part of the address. Encoded words have no
    // place in an address, but mail clients write them there (an IDN as x@=?utf-8?q?b=C3=BCcher?=.de)
    // and parsers decode them, so they are decoded here too; control characters are dropped as parsers do.
    const address = decodeWords(c.replace(/^.*:/, '')).replace(/[\u0000-\u001f\u007f]/g, '').trim().toLowerCase();
    const at = address.lastIndexOf('@');
    if (at <= 0 || at === address.length - 1 || address.length > MAX_ADDRESS_CHARS || /\s/.test(address)) continue;
    if (!out.includes(address)) out.push(address);
  }
  return out;
}
