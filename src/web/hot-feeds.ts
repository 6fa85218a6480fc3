/**
 * What the feed document route keeps in memory so that a hot feed is read without a
 * database (issue 14):
 *
 * - the feed row a feed URL secret names, trusted only while app.db's change stamp
 *   (AppStore.changeStamp: any commit by any connection, this process's or another's,
 *   changes it) is the one read before the row was. A new entry, a rename, a rotated
 *   URL or a deleted feed is therefore seen by the very next request in every process;
 *   a rotated or deleted URL finds no row and answers 404.
 * - the rendered bytes (plain, gzip, br) of the documents read most recently, bounded by
 *   FEEDMAIL_MEMORY_CACHE_BYTES, keyed by the feed's URL secret and cache key (feed id,
 *   version, selection, format, encoding, render generation, base URL). The version in
 *   the key comes from a row read under the current stamp, so a document of an older
 *   version is never looked up again; the secret in the key keeps a feed id that SQLite
 *   gives again after a deletion from ever meeting the deleted feed's bytes.
 *
 * Both live as long as their store objects (scoped like feed-document.ts's work in flight),
 * so two servers in one process never share anything.
 */
import type { Feed } from '../store/feeds.js';
import type { Stores } from '../store/index.js';

/** Feed rows remembered by URL secret; past this many, the least recently used are forgotten. */
const MAX_FEEDS = 10_000;

interface Remembered {
  feed: Feed;
  /** The change stamp read before the row was. */
  stamp: string;
}

const feedsByToken = new WeakMap<object, Map<string, Remembered>>();

/**
 * The feed a feed URL secret names, as feedByFeedToken finds it, from memory when nothing
 * was committed to app.db since the row was read.
 */
export async function feedOfFeedToken(stores: Stores, feedToken: string): Promise<Feed | undefined> {
  let known = feedsByToken.get(stores.app);
  if (!known) feedsByToken.set(stores.app, known = new Map());
  const token = feedToken.toLowerCase();
  // Read before the row: a commit after this moment changes the stamp the next request reads.
  const stamp = await stores.app.changeStamp();
  const hit = known.get(token);
  if (hit) {
    known.delete(token);
    if (hit.stamp === stamp) {
      known.set(token, hit);
      return hit.feed;
    }
  }
  const feed = await stores.app.feedByFeedToken(token);
  if (feed) {
    known.set(token, { feed, stamp });
    if (known.size > MAX_FEEDS) known.delete(known.keys().next().value!);
  }
  return feed;
}

/** Rendered documents in memory, least recently used first, bounded by their bytes. */
export class HotDocuments {
  readonly #bodies = new Map<string, Buffer>();
  #bytes = 0;

  constructor(readonly maxBytes: number) {}

  get(key: string): Buffer | undefined {
    const body = this.#bodies.get(key);
    if (body) {
      this.#bodies.delete(key);
      this.#bodies.set(key, body);
    }
    return body;
  }

  set(key: string, body: Buffer): void {
    const old = this.#bodies.get(key);
    if (old) {
      this.#bodies.delete(key);
      this.#bytes -= old.length;
    }
    if (body.length > this.maxBytes) return;
    this.#bodies.set(key, body);
    this.#bytes += body.length;
    for (const [k, b] of this.#bodies) {
      if (this.#bytes <= this.maxBytes) break;
      this.#bodies.delete(k);
      this.#bytes -= b.length;
    }
  }

  get bytes(): number {
    return this.#bytes;
  }
}

const hotDocuments = new WeakMap<object, HotDocuments>();

/** The documents kept in memory in front of `stores.cache`. */
export function hotDocumentsOf(stores: Stores, maxBytes: number): HotDocuments {
  let docs = hotDocuments.get(stores.cache);
  if (!docs) hotDocuments.set(stores.cache, docs = new HotDocuments(maxBytes));
  return docs;
}
