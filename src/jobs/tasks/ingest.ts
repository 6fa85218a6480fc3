/** The ingest job: turns one journaled message into entries of its feeds. Enqueued by store/journal.ts:journalMessage. */
import { ingestJournalRow } from '../../mail/ingest.js';
import { INGEST_PRIORITY, INGEST_TASK, parseIngestPayload } from '../../store/journal.js';
import type { TaskDefinition } from '../task.js';
import type { TaskDeps } from './deps.js';

export function ingestTask(deps: TaskDeps): TaskDefinition {
  const { stores, processor, log, space, counters, config } = deps;
  return {
    name: INGEST_TASK,
    priority: INGEST_PRIORITY,
    backoffBaseMs: 1_000,
    handler: async (payload, { signal }) => {
      const { journalId } = parseIngestPayload(payload);
      const observeMailToEntry = counters && ((seconds: number) => counters.mailToEntry.observe(seconds));
      await ingestJournalRow({ app: stores.app, queue: stores.queue, processor, log, space, observeMailToEntry, prefetchImages: config.imageProxy }, journalId, signal);
    },
  };
}
