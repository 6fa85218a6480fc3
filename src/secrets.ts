/**
 * Random secrets: 130 bits each, lowercase RFC 4648 base32 without padding, so
 * they survive mail systems that fold the case of addresses.
 */
import { createHash, randomBytes } from 'node:crypto';

const ALPHABET = 'abcdefghijklmnopqrstuvwxyz234567';
export const TOKEN_LENGTH = 26;

export function base32(bytes: Uint8Array): string {
  let out = '';
  let bits = 0;
  let value = 0;
  for (const byte of bytes) {
    value = (value << 8) | byte;
    bits += 8;
    while (bits >= 5) {
      out += ALPHABET[(value >>> (bits - 5)) & 31];
      bits -= 5;
    }
  }
  if (bits > 0) out += ALPHABET[(value << (5 - bits)) & 31];
  return out;
}

/** A fresh independent secret; 17 random bytes give 26 characters of full entropy. */
export function newToken(): string {
  return base32(randomBytes(17)).slice(0, TOKEN_LENGTH);
}

/** A secret's shape, for routes, lookups and log redaction alike. */
const TOKEN_SHAPE = new RegExp(`^[${ALPHABET}]{${TOKEN_LENGTH}}$`);
const TOKENS_IN_TEXT = new RegExp(`[${ALPHABET}]{${TOKEN_LENGTH}}`, 'gi');

/**
 * A path segment that may be a secret, captured, for route patterns. It is looser than
 * the shape on purpose (any length, any case): the lookups check the shape, so every
 * wrong secret, short or long, gets the same 404 from the same place.
 */
export const SECRET_IN_PATH = `([${ALPHABET}]+)`;

export function looksLikeToken(s: string): boolean {
  return TOKEN_SHAPE.test(s);
}

/** Text (a URL, say) fit for a log line: every secret-shaped run cut to its first four characters. */
export function shortenTokens(text: string): string {
  return text.replace(TOKENS_IN_TEXT, (t) => `${t.slice(0, 4)}…`);
}

/** Manage secrets are stored only as this hash. */
export function hashToken(token: string): string {
  return createHash('sha256').update(`feedmail-manage:${token}`).digest('hex');
}
