/**
 * POST /inbound/raw?to=<address>[&to=…]: a signed raw message from a relay
 * (the signature scheme is in mail/webhooks/raw.ts).
 *
 * Everything that can be decided on the headers is decided before one body
 * byte is read, and such a refusal closes the connection instead of draining
 * the body: 401 for a missing, malformed or stale timestamp or signature, 413
 * for a declared length over the limit, 409 for a delivery already accepted,
 * 503 with Retry-After while webhookMaxConcurrent bodies are being read, or
 * while the sender's client network reads its share of them. The body is then
 * read with the HMAC computed as it arrives (401 if it does not match; 408,
 * closing the connection, if it arrives below the minimum rate), and the answer is as a provider webhook's should be: 202 once the
 * message is journaled (never before), 422 "do not retry" when no recipient is
 * a feed, 507 with Retry-After when every recipient feed is full, 503 with
 * Retry-After when the disk is.
 */
import type { Hmac } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import {
  BadSignatureError, BodyIncompleteError, BodyTooSlowError, FeedFullError, MessageTooLargeError, NoFeedRecipientError, NotFoundError,
  RecipientsError, ReplayedDeliveryError, UnknownRecipientError, WebhookBusyError,
} from '../../errors.js';
import { acceptMessage, recipientFeed } from '../../mail/ingest.js';
import { clientNetwork } from '../../client-network.js';
import { checkDeliveryHeaders, MAX_SKEW_SECONDS, rawDeliveryMac, signatureMatches } from '../../mail/webhooks/raw.js';
import { sendJson } from '../http.js';
import type { Route, WebDeps } from '../context.js';

/**
 * The least bytes per second a webhook body must average once it has taken
 * WEBHOOK_BODY_GRACE_MS. A relay uploads from a data centre at megabytes per
 * second; 16 KiB/s (128 kbit/s) is far below any real one, yet a sender that
 * trickles a byte at a time loses its slot within seconds instead of holding it
 * until the 30 s requestTimeout. A body smaller than 16 KiB is never slow: it
 * has arrived before the rate can fall below the minimum.
 */
export const WEBHOOK_MIN_BODY_RATE = 16 * 1024;
/** How long a body may take before its average rate counts (TCP slow start, a relay assembling the message). */
export const WEBHOOK_BODY_GRACE_MS = 3_000;
/** For tests only, set by WebServer: replaces WEBHOOK_BODY_GRACE_MS per server. */
export const webhookBodyGraceMs = new WeakMap<WebDeps, number>();

/**
 * Bodies one client network (IPv4 /24, IPv6 /64) may have in flight: a quarter
 * of webhookMaxConcurrent, at least 1, so one network cannot take every slot.
 * A provider delivering from several addresses of one network is slowed, not
 * refused: the 503 asks for a retry within seconds.
 */
export function webhookBodiesPerNetwork(webhookMaxConcurrent: number): number {
  return Math.max(1, Math.floor(webhookMaxConcurrent / 4));
}

/** Bodies being read, in all and per client network, per server (tests run several servers in one process). */
const bodiesInFlight = new WeakMap<WebDeps, { total: number; perNetwork: Map<string, number> }>();

export const inboundRawRoute: Route = {
  method: 'POST',
  path: /^\/inbound\/raw$/,
  errors: 'json',
  handler: async ({ req, res, url, client, deps }) => {
    const { config } = deps;
    if (!config.webhookSecret) throw new NotFoundError();
    const signed = checkDeliveryHeaders(header(req.headers['x-feedmail-timestamp']), header(req.headers['x-feedmail-signature']));
    if ('problem' in signed) throw new BadSignatureError(signed.problem);
    if (Number(req.headers['content-length'] ?? 0) > config.maxMessageBytes) throw new MessageTooLargeError(config.maxMessageBytes);
    const recipients = url.searchParams.getAll('to');
    if (recipients.length === 0) throw new RecipientsError('no_recipients', 'Name the recipients with ?to=<address>');
    if (recipients.length > config.smtpMaxRecipients) throw new RecipientsError('too_many_recipients', `At most ${config.smtpMaxRecipients} recipients`);
    const queue = deps.stores.queue;
    if (await queue.deliveryAccepted(signed.signature)) throw new ReplayedDeliveryError();

    // `client` is the relay's own address even behind a trusted proxy.
    const network = clientNetwork(client);
    let inFlight = bodiesInFlight.get(deps);
    if (!inFlight) bodiesInFlight.set(deps, inFlight = { total: 0, perNetwork: new Map() });
    if (inFlight.total >= config.webhookMaxConcurrent) throw new WebhookBusyError();
    const ours = inFlight.perNetwork.get(network) ?? 0;
    if (ours >= webhookBodiesPerNetwork(config.webhookMaxConcurrent)) throw new WebhookBusyError(true);
    inFlight.total++;
    inFlight.perNetwork.set(network, ours + 1);
    let body: Buffer;
    try {
      // The server left "Expect: 100-continue" to us: the headers passed, so ask for the body.
      if (/100-continue/i.test(header(req.headers.expect) ?? '')) res.writeContinue();
      const mac = rawDeliveryMac(config.webhookSecret, { timestamp: signed.timestamp, method: req.method ?? 'POST', target: req.url ?? '' });
      body = await readSignedBody(req, mac, config.maxMessageBytes, webhookBodyGraceMs.get(deps) ?? WEBHOOK_BODY_GRACE_MS);
      if (!signatureMatches(mac, signed.signature)) throw new BadSignatureError('signature does not match');
    } finally {
      inFlight.total--;
      const left = (inFlight.perNetwork.get(network) ?? 1) - 1;
      if (left <= 0) inFlight.perNetwork.delete(network);
      else inFlight.perNetwork.set(network, left);
    }

    const feedIds = new Set<number>();
    const rejected: string[] = [];
    const deferred: string[] = [];
    for (const address of recipients) {
      try {
        feedIds.add((await recipientFeed(deps.stores.app, address, { mailDomains: config.mailDomains, feedMaxBytes: config.feedMaxBytes })).id);
      } catch (err) {
        if (err instanceof UnknownRecipientError) rejected.push(address);
        else if (err instanceof FeedFullError) deferred.push(address);
        else throw err;
      }
    }
    if (feedIds.size === 0) {
      if (deferred.length > 0) throw new FeedFullError();
      throw new NoFeedRecipientError();
    }
    const journalId = await acceptMessage(queue, { source: 'webhook:raw', mailFrom: '', feedIds: [...feedIds], raw: body }, deps.space);
    // Recorded only now: a failed journal write leaves the sender free to retry the same request.
    const expiresAt = (signed.timestamp + MAX_SKEW_SECONDS + 1) * 1000;
    try {
      if (!await queue.recordDelivery(signed.signature, expiresAt)) {
        deps.log.info({ journalId }, 'webhook: the same delivery arrived twice at once; both were journaled, feeds show it once');
      }
    } catch (err) {
      // The message is durable, so it is acknowledged; only the replay check for this one signature is lost.
      deps.log.error({ err, journalId }, 'webhook: unable to remember the delivery; a replay of it within the window would be accepted');
    }
    deps.onAccepted();
    deps.log.info({ journalId, bytes: body.length, feeds: feedIds.size }, 'webhook: message accepted');
    sendJson(res, 202, { accepted: true, id: journalId, rejected, deferred });
  },
};

/**
 * Reads the body up to `limit` bytes, feeding each chunk to the HMAC as it
 * arrives. Over the limit, or below WEBHOOK_MIN_BODY_RATE once `graceMs` have
 * passed, reading stops (the connection is closed after the answer).
 */
function readSignedBody(req: IncomingMessage, mac: Hmac, limit: number, graceMs: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    const startedAt = Date.now();
    // The average can first drop below the rate when the elapsed time reaches
    // size / rate: check then, not on a fixed tick.
    let rateTimer: NodeJS.Timeout;
    const checkRate = () => {
      const elapsed = Date.now() - startedAt;
      if (elapsed >= graceMs && size * 1000 < WEBHOOK_MIN_BODY_RATE * elapsed) return finish(new BodyTooSlowError(size, elapsed, WEBHOOK_MIN_BODY_RATE));
      const due = Math.max(graceMs, Math.ceil((size * 1000) / WEBHOOK_MIN_BODY_RATE) + 1);
      rateTimer = setTimeout(checkRate, due - elapsed);
    };
    rateTimer = setTimeout(checkRate, graceMs);
    const finish = (err?: Error) => {
      clearTimeout(rateTimer);
      req.off('data', onData).off('end', onEnd).off('error', finish).off('close', onClose);
      if (!err) return resolve(Buffer.concat(chunks, size));
      req.pause();
      reject(err);
    };
    const onData = (chunk: Buffer) => {
      size += chunk.length;
      if (size > limit) return finish(new MessageTooLargeError(limit));
      mac.update(chunk);
      chunks.push(chunk);
    };
    const onEnd = () => finish();
    const onClose = () => finish(new BodyIncompleteError());
    req.on('data', onData).on('end', onEnd).on('error', finish).on('close', onClose);
  });
}

function header(v: string | string[] | undefined): string | undefined {
  return Array.isArray(v) ? v[0] : v;
}
