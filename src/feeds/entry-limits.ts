/**
 * How many entries a feed's documents carry and how many it keeps: the feed's own
 * numbers (set on its manage page), never more than the instance's settings
 * (FEEDMAIL_FEED_MAX_ENTRIES, FEEDMAIL_FEED_KEEP_ENTRIES); null means the instance's.
 * The trim task applies the same rule in SQL (store/entries.ts trimFeeds).
 */
import type { Config } from '../config.js';
import type { Feed } from '../store/feeds.js';

export interface EntryLimits {
  documentEntries: number;
  keepEntries: number;
}

export function entryLimits(feed: Pick<Feed, 'document_entries' | 'keep_entries'>, config: Pick<Config, 'feedMaxEntries' | 'feedKeepEntries'>): EntryLimits {
  const keepEntries = Math.min(feed.keep_entries ?? config.feedKeepEntries, config.feedKeepEntries);
  // A document cannot carry entries that are no longer kept.
  const documentEntries = Math.min(feed.document_entries ?? config.feedMaxEntries, config.feedMaxEntries, keepEntries);
  return { documentEntries, keepEntries };
}
