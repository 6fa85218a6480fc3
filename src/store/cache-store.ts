/** cache.db behind one object: rendered feed documents, bounded by bytes. Losing it loses nothing. */
import * as cache from './cache.js';
import * as images from './images.js';
import type { CacheSchema } from './schema.js';
import { Store } from './store.js';

export class CacheStore extends Store<CacheSchema> {
  readonly cachedDocument = this.timed('read a cached document', cache.cachedDocument);
  readonly cachedDocumentBytes = this.op('size a cached document', cache.cachedDocumentBytes);
  readonly storeDocument = this.timed('cache a document', cache.storeDocument);
  readonly cacheBytes = this.op('measure the cache', cache.cacheBytes);
  readonly evictCache = this.op('evict cached documents', cache.evictCache);
  readonly deleteCachedFeed = this.op('drop a feed\'s cached documents', cache.deleteCachedFeed);
  // Images fetched by the image proxy (store/images.ts)
  readonly cachedImage = this.timed('read a cached image', images.cachedImage);
  readonly storeImage = this.timed('cache an image', images.storeImage);
  readonly storeImageFailure = this.timed('remember a failed image', images.storeImageFailure);
  readonly imageCacheBytes = this.op('measure the image cache', images.imageCacheBytes);
}
