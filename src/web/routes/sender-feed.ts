/**
 * GET /feeds/<feed-secret>/senders/<sender-key>.(atom|rss|json): one sender's entries
 * of a feed, so a reader can follow one newsletter of a shared inbox. The key is a hash
 * of the address (feeds/senders.ts); the feed page lists each sender with its URLs.
 * Documents are bounded, cached and revalidated exactly as the whole feed's.
 */
import { NotFoundError } from '../../errors.js';
import { senderDomain, senderKey, SENDER_KEY_IN_PATH } from '../../feeds/senders.js';
import { SECRET_IN_PATH } from '../../secrets.js';
import type { Feed } from '../../store/feeds.js';
import { foundOr404 } from '../http.js';
import type { Route } from '../context.js';
import { feedDocumentHead } from '../presenters.js';
import { serveFeedDocument, type EntrySelection, type Format, type RenderContext } from './feed-document.js';
import { domainIconRef, feedIconRef } from './icons.js';

/** The addresses behind a feed's sender keys, per feed version, for the last few hundred feeds read. */
const byKeyCache = new WeakMap<object, Map<number, { version: number; byKey: Map<string, string> }>>();
const FEEDS_REMEMBERED = 256;

/** The sender address a key names in this feed, or undefined when no entry of the feed has it. */
export async function senderAddressOf(ctx: RenderContext, feed: Feed, key: string): Promise<string | undefined> {
  const app = ctx.deps.stores.app;
  let feeds = byKeyCache.get(app);
  if (!feeds) byKeyCache.set(app, feeds = new Map());
  let known = feeds.get(feed.id);
  if (!known || known.version !== feed.version) {
    const addresses = await app.senderAddressesOfFeed(feed.id);
    known = { version: feed.version, byKey: new Map(addresses.map((a) => [senderKey(feed.id, a), a])) };
    feeds.delete(feed.id);
    if (feeds.size >= FEEDS_REMEMBERED) feeds.delete(feeds.keys().next().value!);
    feeds.set(feed.id, known);
  }
  return known.byKey.get(key);
}

/** The entries of one sender address (any ASCII case). */
export function senderSelection(fromAddress: string, key: string): EntrySelection {
  return {
    tag: `sender-${key}`,
    head: async ({ deps }, feed, entries) => {
      const { urls } = deps;
      const whole = feedDocumentHead(feed, urls);
      const name = entries[0]?.from_name || fromAddress || 'Unknown sender';
      const domain = senderDomain(fromAddress);
      return {
        ...whole,
        id: `${whole.id}:sender:${key}`,
        title: `${name} · ${whole.title}`,
        atomUrl: urls.senderFeed(feed.feed_token, key, 'atom'),
        rssUrl: urls.senderFeed(feed.feed_token, key, 'rss'),
        jsonUrl: urls.senderFeed(feed.feed_token, key, 'json'),
        icon: domainIconRef(domain, urls) ?? feedIconRef(feed, await deps.stores.app.feedIconTag(feed.id), urls),
      };
    },
    entries: ({ deps }, feed, limit, maxHtmlBytes) => deps.stores.app.documentEntriesOfSender(feed.id, fromAddress, limit, maxHtmlBytes),
  };
}

export const senderFeedRoute: Route = {
  method: 'GET',
  path: new RegExp(String.raw`^/feeds/${SECRET_IN_PATH}/senders/${SENDER_KEY_IN_PATH}\.(atom|rss|json)$`, 'i'),
  errors: (params) => (params[2]?.toLowerCase() === 'json' ? 'json' : 'html'),
  handler: async (ctx) => {
    const feed = foundOr404(await ctx.deps.stores.app.feedByFeedToken(ctx.params[0]!));
    const key = ctx.params[1]!.toLowerCase();
    const address = await senderAddressOf(ctx, feed, key);
    if (address === undefined) throw new NotFoundError();
    await serveFeedDocument(ctx, feed, senderSelection(address, key), ctx.params[2]!.toLowerCase() as Format);
  },
};
