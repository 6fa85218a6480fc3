/**
 * Cloudflare Email Workers: the Worker feedmail ships (docs/cloudflare-worker.js) POSTs
 * each message it receives to `POST /inbound/cloudflare`, raw, signed with the shared
 * secret FEEDMAIL_CLOUDFLARE_SECRET:
 *
 *   X-Feedmail-Timestamp: <unix seconds>
 *   X-Feedmail-Signature: <hex HMAC-SHA256(secret, "<timestamp>." + body)>   ("sha256=<hex>" is taken too)
 *
 * The recipient travels inside the signed body: the Worker puts a `Delivered-To:
 * <message.to>` line in front of the message, as a mail server delivering it would, so
 * it cannot be changed without breaking the signature. Only Delivered-To fields at the
 * very top count; one the sender wrote into the message never does. Timestamps and
 * replays are checked as for raw (the same helpers, the same window).
 */
import { createHmac } from 'node:crypto';
import { BadRequestError, BadSignatureError } from '../../errors.js';
import { leadingDeliveredTo } from '../envelope-headers.js';
import { checkDeliveryHeaders, header, MAX_SKEW_SECONDS, signatureMatches } from './raw.js';
import type { WebhookProvider } from './provider.js';

export const cloudflareProvider: WebhookProvider = {
  name: 'cloudflare',
  secret: (config) => config.cloudflareSecret,
  checkHeaders(request, secret, now) {
    const sent = header(request.headers['x-feedmail-signature'])?.trim();
    // The form is bare hex; raw's "sha256=" prefix is accepted as well.
    const signed = checkDeliveryHeaders(header(request.headers['x-feedmail-timestamp']), sent && !sent.includes('=') ? `sha256=${sent}` : sent, now);
    if ('problem' in signed) throw new BadSignatureError(signed.problem.replace('sha256=<64 hex digits>', '64 hex digits'));
    const mac = createHmac('sha256', secret).update(`${signed.timestamp}.`);
    return {
      replay: { signature: signed.signature, expiresAt: (signed.timestamp + MAX_SKEW_SECONDS + 1) * 1000 },
      update: (chunk) => mac.update(chunk),
      verify() {
        if (!signatureMatches(mac, signed.signature)) throw new BadSignatureError('signature does not match');
      },
    };
  },
  parse(body) {
    const recipients = leadingDeliveredTo(body);
    if (recipients.length === 0) throw new BadRequestError('The message names no recipient: the Worker puts "Delivered-To: <address>" first (see docs/cloudflare-worker.js)');
    return { recipients, raw: body };
  },
  acceptedStatus: 202,
};
