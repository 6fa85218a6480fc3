/**
 * Reprocesses stored entries from their raw messages (after the parser or
 * sanitizer improved), keeping each entry's share link.
 */
import type { AppStore } from '../store/index.js';
import type { ProcessPool } from './process-pool.js';

export interface ReprocessProgress {
  done: number;
  skipped: number;
  total: number;
}

export async function reprocessEntries(app: AppStore, processor: ProcessPool, onProgress: (p: ReprocessProgress) => void): Promise<ReprocessProgress> {
  const progress = { done: 0, skipped: 0, total: await app.countAllEntries() };
  onProgress(progress);
  for (let after = 0; ;) {
    const page = await app.entriesAfter(after, 100);
    if (page.length === 0) break;
    for (const entry of page) {
      after = entry.id;
      const raw = entry.raw_hash ? await app.blobByHash(entry.raw_hash) : undefined;
      if (!raw || !entry.raw_hash) {
        progress.skipped++;
        continue;
      }
      // Redact for every feed that received the same message, as ingest did.
      const recipients = await app.feedsWithRawMessage(entry.raw_hash);
      const secrets = recipients.map((f) => ({ inboxToken: f.inbox_token, feedToken: f.feed_token }));
      // This entry's feed keeps its own confirm link whole, as ingest stored it.
      const processed = await processor.process(raw, secrets);
      const own = recipients.findIndex((f) => f.id === entry.feed_id);
      await app.replaceEntryContent(entry.id, { ...processed, confirmUrl: own >= 0 ? processed.confirmUrls[own] ?? null : processed.confirmUrl });
      progress.done++;
      if (progress.done % 100 === 0) onProgress(progress);
    }
  }
  return progress;
}
