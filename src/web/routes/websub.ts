/**
 * POST /websub: the WebSub hub (W3C WebSub, section 5.1). A subscriber names a topic (one of
 * a feed's document URLs, which carry the feed URL secret, so only someone who can read the
 * feed can subscribe to it) and its callback; the hub answers 202 and verifies the intent
 * in a queued job (jobs/tasks/websub.ts) before anything is stored or delivered.
 * A machine endpoint: errors are answered as JSON, and other sites may post to it.
 */
import { createHash } from 'node:crypto';
import { BadRequestError, NotFoundError, WebsubSubscriptionsFullError } from '../../errors.js';
import { checkedAddress, RefusedAddressError } from '../../net/safe-fetch.js';
import { WEBSUB_VERIFY_TASK, type VerifyPayload } from '../../jobs/tasks/websub.js';
import { readFields, sendText } from '../http.js';
import type { Route } from '../context.js';
import { parseTopic, selectionOf } from '../websub-topic.js';

/** hub.secret must be under 200 bytes (WebSub 5.1). */
const SECRET_MAX_BYTES = 199;
const CALLBACK_MAX_CHARS = 2048;

export const websubRoute: Route = {
  method: 'POST',
  path: /^\/websub$/,
  errors: 'json',
  crossSite: 'allowed',
  handler: async (ctx) => {
    const { deps, res } = ctx;
    const { config, stores, urls } = deps;
    const f = await readFields(ctx.req);
    const mode = f['hub.mode'];
    if (mode !== 'subscribe' && mode !== 'unsubscribe') throw new BadRequestError('hub.mode must be subscribe or unsubscribe');

    const rawCallback = f['hub.callback'] ?? '';
    let callback: URL;
    try {
      callback = new URL(rawCallback);
    } catch {
      throw new BadRequestError('hub.callback must be an absolute http or https URL');
    }
    if ((callback.protocol !== 'http:' && callback.protocol !== 'https:') || rawCallback.length > CALLBACK_MAX_CHARS || callback.username || callback.password) {
      throw new BadRequestError(`hub.callback must be an http or https URL of at most ${CALLBACK_MAX_CHARS} characters, without credentials`);
    }
    callback.hash = '';

    const parsed = parseTopic(f['hub.topic'] ?? '', urls.base);
    if (!parsed) throw new NotFoundError();
    const feed = await stores.app.feedByFeedToken(parsed.feedToken);
    if (!feed) throw new NotFoundError();
    if (parsed.senderKey !== null && !(await selectionOf(ctx, feed, { sender_key: parsed.senderKey }))) throw new NotFoundError();
    const topic = parsed.senderKey === null ? urls.feed(feed.feed_token, parsed.format) : urls.senderFeed(feed.feed_token, parsed.senderKey, parsed.format);

    const secret = f['hub.secret'];
    if (secret !== undefined && Buffer.byteLength(secret) > SECRET_MAX_BYTES) throw new BadRequestError('hub.secret must be shorter than 200 bytes');
    let leaseSeconds = config.websubLeaseDefaultSeconds;
    const askedLease = f['hub.lease_seconds'];
    if (askedLease !== undefined && askedLease !== '') {
      if (!/^\d{1,12}$/.test(askedLease)) throw new BadRequestError('hub.lease_seconds must be a whole number of seconds');
      leaseSeconds = Math.min(config.websubLeaseMaxSeconds, Math.max(config.websubLeaseMinSeconds, Number(askedLease)));
    }

    if (mode === 'subscribe') {
      const renewal = await stores.app.websubSubscriptionExists(feed.id, topic, callback.href);
      if (!renewal && (await stores.app.countWebsubSubscriptions(feed.id)) >= config.websubMaxSubscriptionsPerFeed) throw new WebsubSubscriptionsFullError();
    }
    // Checked here so a refused callback learns it at once; checked again before every request the hub makes.
    try {
      await checkedAddress(callback, config.websubAllowPrivate);
    } catch (err) {
      if (err instanceof RefusedAddressError) throw new BadRequestError('hub.callback must not be a loopback, private, link-local or otherwise reserved address');
      throw new BadRequestError('hub.callback\'s host could not be resolved');
    }

    const payload: VerifyPayload = {
      mode, feedId: feed.id, feedToken: feed.feed_token, topic, base: urls.base, format: parsed.format, senderKey: parsed.senderKey,
      callback: callback.href, secret: secret === undefined || secret === '' ? null : secret, leaseSeconds,
    };
    // The same request repeated while its verification waits makes no second one.
    const key = createHash('sha256').update(JSON.stringify([mode, feed.id, topic, callback.href])).digest('hex');
    await stores.queue.enqueueJob({ task: WEBSUB_VERIFY_TASK, payload, maxAttempts: 3, idempotencyKey: `websub-verify:${key}` });
    deps.onAccepted();
    sendText(res, 202, 'Accepted: the hub will verify the request with the callback\n');
  },
};
