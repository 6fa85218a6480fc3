/**
 * The one path every message takes, top to bottom:
 *   1. resolve recipients to feeds (unknown ones are refused by the caller);
 *   2. journal the raw bytes together with an ingest job, durably: only then
 *      may the sender hear "250" / 2xx;
 *   3. later, a worker renders the message once and stores one entry per feed,
 *      idempotently (one entry per journal row and feed).
 */
import { FeedFullError, isDiskFull, StorageFullError, TemporaryFailureError, UnknownRecipientError } from '../errors.js';
import type { Logger } from '../log.js';
import { hashContent, type ContentHashes } from '../store/entries.js';
import type { SpaceGuard } from '../ops/storage-guard.js';
import type { Feed } from '../store/feeds.js';
import type { AppStore, QueueStore } from '../store/index.js';
import type { JournalRow } from '../store/journal.js';
import type { RenderPool } from './render-pool.js';
import type { RenderedForRecipients } from './render.js';

/** Maps an address to its feed: `<inbox-token>[+anything]@<one of our domains>`, any case. */
export async function feedForAddress(app: AppStore, address: string, domains: string[]): Promise<Feed | undefined> {
  const at = address.lastIndexOf('@');
  if (at <= 0) return undefined;
  const domain = address.slice(at + 1).toLowerCase().replace(/\.$/, '');
  if (!domains.includes(domain)) return undefined;
  const local = address.slice(0, at).toLowerCase().replace(/^"|"$/g, '');
  return app.feedByInboxToken(local.split('+')[0] ?? '');
}

export interface RecipientLimits {
  mailDomains: string[];
  /** A feed holding this many bytes or more takes no new mail until it has room again. */
  feedMaxBytes: number;
}

/**
 * The feed an address delivers to, checked as SMTP's RCPT TO and the webhooks
 * need it: throws UnknownRecipientError (550, "do not retry") or FeedFullError
 * (452 4.2.2, retry later) when the message must not be taken for it.
 */
export async function recipientFeed(app: AppStore, address: string, limits: RecipientLimits): Promise<Feed> {
  const feed = await feedForAddress(app, address, limits.mailDomains);
  if (!feed) throw new UnknownRecipientError();
  if (await app.feedBytes(feed.id) >= limits.feedMaxBytes) throw new FeedFullError();
  return feed;
}

export interface AcceptInput {
  source: string;
  mailFrom: string;
  feedIds: number[];
  raw: Buffer;
}

/**
 * Makes a message durable. Resolves with the journal id once the message and
 * its job are committed; rejects with StorageFullError or TemporaryFailureError,
 * which callers turn into 452/451 or 503 so the sender retries.
 */
export async function acceptMessage(queue: QueueStore, input: AcceptInput, space?: SpaceGuard): Promise<number> {
  // The bytes are set aside before writing, so messages arriving together cannot jointly
  // take the disk below the minimum that each one alone would have respected.
  const release = space ? space.reserve(input.raw.length) : () => undefined;
  if (!release) throw new StorageFullError();
  try {
    return await queue.journalMessage(input);
  } catch (err) {
    if (isDiskFull(err)) throw new StorageFullError({ cause: err });
    throw new TemporaryFailureError('mail: unable to journal message', { cause: err });
  } finally {
    release();
  }
}

export interface IngestDeps {
  app: AppStore;
  queue: QueueStore;
  renderer: RenderPool;
  log: Logger;
  /** The data directory's free space; asked again right before storing. */
  space?: SpaceGuard;
}

/** Handler of the `ingest` job. Safe to run more than once for the same journal row. */
export async function ingestJournalRow(deps: IngestDeps, journalId: number, signal?: AbortSignal): Promise<{ stored: number }> {
  const row = await deps.queue.journalById(journalId);
  if (!row) {
    deps.log.warn({ journalId }, 'ingest: journal row is gone (retention ran before processing?)');
    return { stored: 0 };
  }
  const feedIds = JSON.parse(row.feed_ids) as number[];
  const feeds = (await Promise.all(feedIds.map((id) => deps.app.feedById(id)))).filter((f): f is Feed => f !== undefined);
  if (feeds.length === 0) return { stored: 0 };
  // Parsing, sanitizing and removing every recipient's secrets all happen in a render thread,
  // under its time bound: the main thread only stores the result.
  const secrets = feeds.map((f) => ({ inboxToken: f.inbox_token, feedToken: f.feed_token }));
  const rendered = await deps.renderer.render(row.raw, secrets);
  const hashes = await hashContent(row.raw, rendered);
  // Shutting down, or another process took the job over: leave the storing to the next run.
  signal?.throwIfAborted();
  // The space guard at MAIL FROM ran before this message grew into an entry; ask again so
  // ingest never writes the disk past the minimum (the job waits for space, using no attempts).
  // The entry is written to the WAL and then copied into app.db by the checkpoint, so until
  // that checkpoint it takes the disk twice: reserve that, and checkpoint before letting go.
  const release = deps.space ? deps.space.reserve(2 * hashes.bytes) : () => undefined;
  if (!release) throw new StorageFullError();
  try {
    const stored = await storeForFeeds(deps, feeds, row, rendered, hashes, journalId);
    if (hashes.bytes > LARGE_ENTRY_BYTES) await deps.app.checkpointPassive();
    return { stored };
  } finally {
    release();
  }
}

/** Entries larger than this are checkpointed into app.db before their space reservation ends. */
const LARGE_ENTRY_BYTES = 1024 * 1024;

async function storeForFeeds(deps: IngestDeps, feeds: Feed[], row: JournalRow, rendered: RenderedForRecipients, hashes: ContentHashes, journalId: number): Promise<number> {
  let stored = 0;
  for (const [i, feed] of feeds.entries()) {
    // SQLite calls complete synchronously, so without this the stores for all recipients
    // would run as one long turn of the event loop.
    if (i > 0) await new Promise((resolve) => setImmediate(resolve));
    const content = { ...rendered, confirmUrl: rendered.confirmUrls[i] ?? null };
    const entry = await deps.app.insertEntry(feed.id, row.uid, row.received_at, row.raw, content, hashes);
    if (entry) {
      stored++;
      deps.log.info({ feedId: feed.id, entryId: entry.id, journalId, note: entry.note ?? undefined }, 'ingest: entry stored');
    }
  }
  return stored;
}
