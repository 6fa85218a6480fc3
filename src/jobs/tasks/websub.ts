/**
 * The WebSub hub's queued work (see web/routes/websub.ts): verifying a subscriber's intent
 * before a subscription is stored or removed, and delivering a feed's current document to
 * each subscriber when an entry is stored (enqueued by mail/ingest.ts). Every request goes
 * through net/safe-fetch.ts. Logs name subscriptions and feeds by id only: a topic carries
 * the feed URL secret, a callback may carry the subscriber's.
 */
import { createHmac, randomBytes } from 'node:crypto';
import { InvalidJobPayloadError } from '../../errors.js';
import { RefusedAddressError, safeFetch } from '../../net/safe-fetch.js';
import { CONTENT_TYPE_OF, renderFeedDocument, type Format, type RenderContext } from '../../web/routes/feed-document.js';
import { imageSignerFor } from '../../web/image-proxy.js';
import { Urls } from '../../web/urls.js';
import { selectionOf } from '../../web/websub-topic.js';
import type { Logger } from '../../log.js';
import type { Job } from '../../store/jobs.js';
import type { TaskDefinition } from '../task.js';
import type { TaskDeps } from './deps.js';

export const WEBSUB_VERIFY_TASK = 'websub-verify';
export const WEBSUB_DELIVER_TASK = 'websub-deliver';

/** Per request the hub makes. */
const TIMEOUT_MS = 10_000;
/** What is read of a subscriber's answer: a challenge is short, a delivery's answer is ignored. */
const ANSWER_MAX_BYTES = 64 * 1024;
/** A delivery is retried with backoff (2 s, doubling, with jitter) for about a quarter of an hour, then given up. */
export const DELIVERY_MAX_ATTEMPTS = 10;

export interface VerifyPayload {
  mode: 'subscribe' | 'unsubscribe';
  feedId: number;
  feedToken: string;
  topic: string;
  base: string;
  format: Format;
  senderKey: string | null;
  callback: string;
  secret: string | null;
  leaseSeconds: number;
}

export interface DeliverPayload {
  subscriptionId: number;
  entryId: number;
}

function parseVerify(p: unknown): VerifyPayload {
  const v = p as Partial<VerifyPayload> | null;
  if (!v || (v.mode !== 'subscribe' && v.mode !== 'unsubscribe') || !Number.isSafeInteger(v.feedId) || typeof v.feedToken !== 'string'
    || typeof v.topic !== 'string' || typeof v.base !== 'string' || !['atom', 'rss', 'json'].includes(v.format as string)
    || typeof v.callback !== 'string' || !Number.isSafeInteger(v.leaseSeconds)) {
    throw new InvalidJobPayloadError(`${WEBSUB_VERIFY_TASK} job: malformed payload`);
  }
  return { ...v, senderKey: v.senderKey ?? null, secret: v.secret ?? null } as VerifyPayload;
}

function parseDeliver(p: unknown): DeliverPayload {
  const v = p as Partial<DeliverPayload> | null;
  if (!v || !Number.isSafeInteger(v.subscriptionId) || !Number.isSafeInteger(v.entryId)) {
    throw new InvalidJobPayloadError(`${WEBSUB_DELIVER_TASK} job: the payload must be {"subscriptionId": <integer>, "entryId": <integer>}`);
  }
  return v as DeliverPayload;
}

/**
 * A failed request: thrown, so the runner retries it later, but on the last attempt only
 * logged, so a subscriber that went away leaves no failed job for each entry behind (and
 * no failed verification that would hold the idempotency key of a later, identical request).
 */
function failed(job: Job, log: Logger, feedId: number, message: string): void {
  if (job.attempts + 1 < job.max_attempts) throw new Error(message);
  log.warn({ feedId, jobId: job.id, attempts: job.attempts + 1 }, `${message}; given up`);
}

/** hub.challenge is sent to the callback; only a subscriber that echoes it is (un)subscribed. */
export function websubVerifyTask({ stores, config, log }: TaskDeps): TaskDefinition {
  return {
    name: WEBSUB_VERIFY_TASK,
    backoffBaseMs: 5_000,
    handler: async (payload, { job }) => {
      const p = parseVerify(payload);
      const feed = await stores.app.feedById(p.feedId);
      // A feed deleted, or its URL rotated, since the request: the topic is gone.
      if (!feed || feed.feed_token !== p.feedToken) return;
      const challenge = randomBytes(24).toString('base64url');
      const url = new URL(p.callback);
      url.searchParams.append('hub.mode', p.mode);
      url.searchParams.append('hub.topic', p.topic);
      url.searchParams.append('hub.challenge', challenge);
      if (p.mode === 'subscribe') url.searchParams.append('hub.lease_seconds', String(p.leaseSeconds));
      let answer;
      try {
        answer = await safeFetch(url.href, { method: 'GET', timeoutMs: TIMEOUT_MS, maxBytes: ANSWER_MAX_BYTES, allowPrivate: config.websubAllowPrivate });
      } catch (err) {
        if (err instanceof RefusedAddressError) {
          log.info({ feedId: feed.id }, 'websub: intent not verified, the callback resolves to a refused address');
          return;
        }
        return failed(job, log, feed.id, `websub: the callback could not be reached to verify intent: ${(err as Error).message}`);
      }
      if (answer.status < 200 || answer.status > 299 || answer.body.toString('utf8') !== challenge) {
        log.info({ feedId: feed.id, mode: p.mode, status: answer.status }, 'websub: intent not verified, the callback did not echo the challenge');
        return;
      }
      if (p.mode === 'unsubscribe') {
        await stores.app.deleteWebsubSubscription(feed.id, p.topic, p.callback);
        log.info({ feedId: feed.id }, 'websub: unsubscribed');
        return;
      }
      const stored = await stores.app.upsertWebsubSubscription({
        feedId: feed.id, feedToken: p.feedToken, topic: p.topic, base: p.base, format: p.format, senderKey: p.senderKey,
        callback: p.callback, secret: p.secret, leaseSeconds: p.leaseSeconds,
      }, config.websubMaxSubscriptionsPerFeed);
      if (stored) log.info({ feedId: feed.id, leaseSeconds: p.leaseSeconds }, 'websub: subscription verified');
      else log.info({ feedId: feed.id }, 'websub: subscription verified but the feed has as many as allowed; not stored');
    },
  };
}

/** POSTs a subscription's topic, as GET renders it now, to its callback; retried with backoff on failure. */
export function websubDeliverTask({ stores, config, log }: TaskDeps): TaskDefinition {
  return {
    name: WEBSUB_DELIVER_TASK,
    backoffBaseMs: 2_000,
    backoffMaxMs: 5 * 60_000,
    handler: async (payload, { job }) => {
      const { subscriptionId } = parseDeliver(payload);
      const sub = await stores.app.websubSubscriptionById(subscriptionId);
      if (!sub || sub.lease_expires_at <= stores.app.clock.now()) return;
      const feed = await stores.app.feedById(sub.feed_id);
      if (!feed) return;
      if (feed.feed_token !== sub.feed_token) {
        // The feed URL was rotated: the old topic is no more, and the new URL must not reach its subscribers.
        await stores.app.deleteWebsubSubscriptionById(sub.id);
        log.info({ feedId: feed.id, subscriptionId: sub.id }, 'websub: subscription ended, the feed URL was rotated');
        return;
      }
      const ctx: RenderContext = { deps: { stores, config, urls: new Urls(sub.base, await imageSignerFor(stores.app, config)) } };
      const selection = await selectionOf(ctx, feed, sub);
      if (!selection) return;
      const body = await renderFeedDocument(ctx, feed, selection, sub.format);
      const headers: Record<string, string> = {
        'Content-Type': CONTENT_TYPE_OF[sub.format],
        Link: `<${ctx.deps.urls.websubHub()}>; rel="hub", <${sub.topic}>; rel="self"`,
      };
      if (sub.secret !== null) headers['X-Hub-Signature'] = `sha256=${createHmac('sha256', sub.secret).update(body).digest('hex')}`;
      let answer;
      try {
        answer = await safeFetch(sub.callback, { method: 'POST', headers, body, timeoutMs: TIMEOUT_MS, maxBytes: ANSWER_MAX_BYTES, allowPrivate: config.websubAllowPrivate });
      } catch (err) {
        if (err instanceof RefusedAddressError) {
          log.info({ feedId: feed.id, subscriptionId: sub.id }, 'websub: not delivered, the callback now resolves to a refused address');
          return;
        }
        return failed(job, log, feed.id, `websub: delivery to subscription ${sub.id} failed: ${(err as Error).message}`);
      }
      if (answer.status === 410) {
        // "Gone": the subscriber asks for no more deliveries.
        await stores.app.deleteWebsubSubscriptionById(sub.id);
        return;
      }
      if (answer.status < 200 || answer.status > 299) failed(job, log, feed.id, `websub: subscription ${sub.id}'s callback answered ${answer.status}`);
    },
  };
}
