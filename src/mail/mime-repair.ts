/**
 * Repairs, before parsing, the MIME mistakes real senders and lists make and mail clients
 * forgive: boundary lines written without their leading `--`, multipart/digest parts
 * without a Content-Type (a digest's parts are messages), 8-bit text with no charset
 * (UTF-8 if it is valid, else Windows-1252), a charset label that does not fit the bytes
 * (EUC-JP sent as ISO-2022-JP), and a plain-text footer a list appended after a base64 body.
 *
 * It works on the message's bytes (as latin1, one char per byte) and changes only headers,
 * boundary lines and the body of a repaired base64 part; a message that needs nothing
 * comes back as the same Buffer. It never throws: on any surprise the input is returned.
 */
import iconv from 'iconv-lite';

const MAX_DEPTH = 20;
const MAX_ENTITIES = 500;

interface Edit { at: number; end: number; text: string }

interface Headers {
  /** The header block's end (the start of the blank line). */
  end: number;
  bodyStart: number;
  contentType: { value: string; at: number; end: number } | null;
  encoding: string;
  disposition: string;
}

/** Charsets tried, in order, when a part's bytes do not fit its label, by the label's family. */
const FAMILIES: [RegExp, string[]][] = [
  [/^(?:iso-?2022-?jp.*|csiso2022jp|euc-?jp|x-euc-jp|shift[_-]?jis|sjis|x-sjis|ms_?kanji|cp932|windows-31j)$/, ['euc-jp', 'shift_jis', 'utf-8']],
  [/^(?:gb2312|gbk|gb18030|cp936|x-gbk|euc-cn|big5.*|cp950|x-big5)$/, ['gbk', 'gb18030', 'big5', 'utf-8']],
  [/^(?:euc-?kr|ks_c_5601-1987|cp949|iso-?2022-?kr|ks_c_5601)$/, ['cp949', 'utf-8']],
];
/** Labels of 7-bit charsets: any byte above 0x7f means the label is wrong. */
const SEVEN_BIT = /^(?:iso-?2022-.*|csiso2022jp|us-?ascii|ascii)$/;

export function repairMime(raw: Buffer): Buffer {
  try {
    const r = new Repair(raw.toString('latin1'));
    r.entity(0, r.s.length, 0, 'text/plain');
    return r.edits.length === 0 ? raw : Buffer.from(r.apply(), 'latin1');
  } catch {
    return raw;
  }
}

class Repair {
  readonly edits: Edit[] = [];
  private entities = 0;
  private readonly eol: string;

  constructor(readonly s: string) {
    this.eol = /\r\n/.test(s.slice(0, 4096)) ? '\r\n' : '\n';
  }

  apply(): string {
    const edits = [...this.edits].sort((a, b) => a.at - b.at || a.end - b.end);
    let out = '';
    let at = 0;
    for (const e of edits) {
      if (e.at < at) continue; // overlapping edits cannot happen; be safe if they do
      out += this.s.slice(at, e.at) + e.text;
      at = e.end;
    }
    return out + this.s.slice(at);
  }

  entity(start: number, end: number, depth: number, defaultType: string): void {
    if (depth > MAX_DEPTH || ++this.entities > MAX_ENTITIES) return;
    const h = this.headers(start, end);
    const type = h.contentType ? mediaType(h.contentType.value) : defaultType;
    if (type.startsWith('multipart/')) {
      const boundary = h.contentType ? param(h.contentType.value, 'boundary') : null;
      if (boundary) this.multipart(h.bodyStart, end, boundary, depth, type === 'multipart/digest' ? 'message/rfc822' : 'text/plain');
    } else if (type === 'message/rfc822' && !/base64|quoted-printable/.test(h.encoding)) {
      this.entity(h.bodyStart, end, depth + 1, 'text/plain');
    } else if ((type === 'text/plain' || type === 'text/html') && h.disposition !== 'attachment') {
      this.text(start, h, end);
    }
  }

  private headers(start: number, end: number): Headers {
    // An entity that starts with a blank line has no headers.
    const first = /^\r?\n/.exec(this.s.slice(start, start + 2));
    let headerEnd: number;
    let bodyStart: number;
    if (first) {
      headerEnd = start;
      bodyStart = start + first[0].length;
    } else {
      const re = /\r?\n\r?\n/g;
      re.lastIndex = start;
      const m = re.exec(this.s);
      if (!m || m.index >= end) { headerEnd = end; bodyStart = end; } else { headerEnd = m.index; bodyStart = m.index + m[0].length; }
    }
    const result: Headers = { end: headerEnd, bodyStart, contentType: null, encoding: '', disposition: '' };
    const block = this.s.slice(start, headerEnd);
    const field = /^([!-9;-~]+)[ \t]*:([^\r\n]*(?:\r?\n[ \t][^\r\n]*)*)/gm;
    for (const m of block.matchAll(field)) {
      const name = m[1]!.toLowerCase();
      const value = m[2]!.replace(/\r?\n[ \t]/g, ' ').trim();
      if (name === 'content-type' && !result.contentType) result.contentType = { value, at: start + m.index, end: start + m.index + m[0].length };
      else if (name === 'content-transfer-encoding') result.encoding = value.toLowerCase();
      else if (name === 'content-disposition') result.disposition = mediaType(value);
    }
    return result;
  }

  private multipart(bodyStart: number, end: number, boundary: string, depth: number, partType: string): void {
    const body = this.s.slice(bodyStart, end);
    const escaped = boundary.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
    let lines = [...body.matchAll(new RegExp(`^--${escaped}(--)?[ \\t]*\\r?$`, 'gm'))];
    if (lines.length === 0) {
      // Boundary lines written without their leading "--": recovered when a bare boundary
      // line is followed by a header line, so the structure is evident.
      const bare = [...body.matchAll(new RegExp(`^${escaped}(--)?[ \\t]*\\r?$`, 'gm'))];
      const evident = bare.some((m) => m[1] === undefined && /^\r?\n[!-9;-~]+[ \t]*:/.test(body.slice(m.index + m[0].length, m.index + m[0].length + 200)));
      if (!evident) return;
      for (const m of bare) this.edits.push({ at: bodyStart + m.index, end: bodyStart + m.index, text: '--' });
      lines = bare;
    }
    for (let i = 0; i < lines.length; i++) {
      const m = lines[i]!;
      if (m[1] !== undefined) break; // the closing boundary
      let partStart = bodyStart + m.index + m[0].length;
      if (this.s[partStart] === '\n') partStart++;
      const next = lines[i + 1];
      let partEnd = next ? bodyStart + next.index : end;
      // The line break before a boundary belongs to the boundary.
      if (next && this.s[partEnd - 1] === '\n') partEnd -= this.s[partEnd - 2] === '\r' ? 2 : 1;
      if (partEnd < partStart) continue;
      if (partType === 'message/rfc822' && !this.headers(partStart, partEnd).contentType) {
        this.edits.push({ at: partStart, end: partStart, text: `Content-Type: message/rfc822${this.eol}` });
      }
      this.entity(partStart, partEnd, depth + 1, partType);
    }
  }

  private text(start: number, h: Headers, end: number): void {
    let body = this.s.slice(h.bodyStart, end);
    if (h.encoding === 'base64') {
      const footer = base64WithFooter(body);
      if (footer !== null) {
        // A list footer appended as text after a base64 body: both decoded, re-encoded together.
        const bytes = Buffer.concat([Buffer.from(footer.base64, 'base64'), Buffer.from(this.eol + footer.text, 'latin1')]);
        const encoded = (bytes.toString('base64').match(/.{1,76}/g) ?? []).join(this.eol) + this.eol;
        this.edits.push({ at: h.bodyStart, end, text: encoded });
        body = bytes.toString('latin1');
      } else {
        body = Buffer.from(body, 'base64').toString('latin1');
      }
    } else if (h.encoding === 'quoted-printable') {
      body = body.replace(/=\r?\n/g, '').replace(/=([0-9A-Fa-f]{2})/g, (_, hex: string) => String.fromCharCode(parseInt(hex, 16)));
    }
    if (!/[\x80-\xff]/.test(body)) return;
    const bytes = Buffer.from(body, 'latin1');
    const label = h.contentType ? (param(h.contentType.value, 'charset') ?? '').toLowerCase() : '';
    let charset: string | null = null;
    if (label === '' || SEVEN_BIT.test(label)) {
      const family = FAMILIES.find(([re]) => re.test(label));
      charset = family ? detect(bytes, family[1]) : isUtf8(bytes) ? 'utf-8' : 'windows-1252';
    } else {
      const family = FAMILIES.find(([re]) => re.test(label));
      if (family && iconv.encodingExists(label) && badness(bytes, label) > 0) {
        const found = detect(bytes, family[1]);
        if (badness(bytes, found) < badness(bytes, label)) charset = found;
      }
    }
    if (charset !== null && charset !== label) this.setCharset(start, h, charset);
  }

  private setCharset(start: number, h: Headers, charset: string): void {
    const ct = h.contentType;
    if (!ct) {
      this.edits.push({ at: start, end: start, text: `Content-Type: text/plain; charset=${charset}${this.eol}` });
      return;
    }
    const field = this.s.slice(ct.at, ct.end);
    const m = /(;\s*charset\s*=\s*)("[^"]*"|[^;\s]*)/i.exec(field);
    if (m) this.edits.push({ at: ct.at + m.index + m[1]!.length, end: ct.at + m.index + m[0].length, text: charset });
    else this.edits.push({ at: ct.end, end: ct.end, text: `; charset=${charset}` });
  }
}

/** A base64 body followed by lines that are not base64 (a footer), split in two; null when there is none. */
function base64WithFooter(body: string): { base64: string; text: string } | null {
  const lines = body.split(/\r?\n/);
  let i = 0;
  while (i < lines.length && /^[A-Za-z0-9+/]*={0,2}[ \t]*$/.test(lines[i]!)) i++;
  if (i === lines.length) return null;
  const base64 = lines.slice(0, i).join('');
  if (base64.replace(/=+$/, '').length < 4) return null;
  const text = lines.slice(i).join('\n').replace(/\n+$/, '');
  return text.trim() === '' ? null : { base64, text: text.replace(/\n/g, '\r\n') };
}

function mediaType(value: string): string {
  return (value.split(';')[0] ?? '').trim().toLowerCase();
}

function param(value: string, name: string): string | null {
  const m = new RegExp(`;\\s*${name}\\s*=\\s*(?:"([^"]*)"|([^;\\s]*))`, 'i').exec(value);
  const v = m ? (m[1] ?? m[2] ?? '') : '';
  return v === '' ? null : v;
}

function isUtf8(bytes: Buffer): boolean {
  try {
    new TextDecoder('utf-8', { fatal: true }).decode(bytes);
    return true;
  } catch {
    return false;
  }
}

/** How badly `charset` fits the bytes: replacement characters weigh most, then half-width kana (EUC-JP misread as Shift_JIS). */
function badness(bytes: Buffer, charset: string): number {
  if (SEVEN_BIT.test(charset)) return bytes.filter((b) => b > 0x7f).length * 100;
  if (charset === 'utf-8') return isUtf8(bytes) ? 0 : 1_000_000;
  const text = iconv.decode(bytes, charset);
  let bad = 0;
  for (const ch of text) {
    if (ch === '\ufffd') bad += 100;
    else if (ch >= '\uff61' && ch <= '\uff9f') bad += 1;
  }
  return bad;
}

/** The candidate the bytes fit best (the first of equals). */
function detect(bytes: Buffer, candidates: string[]): string {
  let best = candidates[0]!;
  let bestScore = Infinity;
  for (const c of candidates) {
    const score = badness(bytes, c);
    if (score < bestScore) { best = c; bestScore = score; }
    if (score === 0) break;
  }
  return best;
}
