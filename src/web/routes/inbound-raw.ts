/**
 * POST /inbound/raw?to=<address>[&to=…]: a signed raw message from a relay.
 * Answers as a provider webhook should: 202 once the message is journaled
 * (never before), 422 "do not retry" when no recipient is a feed, 413 when too
 * large, 401 on a bad signature, 503 with Retry-After when the disk is full.
 */
import { FeedmailError, MessageTooLargeError, NotFoundError, StorageFullError } from '../../errors.js';
import { acceptMessage, feedForAddress } from '../../mail/ingest.js';
import { verifyRawDelivery } from '../../mail/webhooks/raw.js';
import { readBody, sendJson } from '../http.js';
import type { Route } from '../context.js';

export const inboundRawRoute: Route = {
  method: 'POST',
  path: /^\/inbound\/raw$/,
  handler: async ({ req, res, url, deps }) => {
    const { config } = deps;
    if (!config.webhookSecret) throw new NotFoundError();
    const body = await readBody(req, config.maxMessageBytes).catch((err: unknown) => {
      throw err instanceof FeedmailError && err.code === 'body_too_large' ? new MessageTooLargeError(config.maxMessageBytes) : err;
    });
    const problem = verifyRawDelivery(config.webhookSecret, header(req.headers['x-feedmail-timestamp']), header(req.headers['x-feedmail-signature']), body);
    if (problem) throw new FeedmailError('bad_signature', `Not accepted: ${problem}`, 401);
    const recipients = url.searchParams.getAll('to');
    if (recipients.length === 0) throw new FeedmailError('no_recipients', 'Name the recipients with ?to=<address>', 400);
    if (recipients.length > config.smtpMaxRecipients) throw new FeedmailError('too_many_recipients', `At most ${config.smtpMaxRecipients} recipients`, 400);
    const feedIds: number[] = [];
    const rejected: string[] = [];
    for (const address of recipients) {
      const feed = await feedForAddress(deps.stores.app.db, address, config.mailDomains);
      if (feed) feedIds.push(feed.id);
      else rejected.push(address);
    }
    if (feedIds.length === 0) throw new FeedmailError('unknown_recipient', 'No recipient is a feed here; do not retry', 422);
    if (!deps.hasSpace()) throw new StorageFullError();
    const journalId = await acceptMessage(deps.stores.queue.db, { source: 'webhook:raw', mailFrom: '', feedIds: [...new Set(feedIds)], raw: body });
    deps.onAccepted();
    deps.log.info({ journalId, bytes: body.length, feeds: feedIds.length }, 'webhook: message accepted');
    sendJson(res, 202, { accepted: true, id: journalId, rejected });
  },
};

function header(v: string | string[] | undefined): string | undefined {
  return Array.isArray(v) ? v[0] : v;
}
