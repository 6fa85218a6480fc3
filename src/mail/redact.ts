/**
 * Removes a feed's own secrets from mail before anyone else sees it. Senders
 * routinely echo the recipient address (greetings, footers, unsubscribe links),
 * and that address is the secret that lets anyone post into the feed.
 */
export interface FeedSecrets {
  inboxToken: string;
  feedToken: string;
}

export const REDACTED = 'redacted';

/**
 * A secret in any case, with any of its characters percent-encoded, and with
 * quoted-printable soft line breaks anywhere in it (raw mail shown as text).
 */
function tokenPattern(token: string): RegExp {
  const chars = [...token].map((c) => {
    const hex = c.charCodeAt(0).toString(16).padStart(2, '0');
    return `(?:${c.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}|%${hex})`;
  });
  return new RegExp(chars.join('(?:=\\r?\\n)?'), 'gi');
}

/**
 * A run of base64 or base64url text, possibly percent-encoded (%2B, %2F, %3D) or wrapped
 * over lines. Slashes make a URL path one run; that is fine, the match is narrowed below.
 */
const BASE64_RUN = /(?:[A-Za-z0-9+/_-]|%2[BbFf]|%3[Dd])(?:[A-Za-z0-9+/_=-]|%2[BbFf]|%3[Dd]|\r?\n)*/g;

/**
 * Finds secrets that were base64-encoded together with anything else (`{"email":"…"}`,
 * `u=…`), at any alignment: decoding a run from each of its first four characters
 * lines up with every possible start of the encoded secret. Only the characters that
 * encode the secret are replaced, so the rest of a link stays readable.
 */
function redactBase64(s: string, tokens: string[]): string {
  const shortest = Math.min(...tokens.map((t) => Math.floor((t.length * 4) / 3)));
  return s.replace(BASE64_RUN, (run) => {
    if (run.length < shortest) return run;
    // The run as plain base64, with where each of its characters came from in `run`.
    let plain = '';
    const from: number[] = [];
    const to: number[] = [];
    for (let i = 0; i < run.length;) {
      const c = run[i]!;
      if (c === '\r' || c === '\n') { i++; continue; }
      const width = c === '%' ? 3 : 1;
      const decoded = width === 3 ? decodeURIComponent(run.slice(i, i + 3)) : c;
      // base64url's alphabet, and padding inside a run (which keeps positions aligned), as plain base64.
      plain += decoded === '-' ? '+' : decoded === '_' ? '/' : decoded === '=' ? 'A' : decoded;
      from.push(i);
      to.push(i + width);
      i += width;
    }
    const spans: [number, number][] = [];
    for (let k = 0; k < 4 && k < plain.length; k++) {
      // Padded to whole groups: unpadded base64url ends mid-group, often right after the secret.
      const chunk = plain.slice(k).padEnd(Math.ceil((plain.length - k) / 4) * 4, 'A');
      const bytes = Buffer.from(chunk, 'base64').toString('latin1').toLowerCase();
      for (const token of tokens) {
        for (let at = bytes.indexOf(token); at !== -1; at = bytes.indexOf(token, at + 1)) {
          const first = k + Math.floor((at * 4) / 3);
          const last = Math.min(k + Math.ceil(((at + token.length) * 4) / 3), plain.length) - 1;
          spans.push([from[first]!, to[last]!]);
        }
      }
    }
    if (spans.length === 0) return run;
    // Replace from the end, merging overlaps, so earlier offsets stay valid.
    spans.sort((a, b) => b[0] - a[0]);
    let out = run;
    let limit = Infinity;
    for (const [start, end] of spans) {
      const stop = Math.min(end, limit);
      if (stop <= start) { limit = Math.min(limit, start); continue; }
      out = out.slice(0, start) + REDACTED + out.slice(stop);
      limit = start;
    }
    return out;
  });
}

/** A function that removes the given feeds' secrets from a string, in every form above. */
export function redactor(secrets: FeedSecrets | FeedSecrets[]): (s: string) => string {
  // Tokens are lowercase base32; comparing lowercased decoded text also catches an uppercased address.
  const tokens = [secrets].flat().flatMap((x) => [x.inboxToken, x.feedToken]).filter((t) => t.length >= 8).map((t) => t.toLowerCase());
  const plain = tokens.map(tokenPattern);
  return (s: string) => plain.reduce((acc, re) => acc.replace(re, REDACTED), redactBase64(s, tokens));
}
