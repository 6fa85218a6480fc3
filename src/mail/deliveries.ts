/**
 * What a feed's owner is shown of the mail sent to it (store/deliveries.ts keeps it):
 * the sender, subject and reason as intake knew them, with the secrets of the message's
 * recipient feeds removed (a sender may well write a feed's address into its subject or
 * envelope, as VERP bounce addresses do) and bounded in length.
 *
 * Recording a refusal is best effort: a failure is logged and the refusal stands as it
 * was decided. And it is bounded per feed: past REFUSALS_RECORDED_PER_MINUTE refusals of
 * one feed within a minute, further ones are only counted (/metrics), so a flood of
 * refused mail costs the database a bounded number of writes per feed.
 */
import type { Logger } from '../log.js';
import type { Feed } from '../store/feeds.js';
import type { QueueStore } from '../store/index.js';
import type { DeliveryFacts, Refusal } from '../store/deliveries.js';
import { redactor } from './redact.js';

/** Refusals of one feed written per minute, at most. */
export const REFUSALS_RECORDED_PER_MINUTE = 30;
/** Characters of a sender address and of a reason kept. */
const SENDER_MAX_CHARS = 254;
const DETAIL_MAX_CHARS = 300;

/** Refusals recorded in the current minute, per feed, per queue store (tests run several servers in one process). */
const recorded = new WeakMap<QueueStore, { minute: number; perFeed: Map<number, number> }>();

function cut(s: string, max: number): string {
  // No control characters: the text goes into a page and, through logs, into terminals.
  const line = s.replace(/[\u0000-\u001f\u007f-\u009f]/g, ' ');
  return line.length > max ? `${line.slice(0, max - 1)}…` : line;
}

type FeedSecrets = Pick<Feed, 'inbox_token' | 'feed_token'>;

function redactorOf(feeds: FeedSecrets[]): (text: string) => string {
  return redactor(feeds.map((f) => ({ inboxToken: f.inbox_token, feedToken: f.feed_token })));
}

/** The facts of a message with every given feed's secrets removed, bounded. */
export function shownFacts(feeds: FeedSecrets[], facts: DeliveryFacts, redact = redactorOf(feeds)): DeliveryFacts {
  return {
    sender: cut(redact(facts.sender), SENDER_MAX_CHARS),
    subject: facts.subject === null ? null : redact(facts.subject),
    size: facts.size,
  };
}

function mayRecord(queue: QueueStore, feedId: number): boolean {
  const minute = Math.floor(queue.clock.now() / 60_000);
  let window = recorded.get(queue);
  if (!window || window.minute !== minute) recorded.set(queue, window = { minute, perFeed: new Map() });
  const n = window.perFeed.get(feedId) ?? 0;
  if (n >= REFUSALS_RECORDED_PER_MINUTE) return false;
  window.perFeed.set(feedId, n + 1);
  return true;
}

/**
 * Lists a refusal in the feed's recent deliveries. `feeds`: the feeds whose secrets the
 * text must not show (the refused feed and the message's other recipients). Never throws.
 */
export async function recordRefusal(
  deps: { stores: { queue: QueueStore }; log: Logger },
  feed: Pick<Feed, 'id' | 'inbox_token' | 'feed_token'>,
  refusal: Omit<Refusal, 'feedId'>,
  feeds: FeedSecrets[] = [feed],
): Promise<void> {
  const { queue } = deps.stores;
  try {
    if (!mayRecord(queue, feed.id)) return;
    const redact = redactorOf(feeds);
    await queue.recordRefusal({
      ...refusal,
      ...shownFacts(feeds, refusal, redact),
      feedId: feed.id,
      detail: cut(redact(refusal.detail), DETAIL_MAX_CHARS),
    });
  } catch (err) {
    deps.log.warn({ err, feedId: feed.id }, 'mail: unable to record a refused delivery');
  }
}
