/**
 * The plain raw-MIME webhook: any relay (a Cloudflare Email Worker, a script
 * behind another MTA) can POST a message as it is, signed with the shared
 * secret. The signature covers the timestamp, the method, the request target
 * (path and query exactly as sent, so the `?to=` recipients cannot be changed)
 * and the body:
 *
 *   X-Feedmail-Timestamp: <unix seconds>
 *   X-Feedmail-Signature: sha256=<hex HMAC-SHA256(secret, "<timestamp>.<METHOD> <target>." + body)>
 *
 * e.g. the signed string of a delivery is
 * `1764176400.POST /inbound/raw?to=abc%40feeds.example.com.` followed by the raw message bytes.
 * The timestamp must be within MAX_SKEW_SECONDS of our clock, and each signature
 * is accepted once (the route remembers them in queue.db for that long).
 * Served at `POST /inbound/raw?to=<address>[&to=…]` (see provider.ts).
 */
import { createHmac, timingSafeEqual, type Hmac } from 'node:crypto';
import { BadSignatureError } from '../../errors.js';
import type { SignedRequest, WebhookProvider } from './provider.js';

/** How far a request's timestamp may be from our clock. */
export const MAX_SKEW_SECONDS = 300;

export interface RawDeliveryRequest {
  /** Unix seconds, as sent in X-Feedmail-Timestamp. */
  timestamp: number;
  /** The HTTP method, e.g. POST; signed in upper case. */
  method: string;
  /** The request target as it appears on the request line: path and query, e.g. `/inbound/raw?to=a%40b.example`. */
  target: string;
}

/** The HMAC of a delivery with everything but the body fed in; the body follows as it arrives. */
export function rawDeliveryMac(secret: string, request: RawDeliveryRequest): Hmac {
  return createHmac('sha256', secret).update(`${request.timestamp}.${request.method.toUpperCase()} ${request.target}.`);
}

/** The X-Feedmail-Signature value of a delivery (for relays written in JavaScript, and tests). */
export function signRawDelivery(secret: string, request: RawDeliveryRequest & { body: Buffer }): string {
  return `sha256=${rawDeliveryMac(secret, request).update(request.body).digest('hex')}`;
}

export interface DeliveryHeaders {
  timestamp: number;
  /** The 32-byte signature, lowercase hex: what replays are recognised by. */
  signature: string;
}

/**
 * Checks what can be checked before the body is read: both headers present and
 * well formed, and the timestamp fresh. Returns the parsed headers, or why the
 * request is refused.
 */
export function checkDeliveryHeaders(timestampHeader: string | undefined, signatureHeader: string | undefined, now = Date.now()): DeliveryHeaders | { problem: string } {
  if (!timestampHeader || !/^\d{1,12}$/.test(timestampHeader)) return { problem: 'missing or malformed X-Feedmail-Timestamp' };
  const m = /^sha256=([0-9a-f]{64})$/i.exec(signatureHeader?.trim() ?? '');
  if (!m) return { problem: 'missing or malformed X-Feedmail-Signature (expected sha256=<64 hex digits>)' };
  const timestamp = Number(timestampHeader);
  if (Math.abs(now / 1000 - timestamp) > MAX_SKEW_SECONDS) return { problem: `timestamp is more than ${MAX_SKEW_SECONDS} s away from the server's clock` };
  return { timestamp, signature: m[1]!.toLowerCase() };
}

/** Compares, in constant time, the finished HMAC with the signature the request carried. */
export function signatureMatches(mac: Hmac, signature: string): boolean {
  return timingSafeEqual(mac.digest(), Buffer.from(signature, 'hex'));
}

/** A raw delivery names its recipients in the signed request target, so they are known before the body. */
type RawSignedRequest = SignedRequest & { recipients: string[] };

export const rawProvider: WebhookProvider<RawSignedRequest> = {
  name: 'raw',
  secret: (config) => config.webhookSecret,
  checkHeaders(request, secret, now) {
    const signed = checkDeliveryHeaders(header(request.headers['x-feedmail-timestamp']), header(request.headers['x-feedmail-signature']), now);
    if ('problem' in signed) throw new BadSignatureError(signed.problem);
    const mac = rawDeliveryMac(secret, { timestamp: signed.timestamp, method: request.method, target: request.target });
    return {
      recipients: request.url.searchParams.getAll('to'),
      // Remembered one second past the window: after that the timestamp alone refuses it.
      replay: { signature: signed.signature, expiresAt: (signed.timestamp + MAX_SKEW_SECONDS + 1) * 1000 },
      update: (chunk) => mac.update(chunk),
      verify() {
        if (!signatureMatches(mac, signed.signature)) throw new BadSignatureError('signature does not match');
      },
    };
  },
  parse: (body, signed) => ({ recipients: signed.recipients, raw: body }),
  acceptedStatus: 202,
};

/** A request header's value; the first when sent more than once. */
export function header(v: string | string[] | undefined): string | undefined {
  return Array.isArray(v) ? v[0] : v;
}
