/**
 * Removes feeds' secrets from mail before anyone else sees it. Senders routinely
 * echo the recipient address (greetings, footers, unsubscribe links, calendar
 * invites), and that address is the secret that lets anyone post into the feed.
 *
 * Every scan here is one pass over the input with a fixed amount of work per
 * character (an Aho-Corasick automaton over all secrets at once, and plain loops
 * for base64 runs): a sender controls the input, so no regular expression with
 * repetition ever runs over it.
 */
import iconv from 'iconv-lite';
import type { NewPart } from '../store/entries.js';

export interface FeedSecrets {
  inboxToken: string;
  feedToken: string;
}

export const REDACTED = 'redacted';

/** Shown next to a binary attachment whose bytes are not offered because they carry an address. */
export const WITHHELD_NOTE = 'Not offered: this attachment contains the feed\'s address.';

/** Shorter "secrets" would match ordinary text; real ones are 26 characters. */
const MIN_TOKEN = 8;

/**
 * A deterministic automaton over every form of every secret that shows up as a plain
 * substring: the token, its hex encoding, and its UTF-16 form (also found inside base64,
 * as in a forwarded message's UTF-16 attachment). ASCII letters are folded to lowercase
 * through the class table, so any case matches.
 */
interface Matcher {
  /** Character code (< 256) to input class; 0 is "in no pattern". */
  classOf: Uint8Array;
  classes: number;
  /** next[state * classes + class] */
  next: Int32Array;
  /** Length of the longest pattern that ends in this state, 0 for none. */
  out: Int32Array;
  /** Ring-buffer mask, at least the longest pattern. */
  mask: number;
  /**
   * Per character code: 0 in a pattern (or a hex digit or other character that may be part
   * of an escape), 1 inert (in no match, unless a space or tab that continues a folded line),
   * 2 read through or decoded by plainSpans (`%`, `=`, `&`, `\`, CR, LF), 3 the zero byte of UTF-16 forms
   * (in a match only next to a character of kind 0, so runs of zeros in binary data stay cheap).
   */
  kinds: Uint8Array;
  /** Where the last `mask + 1` characters read started (scratch space; scans are not reentrant). */
  starts: Int32Array;
  /** Shortest token: the least number of decoded bytes worth looking at. */
  shortest: number;
  /** Whether the stretch last read has a quoted-printable `=XX` escape (scratch, as `starts`). */
  sawQuotedPrintable: boolean;
}

/** `%`, `=`, CR, LF, `&` and `\`: escapes and line breaks that stretchSpans reads through. */
const READ_THROUGH = [37, 61, 13, 10, 38, 92];
/** The other characters of `&#x70;`, `&#112;`, `\u0070` and `\u{70}`: inert elsewhere, but a stretch must not end inside an escape. */
const IN_ESCAPES = [...'#;xXu{}'].map((c) => c.charCodeAt(0));

function hexOf(token: string): string {
  return Buffer.from(token, 'latin1').toString('hex');
}

function buildMatcher(patterns: string[], shortest: number): Matcher {
  const usable = [...new Set(patterns)].filter((p) => p.length > 0 && [...p].every((c) => c.charCodeAt(0) < 256));
  const classOf = new Uint8Array(256);
  let classes = 1;
  for (const p of usable) {
    for (let i = 0; i < p.length; i++) {
      const c = p.charCodeAt(i);
      if (classOf[c] === 0) classOf[c] = classes++;
    }
  }
  for (let c = 65; c <= 90; c++) classOf[c] = classOf[c + 32]!;

  const maxStates = usable.reduce((n, p) => n + p.length, 1);
  const next = new Int32Array(maxStates * classes).fill(-1);
  const out = new Int32Array(maxStates);
  let states = 1;
  let longest = 1;
  for (const p of usable) {
    let s = 0;
    for (let i = 0; i < p.length; i++) {
      const k = s * classes + classOf[p.charCodeAt(i)]!;
      if (next[k] === -1) next[k] = states++;
      s = next[k]!;
    }
    out[s] = Math.max(out[s]!, p.length);
    longest = Math.max(longest, p.length);
  }
  // Breadth-first: fill the missing transitions from each state's failure state.
  const fail = new Int32Array(states);
  const queue = new Int32Array(states);
  let head = 0;
  let tail = 0;
  for (let c = 0; c < classes; c++) {
    const t = next[c]!;
    if (t === -1) next[c] = 0;
    else { fail[t] = 0; queue[tail++] = t; }
  }
  while (head < tail) {
    const s = queue[head++]!;
    out[s] = Math.max(out[s]!, out[fail[s]!]!);
    for (let c = 0; c < classes; c++) {
      const k = s * classes + c;
      const t = next[k]!;
      const viaFail = next[fail[s]! * classes + c]!;
      if (t === -1) next[k] = viaFail;
      else { fail[t] = viaFail; queue[tail++] = t; }
    }
  }
  let mask = 1;
  while (mask < longest) mask <<= 1;
  const kinds = new Uint8Array(256);
  for (let c = 0; c < 256; c++) kinds[c] = READ_THROUGH.includes(c) ? 2 : classOf[c] === 0 && hexValue(c) < 0 && !IN_ESCAPES.includes(c) ? 1 : 0;
  if (classOf[0] !== 0) kinds[0] = 3;
  return { classOf, classes, next: next.subarray(0, states * classes), out: out.subarray(0, states), mask: mask - 1, kinds, starts: new Int32Array(mask), shortest, sawQuotedPrintable: false };
}

function tokensOf(secrets: FeedSecrets | FeedSecrets[]): string[] {
  // Tokens are lowercase base32; the matcher folds case, so an uppercased address matches too.
  return [...new Set([secrets].flat().flatMap((x) => [x.inboxToken, x.feedToken]).filter((t) => t.length >= MIN_TOKEN).map((t) => t.toLowerCase()))];
}

/** Matchers are cheap to build but redaction runs per part and per message: keep the recent ones. */
const matchers = new Map<string, Matcher>();

function matcherFor(tokens: string[]): Matcher {
  const key = tokens.join(',');
  let m = matchers.get(key);
  if (m) return m;
  // Hex of the token as sent and of the uppercased token (the matcher folds the hex digits'
  // case), UTF-16 (LE and BE both have the token's characters with a zero byte between them)
  // and UTF-32 (three zero bytes between them).
  const patterns = tokens.flatMap((t) => [t, hexOf(t), hexOf(t.toUpperCase()), [...t].join('\0'), [...t].join('\0\0\0')]);
  m = buildMatcher(patterns, Math.min(...tokens.map((t) => t.length)));
  if (matchers.size >= 32) matchers.delete(matchers.keys().next().value!);
  matchers.set(key, m);
  return m;
}

function hexValue(c: number): number {
  if (c >= 48 && c <= 57) return c - 48;
  const l = c | 32;
  return l >= 97 && l <= 102 ? l - 87 : -1;
}

/** The character the escape last read by escapeEnd stands for (scratch; scans are not reentrant). */
let escaped = 0;

/** Reads the digits of `base` from s[i], returns where they end and sets `escaped` (capped past Unicode). */
function digitsEnd(s: string, i: number, base: 10 | 16, most: number): number {
  let v = 0;
  const end = Math.min(s.length, i + most);
  for (; i < end; i++) {
    const d = base === 16 ? hexValue(s.charCodeAt(i)) : s.charCodeAt(i) - 48;
    if (d < 0 || d >= base) break;
    v = Math.min(v * base + d, 0x110000);
  }
  escaped = v;
  return i;
}

/**
 * Where the numeric character reference (`&#112;`, `&#x70;`, `;` optional as browsers
 * allow) or JavaScript escape (`\u0070`, `\u{70}`, `\x70`) at s[i] ends, with the
 * character it stands for in `escaped`; -1 when there is none. Every digit read is
 * consumed, so each character is read once however many leading zeros there are.
 */
function escapeEnd(s: string, i: number): number {
  const a = s.charCodeAt(i + 1);
  if (s.charCodeAt(i) === 38) {
    if (a !== 35) return -1;
    const hex = (s.charCodeAt(i + 2) | 32) === 120;
    const from = i + (hex ? 3 : 2);
    const end = digitsEnd(s, from, hex ? 16 : 10, Infinity);
    if (end === from) return -1;
    return s.charCodeAt(end) === 59 ? end + 1 : end;
  }
  if (a === 120) {
    const end = digitsEnd(s, i + 2, 16, 2);
    return end === i + 4 ? end : -1;
  }
  if (a !== 117) return -1;
  if (s.charCodeAt(i + 2) === 123) {
    const end = digitsEnd(s, i + 3, 16, Infinity);
    return end > i + 3 && s.charCodeAt(end) === 125 ? end + 1 : -1;
  }
  const end = digitsEnd(s, i + 2, 16, 4);
  return end === i + 6 ? end : -1;
}

/** Whether s[i] is a space or tab that continues a folded line. */
function foldSpace(s: string, i: number, c: number): boolean {
  return (c === 32 || c === 9) && s.charCodeAt(i - 1) === 10;
}

/** Where s[k] is once past any quoted-printable soft breaks (`=\r\n`, `=\n`) that start there. */
function pastSoftBreaks(s: string, k: number): number {
  for (;;) {
    if (s.charCodeAt(k) !== 61) return k;
    const a = s.charCodeAt(k + 1);
    if (a === 10) k += 2;
    else if (a === 13 && s.charCodeAt(k + 2) === 10) k += 3;
    else return k;
  }
}

/** Full-width forms (U+FF01-FF5E, as Japanese mail writes an address) as the ASCII characters they stand for. */
function fold(c: number): number {
  return c >= 0xff01 && c <= 0xff5e ? c - 0xfee0 : c;
}

/**
 * Whether the zero byte at s[i] sits next to a character of some pattern, or is one of
 * the (at most three, as in UTF-32) zeros between such a character and the next.
 */
function liveZero(s: string, i: number, kinds: Uint8Array): boolean {
  for (let d = 1; d <= 3; d++) {
    const a = s.charCodeAt(i - d);
    if (a === 0) continue;
    if (a < 256 && kinds[a] === 0) return true;
    break;
  }
  for (let d = 1; d <= 3; d++) {
    const b = s.charCodeAt(i + d);
    if (b === 0) continue;
    return b < 256 && kinds[b] === 0;
  }
  return false;
}

/** Whether s[i] can be no part of a match: in no pattern, and not read through by plainSpans. */
function inertAt(s: string, i: number, kinds: Uint8Array): boolean {
  const c = fold(s.charCodeAt(i));
  if (c >= 256) return true;
  const kind = kinds[c];
  if (kind === 1) return !foldSpace(s, i, c);
  return kind === 3 && !liveZero(s, i, kinds);
}

/**
 * Finds the matcher's patterns in `s` and appends their [start, end) offsets to `spans`.
 * Read through on the way: `%XX` escapes (any hex case), HTML numeric character
 * references and JavaScript `\uXXXX`/`\u{X}`/`\xXX` escapes (see escapeEnd), quoted-printable
 * soft line breaks (`=\r\n`, `=\n`), folded lines (`\r\n` or `\n` followed by a space or
 * tab, RFC 5545 and RFC 5322) and bare line breaks (a long URL hard-wrapped by a plain-text
 * mailer), so a secret broken up by any of them is found whole; and
 * quoted-printable `=XX` escapes (any hex case, so Q-encoded words too), in a second
 * reading of a stretch that has any: `email=65ms…` is a token after `=` as often as
 * `=36=35ms…` is one written in quoted-printable, and one reading cannot see both.
 *
 * A match spans at least `shortest` characters, none of them inert, so only every
 * `shortest`-th character needs a look until one is not inert; the automaton then runs
 * over the stretch of non-inert characters around it. Each character is read at most
 * twice, or a few times in a stretch with `=XX` escapes (it is read again, and looking
 * for an escape's digits past soft breaks reads them ahead).
 */
function plainSpans(s: string, m: Matcher, spans: number[]): void {
  const { kinds, shortest } = m;
  const n = s.length;
  let p = shortest - 1;
  while (p < n) {
    if (inertAt(s, p, kinds)) { p += shortest; continue; }
    let from = p;
    while (from > 0 && !inertAt(s, from - 1, kinds)) from--;
    // The stretch ends past p (p is not inert); max() only guarantees progress.
    const end = stretchSpans(s, from, m, spans, false);
    if (m.sawQuotedPrintable) stretchSpans(s, from, m, spans, true);
    p = Math.max(p + 1, end + shortest);
  }
}

/**
 * Runs the automaton from `i` to the next inert character, and returns where that is.
 * With `quotedPrintable`, `=XX` is read as the character it encodes; without, it sets
 * `m.sawQuotedPrintable` when the stretch has one, so the caller knows to read it again.
 */
function stretchSpans(s: string, i: number, m: Matcher, spans: number[], quotedPrintable: boolean): number {
  const { classOf, classes, next, out, mask, kinds, starts } = m;
  const n = s.length;
  let state = 0;
  let j = 0;
  m.sawQuotedPrintable = false;
  while (i < n) {
    let c = fold(s.charCodeAt(i));
    let width = 1;
    const kind = c < 256 ? kinds[c]! : 1;
    if (kind === 1) {
      if (!foldSpace(s, i, c)) return i;
      i++;
      continue;
    }
    if (kind === 3 && !liveZero(s, i, kinds)) return i;
    if (kind === 2) {
      if (c === 37) {
        const hi = hexValue(s.charCodeAt(i + 1));
        const lo = hexValue(s.charCodeAt(i + 2));
        if (hi >= 0 && lo >= 0) { c = hi * 16 + lo; width = 3; }
      } else if (c === 61) {
        const a = s.charCodeAt(i + 1);
        if (a === 10) { i += 2; continue; }
        if (a === 13 && s.charCodeAt(i + 2) === 10) { i += 3; continue; }
        // Decoders remove soft breaks first, so they may split an escape too (`=6=\r\nD`).
        const h = pastSoftBreaks(s, i + 1);
        const l = pastSoftBreaks(s, h + 1);
        const hi = hexValue(s.charCodeAt(h));
        const lo = hexValue(s.charCodeAt(l));
        if (hi >= 0 && lo >= 0) {
          if (quotedPrintable) { c = hi * 16 + lo; width = l + 1 - i; } else m.sawQuotedPrintable = true;
        }
      } else if (c === 13 || c === 10) {
        // A line break inside a secret: a plain-text mailer's hard wrap, or a fold (whose
        // space or tab the next character's foldSpace reads through).
        i++;
        continue;
      } else {
        const end = escapeEnd(s, i);
        if (end !== -1) { c = fold(escaped); width = end - i; }
      }
    }
    starts[j & mask] = i;
    i += width;
    state = next[state * classes + (c < 256 ? classOf[c]! : 0)]!;
    const length = out[state]!;
    if (length !== 0) spans.push(starts[(j - length + 1) & mask]!, i);
    j++;
  }
  return n;
}

/** 1: base64 or base64url alphabet, 2: padding. */
const B64 = new Uint8Array(256);
for (const c of 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/-_') B64[c.charCodeAt(0)] = 1;
B64[61] = 2;

/** The base64 character a `%2B`, `%2F` or `%3D` at `i` stands for, or 0. */
function escapedB64(s: string, i: number): number {
  if (s.charCodeAt(i) !== 37) return 0;
  const a = s.charCodeAt(i + 1);
  const b = s.charCodeAt(i + 2) | 32;
  if (a === 50 && b === 98) return 43; // %2B
  if (a === 50 && b === 102) return 47; // %2F
  if (a === 51 && b === 100) return 61; // %3D
  return 0;
}

/** Whether s[i] belongs in a base64 run: alphabet, padding, an escape's `%`, a line break or its fold. */
function inRunAt(s: string, i: number): boolean {
  const c = s.charCodeAt(i);
  if (c < 256 && B64[c] !== 0) return true;
  return c === 13 || c === 10 || foldSpace(s, i, c) || (c === 37 && escapedB64(s, i) !== 0);
}

/**
 * Finds secrets base64-encoded together with anything else (`{"email":"…"}`, `u=…`), at
 * any alignment, in base64 or base64url, percent-encoded or wrapped over (folded) lines,
 * and, to `depth` more levels, base64 inside the decoded text (click-tracking wrappers
 * encode a URL that carries base64 itself). Appends the offsets in `s` of the characters
 * that encode a secret, so the rest of a link stays readable. Runs too short to hold a
 * secret are skipped by looking at every `minRun`-th character only, as in plainSpans.
 */
function base64Spans(s: string, m: Matcher, depth: number, spans: number[]): void {
  const minRun = Math.floor((m.shortest * 4) / 3);
  const n = s.length;
  let p = minRun - 1;
  while (p < n) {
    if (!inRunAt(s, p)) { p += minRun; continue; }
    let i = p;
    while (i > 0 && inRunAt(s, i - 1)) i--;
    // A run starts at an alphabet character or an escape, not at padding or a line break.
    while (i < n && !((s.charCodeAt(i) < 256 && B64[s.charCodeAt(i)] === 1) || escapedB64(s, i) !== 0) && inRunAt(s, i)) i++;
    const start = i;
    let length = 0;
    let padded = false;
    let quotedPrintable = false;
    while (i < n) {
      const d = s.charCodeAt(i);
      if (d < 256 && B64[d] === 1) { i++; length++; continue; }
      if (d === 61) {
        quotedPrintable ||= qpSoftBreakAt(s, i) || qpEqualsAt(s, i);
        i++;
        length++;
        padded = true;
        continue;
      }
      if (d === 13 || d === 10) {
        i++;
        if (d === 10 && (s.charCodeAt(i) === 32 || s.charCodeAt(i) === 9)) i++;
        continue;
      }
      if (d === 37 && escapedB64(s, i) !== 0) { i += 3; length++; continue; }
      break;
    }
    if (length >= minRun) {
      runSpans(s, start, i, length, padded, false, m, depth, spans);
      // Base64 in quoted-printable text (an attached message's HTML): read again with its soft breaks and `=3D` decoded.
      if (quotedPrintable) runSpans(s, start, i, length, padded, true, m, depth, spans);
    }
    p = Math.max(p + 1, i + minRun);
  }
}

/** Whether the `=` at s[i] starts a quoted-printable soft line break (`=\r\n`, `=\n`). */
function qpSoftBreakAt(s: string, i: number): boolean {
  const a = s.charCodeAt(i + 1);
  return a === 10 || (a === 13 && s.charCodeAt(i + 2) === 10);
}

/** Whether the `=` at s[i] starts `=3D`, quoted-printable for `=`. */
function qpEqualsAt(s: string, i: number): boolean {
  return s.charCodeAt(i + 1) === 51 && (s.charCodeAt(i + 2) | 32) === 100;
}

/**
 * The secrets in one base64 run s[start, end) of `length` base64 characters. Unless the
 * run is exactly its characters (no escapes, no line breaks), positions found in the
 * plain base64 are mapped back to the run at the end. With `quotedPrintable`, the run is
 * read as quoted-printable text: a soft break's `=` is no character, and `=3D` is one `=`.
 */
function runSpans(s: string, start: number, end: number, runLength: number, padded: boolean, quotedPrintable: boolean, m: Matcher, depth: number, spans: number[]): void {
  let length = runLength;
  const exact = end - start === length && !quotedPrintable;
  let plain: string;
  if (exact && !padded) {
    plain = s.slice(start, end);
  } else {
    // As plain base64; padding inside a run (joined chunks) becomes 'A' to keep positions aligned.
    const bytes = Buffer.allocUnsafe(length);
    let k = 0;
    for (let i = start; i < end; i++) {
      let c = s.charCodeAt(i);
      if (c === 13 || c === 10 || c === 32 || c === 9) continue;
      if (c === 37) { c = escapedB64(s, i); i += 2; }
      if (c === 61 && quotedPrintable) {
        if (qpSoftBreakAt(s, i)) continue;
        if (qpEqualsAt(s, i)) i += 2;
      }
      bytes[k++] = c === 61 ? 65 : c;
    }
    length = k;
    plain = bytes.toString('latin1', 0, k);
  }
  // Spans in `plain` coordinates: first character, and one past the last.
  const found: number[] = [];
  const decodedSpans: number[] = [];
  for (let k = 0; k < 4 && k < length; k++) {
    // Decoding from each of the first four characters lines up with every possible start of the secret.
    const decoded = Buffer.from(k === 0 ? plain : plain.slice(k), 'base64').toString('latin1');
    decodedSpans.length = 0;
    plainSpans(decoded, m, decodedSpans);
    if (depth > 0) base64Spans(decoded, m, depth - 1, decodedSpans);
    for (let x = 0; x < decodedSpans.length; x += 2) {
      const from = k + Math.floor((decodedSpans[x]! * 4) / 3);
      const to = Math.min(k + Math.ceil((decodedSpans[x + 1]! * 4) / 3), length);
      found.push(from, to);
    }
  }
  if (found.length === 0) return;
  if (exact) {
    for (let x = 0; x < found.length; x++) spans.push(start + found[x]!);
    return;
  }
  // Where each wanted plain character starts and ends in the run, in one walk over it.
  const wanted = new Int32Array(found.length);
  for (let x = 0; x < found.length; x += 2) { wanted[x] = found[x]!; wanted[x + 1] = found[x + 1]! - 1; }
  wanted.sort();
  const startOf = new Int32Array(wanted.length);
  const endOf = new Int32Array(wanted.length);
  let p = 0;
  let w = 0;
  for (let i = start; i < end && w < wanted.length; i++) {
    const c = s.charCodeAt(i);
    // Inside a run, a space or tab can only be a fold's.
    if (c === 13 || c === 10 || c === 32 || c === 9) continue;
    let width = c === 37 ? 3 : 1;
    if (c === 61 && quotedPrintable) {
      if (qpSoftBreakAt(s, i)) continue;
      if (qpEqualsAt(s, i)) width = 3;
    }
    while (w < wanted.length && wanted[w] === p) { startOf[w] = i; endOf[w] = i + width; w++; }
    p++;
    i += width - 1;
  }
  for (let x = 0; x < found.length; x += 2) {
    spans.push(startOf[lowerBound(wanted, found[x]!)]!, endOf[lowerBound(wanted, found[x + 1]! - 1)]!);
  }
}

/** The first index of a sorted array whose value is at least `v`. */
function lowerBound(sorted: Int32Array, v: number): number {
  let lo = 0;
  let hi = sorted.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (sorted[mid]! < v) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

/** Replaces the spans (pairs of offsets, any order, may overlap) with REDACTED. */
function replaceSpans(s: string, spans: number[]): string {
  const pairs: [number, number][] = [];
  for (let x = 0; x < spans.length; x += 2) pairs.push([spans[x]!, spans[x + 1]!]);
  pairs.sort((a, b) => a[0] - b[0]);
  const pieces: string[] = [];
  let at = 0;
  let open = -1;
  let close = -1;
  for (const [from, to] of pairs) {
    if (open !== -1 && from <= close) { close = Math.max(close, to); continue; }
    if (open !== -1) { pieces.push(s.slice(at, open), REDACTED); at = close; }
    open = from;
    close = to;
  }
  if (open !== -1) { pieces.push(s.slice(at, open), REDACTED); at = close; }
  pieces.push(s.slice(at));
  return pieces.join('');
}

function spansOf(s: string, m: Matcher): number[] {
  const spans: number[] = [];
  plainSpans(s, m, spans);
  base64Spans(s, m, 1, spans);
  return spans;
}

/**
 * A function that removes the given feeds' secrets from a string: in any case, with any
 * characters percent-encoded, quoted-printable-encoded (Q-encoded words included), written
 * as HTML numeric character references or JavaScript escapes, split by quoted-printable
 * soft breaks, folded lines or bare line breaks, in hex, and in base64/base64url at any
 * alignment (B-encoded words included), once nested, percent-encoded or wrapped.
 * Linear in the length of the input.
 */
export function redactor(secrets: FeedSecrets | FeedSecrets[]): (s: string) => string {
  const tokens = tokensOf(secrets);
  if (tokens.length === 0) return (s) => s;
  const m = matcherFor(tokens);
  return (s: string) => {
    const spans = spansOf(s, m);
    return spans.length === 0 ? s : replaceSpans(s, spans);
  };
}

/** Whether bytes carry a secret as text (any case, ASCII or UTF-16), in hex or in base64. */
export function bytesContainSecret(bytes: Buffer, secrets: FeedSecrets | FeedSecrets[]): boolean {
  const tokens = tokensOf(secrets);
  if (tokens.length === 0) return false;
  return spansOf(bytes.toString('latin1'), matcherFor(tokens)).length > 0;
}

/** Parts whose bytes are text a reader may open (and so may carry the address). */
const TEXT_LIKE = /^(?:text\/|message\/|application\/(?:ics|json|xml|x-?ndjson|[a-z0-9.-]+\+(?:json|xml))$)/;

export function isTextLike(contentType: string): boolean {
  return TEXT_LIKE.test(contentType);
}

const fatalUtf8 = new TextDecoder('utf-8', { fatal: true });

function isUtf8(bytes: Buffer): boolean {
  try {
    fatalUtf8.decode(bytes);
    return true;
  } catch {
    // The fatal decoder's refusal is the answer: these bytes are not UTF-8.
    return false;
  }
}

/** UTF-16 without a byte order mark: ASCII text has its zero bytes first (BE) or second (LE). */
function utf16Order(bytes: Buffer): 'utf-16le' | 'utf-16be' | null {
  let even = 0;
  let odd = 0;
  const n = Math.min(bytes.length, 4096) & ~1;
  for (let i = 0; i < n; i += 2) {
    if (bytes[i] === 0) even++;
    if (bytes[i + 1] === 0) odd++;
  }
  if (Math.max(even, odd) < n / 8) return null;
  return even > odd ? 'utf-16be' : 'utf-16le';
}

/** UTF-16 labels, which TextDecoder reads as UTF-16 (LE unless it says BE). */
const UTF16_LABELS = new Set(['utf-16', 'utf-16le', 'utf-16be', 'ucs-2', 'unicode', 'unicodefffe', 'csunicode', 'iso-10646-ucs-2']);

/** A text part's bytes as a string, from its byte order mark, its declared charset, or its look. */
function decodeText(bytes: Buffer, declared: string | null | undefined): string {
  // UTF-32 first: its little-endian mark starts like UTF-16's.
  if (bytes[0] === 0xff && bytes[1] === 0xfe && bytes[2] === 0 && bytes[3] === 0) return iconv.decode(bytes, 'utf-32le');
  if (bytes[0] === 0 && bytes[1] === 0 && bytes[2] === 0xfe && bytes[3] === 0xff) return iconv.decode(bytes, 'utf-32be');
  if (bytes[0] === 0xff && bytes[1] === 0xfe) return new TextDecoder('utf-16le').decode(bytes);
  if (bytes[0] === 0xfe && bytes[1] === 0xff) return new TextDecoder('utf-16be').decode(bytes);
  if (bytes[0] === 0xef && bytes[1] === 0xbb && bytes[2] === 0xbf) return new TextDecoder('utf-8').decode(bytes);
  let label = declared?.trim().toLowerCase().replace(/^["']|["']$/g, '') ?? '';
  // ASCII (or any UTF-8) labelled UTF-16: read as UTF-16 it would be CJK-looking characters
  // that carry the bytes, address included, past the redactor; UTF-16 text has zero bytes
  // (Latin scripts) or is not UTF-8 (CJK: bytes of 0x80 and up that no UTF-8 sequence allows).
  if (UTF16_LABELS.has(label) && utf16Order(bytes) === null && isUtf8(bytes)) label = 'utf-8';
  if (label === 'utf-16' || label === 'ucs-2' || label === 'unicode') label = utf16Order(bytes) ?? 'utf-16be';
  if (label === '' || label === 'us-ascii' || label === 'ascii') label = utf16Order(bytes) ?? '';
  if (label !== '') {
    let decoder: TextDecoder | null = null;
    try {
      decoder = new TextDecoder(label);
    } catch (err) {
      // An unknown or unsupported charset name: decode as if none had been declared.
      if (!(err instanceof RangeError)) throw err;
    }
    if (decoder) return decoder.decode(bytes);
    // TextDecoder has no UTF-32.
    if (/^(?:utf-?32|ucs-?4)(?:le|be)?$/.test(label)) return iconv.decode(bytes, label.replace(/^(?:utf-?32|ucs-?4)/, 'utf-32'));
  }
  return new TextDecoder(isUtf8(bytes) ? 'utf-8' : 'windows-1252').decode(bytes);
}

/** The media type shown for a part whose type carried a secret, when redacting in place breaks its syntax. */
const REDACTED_TYPE = `application/x-${REDACTED}`;

/** `type/subtype` as a part keeps it (parse.ts checks with it too): shown in feeds' enclosures and in a download's Content-Type. */
export const MEDIA_TYPE = /^[a-z0-9!#$&^_.+-]+\/[a-z0-9!#$&^_.+-]+$/;

/**
 * A part's shown strings (filename, media type, Content-ID, note) with the secrets
 * removed. The Content-ID is redacted by the same redactor as the HTML, so a redacted
 * `cid:` reference still finds its part.
 */
function redactShown(part: NewPart, redact: (s: string) => string): NewPart {
  const contentType = redact(part.contentType);
  return {
    ...part,
    filename: redact(part.filename),
    contentType: contentType === part.contentType || MEDIA_TYPE.test(contentType) ? contentType : REDACTED_TYPE,
    contentId: part.contentId === null ? null : redact(part.contentId),
    charset: part.charset == null ? part.charset : redact(part.charset),
    note: part.note == null ? part.note : redact(part.note),
  };
}

/**
 * A part as a feed may store it. Its filename, media type and Content-ID are redacted
 * (how its bytes are treated follows the type as sent). A text-like part is decoded
 * from its charset (UTF-16 included), redacted and stored as UTF-8; a raw message that
 * is not UTF-8 keeps its bytes one to one. A binary part that carries a secret in a form
 * found cheaply (text in any case, UTF-16, hex, base64) is listed without its bytes.
 */
export function redactPart(part: NewPart, secrets: FeedSecrets[]): NewPart {
  const redact = redactor(secrets);
  const shown = redactShown(part, redact);
  if (!part.content) return shown;
  try {
    if (isTextLike(part.contentType)) {
      if (part.contentType.startsWith('message/') && !isUtf8(part.content)) {
        // A raw message in mixed 8-bit charsets: latin1 maps bytes to characters one to one.
        const content = Buffer.from(redact(part.content.toString('latin1')), 'latin1');
        return { ...shown, content, size: content.length, charset: null };
      }
      const charset = part.contentType.startsWith('message/') ? 'utf-8' : part.charset;
      const content = Buffer.from(redact(decodeText(part.content, charset)), 'utf8');
      return { ...shown, content, size: content.length, charset: 'utf-8' };
    }
    if (bytesContainSecret(part.content, secrets)) return { ...shown, content: null, note: WITHHELD_NOTE };
    return shown;
  } catch (err) {
    // Never lose the entry over one part: list it without its bytes, and say why.
    return { ...shown, content: null, note: redact(`Not offered: this attachment could not be checked for the feed's address (${(err as Error).message}).`) };
  }
}

/**
 * The confirm URL a feed stores: every other recipient's secrets removed, the feed's own
 * kept whole so the owner's manage page offers a link that works (shared views redact the
 * own secrets when they show it).
 */
export function confirmUrlForFeed(url: string, own: FeedSecrets, all: FeedSecrets[]): string {
  const ownTokens = new Set(tokensOf(own));
  const others = all
    .map((s) => ({ inboxToken: ownTokens.has(s.inboxToken.toLowerCase()) ? '' : s.inboxToken, feedToken: ownTokens.has(s.feedToken.toLowerCase()) ? '' : s.feedToken }));
  return redactor(others)(url);
}
