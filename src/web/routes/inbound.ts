/**
 * POST /inbound/<provider>: mail from a provider's webhook (the providers are
 * mail/webhooks/*.ts; `raw`, POST /inbound/raw?to=<address>[&to=…], is the
 * plain signed raw MIME of any relay). This file is the transport every
 * provider shares.
 *
 * Everything that can be decided on the headers is decided before one body
 * byte is read, and such a refusal closes the connection instead of draining
 * the body: 401 for a missing, malformed or stale timestamp or signature, 413
 * for a declared length over the limit, 400 for no or too many recipients,
 * 409 for a delivery already accepted, 503 with Retry-After while
 * webhookMaxConcurrent bodies are being read, or while the sender's client
 * network reads its share of them. The body is then read with the signature
 * computed as it arrives (401 if it does not match; 408, closing the
 * connection, if it arrives below the minimum rate), and the answer is as a
 * provider webhook's should be: 2xx once the message is journaled (never
 * before), 422 "do not retry" when no recipient is a feed or every recipient
 * feed refuses the sender, 507 with Retry-After when every recipient feed is at
 * a limit (its storage quota or its messages per day), 503 with Retry-After when
 * the disk is full.
 */
import type { IncomingMessage } from 'node:http';
import {
  BodyIncompleteError, BodyTooSlowError, FeedmailError, MessageTooLargeError, NotFoundError, RecipientsError, ReplayedDeliveryError, SenderBlockedError,
  UnknownRecipientError, WebhookBusyError,
} from '../../errors.js';
import { receiveMessage, type ReceivedMessage } from '../../mail/ingest.js';
import { clientNetwork } from '../../client-network.js';
import { webhookProviders } from '../../mail/webhooks/index.js';
import type { SignedRequest } from '../../mail/webhooks/provider.js';
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

const providers = new Map(webhookProviders.map((p) => [p.name, p]));

export const inboundRoute: Route = {
  method: 'POST',
  // Only the providers' own paths: any other /inbound/… is not found like every unknown page.
  path: new RegExp(`^/inbound/(${[...providers.keys()].join('|')})$`),
  errors: 'json',
  // Providers authenticate by signature or shared secret, not by being a page of ours.
  crossSite: 'allowed',
  statusFor: (error, [name]) => providers.get(name ?? '')?.statusFor?.(error),
  handler: async ({ req, res, url, client, deps, params: [name] }) => {
    const provider = providers.get(name ?? '');
    const secret = provider?.secret(deps.config);
    if (!provider || !secret) throw new NotFoundError();
    const { config } = deps;
    const signed = provider.checkHeaders({ method: req.method ?? 'POST', target: req.url ?? '', url, headers: req.headers }, secret, deps.stores.queue.clock.now(), deps);
    if (Number(req.headers['content-length'] ?? 0) > config.maxMessageBytes) throw new MessageTooLargeError(config.maxMessageBytes);
    // Recipients named outside the body (raw's ?to=) are counted before reading it.
    if (signed.recipients) checkRecipientCount(signed.recipients, config.smtpMaxRecipients);
    const queue = deps.stores.queue;
    const replayCheckedEarly = signed.replay !== undefined;
    if (signed.replay && await queue.deliveryAccepted(signed.replay.signature)) throw new ReplayedDeliveryError();

    const body = await readBodyInSlot(deps, client, async () => {
      // The server left "Expect: 100-continue" to us: the headers passed, so ask for the body.
      if (/100-continue/i.test(header(req.headers.expect) ?? '')) res.writeContinue();
      const read = await readSignedBody(req, signed, config.maxMessageBytes, webhookBodyGraceMs.get(deps) ?? WEBHOOK_BODY_GRACE_MS);
      await signed.verify(read);
      return read;
    });
    // A provider that signs inside the body (Mailgun's token) names its replay key only now.
    if (!replayCheckedEarly && signed.replay && await queue.deliveryAccepted(signed.replay.signature)) throw new ReplayedDeliveryError();
    const source = `webhook:${provider.name}` as const;
    let received: ReceivedMessage;
    try {
      const delivery = await provider.parse(body, signed);
      if (!delivery) {
        // Authenticated, and no mail in it (SNS's subscription handshake): nothing to journal.
        sendJson(res, provider.acceptedStatus, { accepted: true, stored: false });
        return;
      }
      checkRecipientCount(delivery.recipients, config.smtpMaxRecipients); // whatever the provider, as SMTP's maxRecipients
      received = await receiveMessage({ ...deps, counters: deps.counters.webhook }, {
        source,
        mailFrom: delivery.mailFrom ?? '',
        recipients: delivery.recipients.map((address) => ({ address })),
        raw: delivery.raw,
        // Spent in the same commit as the journal row: accepted and remembered together.
        replay: signed.replay,
      });
    } catch (err) {
      // A provider may say "do not retry" with a 2xx (statusFor): the log keeps why nothing was stored.
      if (err instanceof UnknownRecipientError || err instanceof SenderBlockedError) deps.log.info({ source, code: err.code }, 'webhook: delivery refused, nothing stored');
      // An authenticated request refused for good (its recipients, its sender, its form) is spent
      // like an accepted one: a Mailgun token signs neither the body nor the recipient, so a
      // token left fresh could carry another message to another feed. A refusal that asks for a
      // retry (a full disk or feed, a busy store) leaves it fresh for the provider's retry.
      if (isFinalRefusal(err)) await spendReplayKey(deps, signed);
      throw err;
    }
    const { journalId } = received;
    // Recipients whose feed refuses the sender are final like unknown ones: "rejected".
    sendJson(res, provider.acceptedStatus, { accepted: true, id: journalId, rejected: [...received.unknown, ...received.blocked], deferred: received.full });
  },
};

/**
 * A refusal that a retry of the same request cannot change: a 4xx without Retry-After
 * (unknown recipients, a blocked sender, a malformed delivery), not 503/507 or 429.
 */
function isFinalRefusal(err: unknown): boolean {
  return err instanceof FeedmailError && err.httpStatus < 500 && err.retryAfterSeconds === undefined;
}

/**
 * Remembers the replay key of a delivery refused for good (an accepted one's key is
 * remembered in its message's journal commit, store/journal.ts). Recorded only for a final
 * outcome: a failed journal write leaves the sender free to retry the same request.
 */
async function spendReplayKey(deps: WebDeps, signed: SignedRequest): Promise<void> {
  if (!signed.replay) return;
  try {
    await deps.stores.queue.recordDelivery(signed.replay.signature, signed.replay.expiresAt);
  } catch (err) {
    deps.log.error({ err }, 'webhook: unable to remember the refused delivery; a replay of it within the window would be processed again');
  }
}

/** Every provider's deliveries name at least one recipient and no more than an SMTP message may have. */
function checkRecipientCount(recipients: string[], max: number): void {
  if (recipients.length === 0) throw new RecipientsError('no_recipients', 'The delivery names no recipient (for /inbound/raw: ?to=<address>)');
  if (recipients.length > max) throw new RecipientsError('too_many_recipients', `At most ${max} recipients`);
}

/**
 * Runs `read` holding one of the server's body slots and one of the client
 * network's, or refuses with 503 when either is taken. `client` is the relay's
 * own address even behind a trusted proxy.
 */
async function readBodyInSlot(deps: WebDeps, client: string, read: () => Promise<Buffer>): Promise<Buffer> {
  const { webhookMaxConcurrent } = deps.config;
  const network = clientNetwork(client);
  let inFlight = bodiesInFlight.get(deps);
  if (!inFlight) bodiesInFlight.set(deps, inFlight = { total: 0, perNetwork: new Map() });
  if (inFlight.total >= webhookMaxConcurrent) throw new WebhookBusyError();
  const ours = inFlight.perNetwork.get(network) ?? 0;
  if (ours >= webhookBodiesPerNetwork(webhookMaxConcurrent)) throw new WebhookBusyError(true);
  inFlight.total++;
  inFlight.perNetwork.set(network, ours + 1);
  try {
    return await read();
  } finally {
    inFlight.total--;
    const left = (inFlight.perNetwork.get(network) ?? 1) - 1;
    if (left <= 0) inFlight.perNetwork.delete(network);
    else inFlight.perNetwork.set(network, left);
  }
}

/**
 * Reads the body up to `limit` bytes, feeding each chunk to the provider's
 * signature as it arrives. Over the limit, or below WEBHOOK_MIN_BODY_RATE once
 * `graceMs` have passed, reading stops (the connection is closed after the answer).
 */
function readSignedBody(req: IncomingMessage, signed: SignedRequest, limit: number, graceMs: number): Promise<Buffer> {
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
      signed.update(chunk);
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
