/**
 * Per-sender feeds: the key that names a sender in its feed's URLs, and the sender's
 * domain (for its icon). A key is a hash, so a URL path (and a log line that shows
 * one) carries nothing of the address; anyone holding the feed URL already sees the
 * addresses themselves on the feed page.
 */
import { createHash } from 'node:crypto';
import { base32 } from '../secrets.js';

/** Characters of a sender key: 80 bits, far from any collision within one feed. */
const KEY_LENGTH = 16;

/** The case the store groups senders by (SQLite's NOCASE folds ASCII only), so keys agree with it. */
function foldAscii(s: string): string {
  return s.replace(/[A-Z]/g, (c) => c.toLowerCase());
}

/** The key of a sender address within one feed (its internal id, so keys of two feeds never match). */
export function senderKey(feedId: number, fromAddress: string): string {
  return base32(createHash('sha256').update(`feedmail-sender:${feedId}:${foldAscii(fromAddress)}`).digest()).slice(0, KEY_LENGTH);
}

/** A sender key's shape, for route patterns. */
export const SENDER_KEY_IN_PATH = `([a-z2-7]{${KEY_LENGTH}})`;

const DOMAIN = /^(?=.{1,253}$)[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?)*$/;

/** The domain of an address, lowercased, when it is a plain host name; '' otherwise. */
export function senderDomain(fromAddress: string): string {
  const at = fromAddress.lastIndexOf('@');
  if (at < 0) return '';
  const domain = fromAddress.slice(at + 1).toLowerCase().replace(/\.$/, '');
  return isDomain(domain) ? domain : '';
}

export function isDomain(s: string): boolean {
  return DOMAIN.test(s);
}
