/**
 * feedmail's Cloudflare Email Worker: hands every message that an Email Routing rule
 * sends to this Worker over to feedmail's POST /inbound/cloudflare, signed.
 *
 * Set up (see docs/inbound.md, "Cloudflare Email Workers"):
 *   - variable FEEDMAIL_URL = https://<your feedmail host>/inbound/cloudflare
 *   - secret   FEEDMAIL_SECRET = the same value as feedmail's FEEDMAIL_CLOUDFLARE_SECRET
 *     (`npx wrangler secret put FEEDMAIL_SECRET`)
 *   - Email Routing: a catch-all (or per-address) rule "Send to a Worker" -> this Worker.
 *
 * What it sends: the message with one line in front, `Delivered-To: <message.to>` (the
 * recipient, as a mail server delivering it would add it), and two headers:
 *   X-Feedmail-Timestamp: <unix seconds>
 *   X-Feedmail-Signature: <hex HMAC-SHA256(FEEDMAIL_SECRET, "<timestamp>." + body)>
 * so neither the message nor its recipient can be changed on the way.
 *
 * feedmail's answer: 2xx (stored) or 409 (already stored: a retry) is success; 400, 413
 * and 422 (no such feed, sender refused, unreadable or too large) will never succeed, so the
 * message is rejected back to its sender; anything else (503 disk full, 507 feed full, a
 * network error, 401 after a clock or secret mix-up) throws, so the delivery is not
 * confirmed and can be tried again.
 */
/* global crypto, fetch, Response, TextEncoder */

const encoder = new TextEncoder();

/** Hex HMAC-SHA256 of `<timestamp>.` followed by the body, with Web Crypto. */
async function sign(secret, timestamp, body) {
  const key = await crypto.subtle.importKey('raw', encoder.encode(secret), { name: 'HMAC', hash: 'SHA-256' }, false, ['sign']);
  const prefix = encoder.encode(`${timestamp}.`);
  const signed = new Uint8Array(prefix.length + body.length);
  signed.set(prefix, 0);
  signed.set(body, prefix.length);
  const mac = new Uint8Array(await crypto.subtle.sign('HMAC', key, signed));
  return Array.from(mac, (b) => b.toString(16).padStart(2, '0')).join('');
}

/** The raw message with `Delivered-To: <to>` in front. */
function withDeliveredTo(to, raw) {
  const line = encoder.encode(`Delivered-To: ${String(to).replace(/[\r\n]/g, '')}\r\n`);
  const body = new Uint8Array(line.length + raw.length);
  body.set(line, 0);
  body.set(raw, line.length);
  return body;
}

/** Statuses after which trying again cannot help: the message is refused to its sender. */
const FINAL_REFUSALS = new Set([400, 413, 422]);

export default {
  async email(message, env) {
    const raw = new Uint8Array(await new Response(message.raw).arrayBuffer());
    const body = withDeliveredTo(message.to, raw);
    const timestamp = String(Math.floor(Date.now() / 1000));
    const res = await fetch(env.FEEDMAIL_URL, {
      method: 'POST',
      headers: {
        'Content-Type': 'message/rfc822',
        'X-Feedmail-Timestamp': timestamp,
        'X-Feedmail-Signature': await sign(env.FEEDMAIL_SECRET, timestamp, body),
      },
      body,
    });
    if (res.ok || res.status === 409) return;
    if (FINAL_REFUSALS.has(res.status)) {
      message.setReject(`feedmail refused the message (${res.status}): ${(await res.text()).slice(0, 200)}`);
      return;
    }
    throw new Error(`feedmail answered ${res.status}; the message was not stored`);
  },
  // For tests and other JavaScript relays; the Workers runtime uses only email().
  sign,
  withDeliveredTo,
};
