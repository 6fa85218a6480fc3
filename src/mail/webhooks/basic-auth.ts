/**
 * HTTP Basic credentials, as Postmark and SendGrid send them when they are written
 * into the webhook URL (`https://user:password@feeds.example.com/inbound/postmark`).
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import type { IncomingHttpHeaders } from 'node:http';
import { BadSignatureError } from '../../errors.js';

/**
 * Throws BadSignatureError (401) unless the Authorization header carries exactly
 * `expected` (`user:password`). Compared in constant time: both sides are hashed to
 * one length first, so neither the length nor the first differing byte shows in the timing.
 */
export function checkBasicAuth(headers: IncomingHttpHeaders, expected: string): void {
  const m = /^Basic\s+([A-Za-z0-9+/=]+)\s*$/i.exec(headers.authorization ?? '');
  if (!m) throw new BadSignatureError('missing or malformed HTTP Basic credentials (put user:password in the webhook URL)');
  const given = createHash('sha256').update(Buffer.from(m[1]!, 'base64')).digest();
  const wanted = createHash('sha256').update(expected, 'utf8').digest();
  if (!timingSafeEqual(given, wanted)) throw new BadSignatureError('wrong HTTP Basic credentials');
}
