/**
 * The plain raw-MIME webhook: any relay (a Cloudflare Email Worker, a script
 * behind another MTA) can POST a message as it is, signed with the shared
 * secret. The signature covers a timestamp and the body, so a captured request
 * cannot be replayed later.
 *
 *   X-Feedmail-Timestamp: <unix seconds>
 *   X-Feedmail-Signature: sha256=<hex HMAC-SHA256(secret, "<timestamp>." + body)>
 */
import { createHmac, timingSafeEqual } from 'node:crypto';

/** How far a request's timestamp may be from our clock. */
export const MAX_SKEW_SECONDS = 300;

export function signRawDelivery(secret: string, timestamp: number, body: Buffer): string {
  const mac = createHmac('sha256', secret);
  mac.update(`${timestamp}.`);
  mac.update(body);
  return `sha256=${mac.digest('hex')}`;
}

/** Returns null when the request is authentic, or why it is not. */
export function verifyRawDelivery(secret: string, timestampHeader: string | undefined, signatureHeader: string | undefined, body: Buffer, now = Date.now()): string | null {
  if (!timestampHeader || !/^\d{1,12}$/.test(timestampHeader)) return 'missing or malformed X-Feedmail-Timestamp';
  if (!signatureHeader) return 'missing X-Feedmail-Signature';
  const timestamp = Number(timestampHeader);
  if (Math.abs(now / 1000 - timestamp) > MAX_SKEW_SECONDS) return `timestamp is more than ${MAX_SKEW_SECONDS} s away from the server's clock`;
  const expected = Buffer.from(signRawDelivery(secret, timestamp, body));
  const given = Buffer.from(signatureHeader.trim());
  if (expected.length !== given.length || !timingSafeEqual(expected, given)) return 'signature does not match';
  return null;
}
