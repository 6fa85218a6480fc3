/** WebSub topics: the feed document URLs this server hands out, whole-feed or per-sender. */
import { SENDER_KEY_IN_PATH } from '../feeds/senders.js';
import { SECRET_IN_PATH } from '../secrets.js';
import type { Feed } from '../store/feeds.js';
import type { WebsubSubscription } from '../store/websub.js';
import type { Format } from './routes/feed-document.js';
import { senderAddressOf, senderSelection } from './routes/sender-feed.js';
import { wholeFeed, type EntrySelection, type RenderContext } from './routes/feed-document.js';

export const WHOLE_TOPIC = new RegExp(String.raw`^/feeds/${SECRET_IN_PATH}\.(atom|rss|json)$`, 'i');
export const SENDER_TOPIC = new RegExp(String.raw`^/feeds/${SECRET_IN_PATH}/senders/${SENDER_KEY_IN_PATH}\.(atom|rss|json)$`, 'i');

export interface ParsedTopic {
  feedToken: string;
  senderKey: string | null;
  format: Format;
}

/** The parts of a topic URL made of `base`, or undefined when it is none of our feed documents. */
export function parseTopic(topic: string, base: string): ParsedTopic | undefined {
  if (!topic.startsWith(`${base}/feeds/`)) return undefined;
  const path = topic.slice(base.length);
  const whole = WHOLE_TOPIC.exec(path);
  if (whole) return { feedToken: whole[1]!.toLowerCase(), senderKey: null, format: whole[2]!.toLowerCase() as Format };
  const sender = SENDER_TOPIC.exec(path);
  if (sender) return { feedToken: sender[1]!.toLowerCase(), senderKey: sender[2]!.toLowerCase(), format: sender[3]!.toLowerCase() as Format };
  return undefined;
}

/** The entries a subscription's topic carries, or undefined when its sender has no entry left in the feed. */
export async function selectionOf(ctx: RenderContext, feed: Feed, sub: Pick<WebsubSubscription, 'sender_key'>): Promise<EntrySelection | undefined> {
  if (sub.sender_key === null) return wholeFeed;
  const address = await senderAddressOf(ctx, feed, sub.sender_key);
  return address === undefined ? undefined : senderSelection(address, sub.sender_key);
}
