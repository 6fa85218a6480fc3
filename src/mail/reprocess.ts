/**
 * Re-renders stored entries from their raw messages (after the parser or
 * sanitizer improved), keeping each entry's share link.
 */
import type { Kysely } from 'kysely';
import { countAllEntries, entriesAfter, replaceEntryContent } from '../store/entries.js';
import { feedsWithRawMessage } from '../store/feeds.js';
import { blobByHash } from '../store/parts.js';
import type { AppSchema } from '../store/schema.js';
import type { RenderPool } from './render-pool.js';

export interface ReprocessProgress {
  done: number;
  skipped: number;
  total: number;
}

export async function reprocessEntries(db: Kysely<AppSchema>, renderer: RenderPool, onProgress: (p: ReprocessProgress) => void): Promise<ReprocessProgress> {
  const progress = { done: 0, skipped: 0, total: await countAllEntries(db) };
  onProgress(progress);
  for (let after = 0; ;) {
    const page = await entriesAfter(db, after, 100);
    if (page.length === 0) break;
    for (const entry of page) {
      after = entry.id;
      const raw = entry.raw_hash ? await blobByHash(db, entry.raw_hash) : undefined;
      if (!raw || !entry.raw_hash) {
        progress.skipped++;
        continue;
      }
      // Redact for every feed that received the same message, as ingest did.
      const recipients = await feedsWithRawMessage(db, entry.raw_hash);
      const secrets = recipients.map((f) => ({ inboxToken: f.inbox_token, feedToken: f.feed_token }));
      // This entry's feed keeps its own confirm link whole, as ingest stored it.
      const rendered = await renderer.render(raw, secrets);
      const own = recipients.findIndex((f) => f.id === entry.feed_id);
      await replaceEntryContent(db, entry.id, { ...rendered, confirmUrl: own >= 0 ? rendered.confirmUrls[own] ?? null : rendered.confirmUrl });
      progress.done++;
      if (progress.done % 100 === 0) onProgress(progress);
    }
  }
  return progress;
}
