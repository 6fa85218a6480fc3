/** Row types of the three databases, as Kysely sees them. */
import type { Generated } from 'kysely';

export interface FeedsTable {
  id: Generated<number>;
  title: string;
  inbox_token: string;
  feed_token: string;
  manage_hash: string;
  created_at: number;
  updated_at: number;
  version: Generated<number>;
  last_fetched_at: number | null;
  /** Entries the feed documents carry; null: FEEDMAIL_FEED_MAX_ENTRIES (never more than it). */
  document_entries: number | null;
  /** Entries kept; null: FEEDMAIL_FEED_KEEP_ENTRIES (never more than it). */
  keep_entries: number | null;
}

export interface EntriesTable {
  id: Generated<number>;
  feed_id: number;
  journal_uid: string;
  share_token: string;
  from_name: string;
  from_address: string;
  subject: string;
  sent_at: number | null;
  received_at: number;
  html: string;
  text: string;
  confirm_url: string | null;
  note: string | null;
  raw_hash: string | null;
  processed_at: number;
  /** The stored body (html, text) shared by every feed the message went to; null for entries stored before bodies were shared. */
  body_hash: Generated<string | null>;
  /** Bytes this entry costs its feed (body, parts and raw message), for the feed's quota. */
  bytes: Generated<number>;
}

/** Rendered, redacted message bodies, stored once however many feeds received the message. */
export interface BodiesTable {
  hash: string;
  html: string;
  text: string;
  /** The start of the text, for feed documents that carry a long entry as a summary. */
  summary: string;
  bytes: number;
  created_at: number;
}

export interface BlobsTable {
  hash: string;
  size: number;
  data: Buffer;
  created_at: number;
}

export interface EntryPartsTable {
  entry_id: number;
  idx: number;
  blob_hash: string | null;
  content_type: string;
  filename: string;
  content_id: string | null;
  inline: number;
  size: number;
  /** Why a part's bytes were not kept or are not offered (too large, contains the address...). */
  note: Generated<string | null>;
}

/** The icon a feed's owner uploaded (PNG, GIF, JPEG or ICO, checked by its first bytes). */
export interface FeedIconsTable {
  feed_id: number;
  content_type: string;
  data: Buffer;
  /** sha256 of the bytes: the icon's ETag and the version in its URL. */
  hash: string;
  updated_at: number;
}

export interface FeedCreationsTable {
  client: string;
  created_at: number;
}

export type SenderRuleAction = 'block' | 'allow';

/** A feed's sender rules: an address (`someone@example.com`) or a domain with its subdomains (`example.com`). */
export interface SenderRulesTable {
  id: Generated<number>;
  feed_id: number;
  action: SenderRuleAction;
  /** Lowercase; an address when it holds '@', else a domain (IDNs in their ASCII form). */
  pattern: string;
  created_at: number;
}

export interface WebsubSubscriptionsTable {
  id: Generated<number>;
  feed_id: number;
  /** The feed URL secret the topic carried when the subscription was verified. */
  feed_token: string;
  topic: string;
  /** The public base URL the topic was made of, so a worker without a web server renders the same links. */
  base: string;
  format: 'atom' | 'rss' | 'json';
  /** Set for a per-sender topic. */
  sender_key: string | null;
  callback: string;
  secret: string | null;
  lease_expires_at: number;
  created_at: number;
  updated_at: number;
}

export interface AppSchema {
  websub_subscriptions: WebsubSubscriptionsTable;
  sender_rules: SenderRulesTable;
  feeds: FeedsTable;
  entries: EntriesTable;
  bodies: BodiesTable;
  blobs: BlobsTable;
  entry_parts: EntryPartsTable;
  feed_creations: FeedCreationsTable;
  feed_icons: FeedIconsTable;
  server_keys: ServerKeysTable;
}

export interface ServerKeysTable {
  name: string;
  value: string;
  created_at: number;
}

export interface JournalTable {
  id: Generated<number>;
  uid: string;
  received_at: number;
  source: string;
  mail_from: string;
  feed_ids: string;
  size: number;
  raw: Buffer;
}

/** Pieces of a large message's raw bytes, keyed by its journal uid (the row's `raw` is then empty). */
export interface JournalChunksTable {
  uid: string;
  seq: number;
  data: Buffer;
  created_at: number;
}

export type JobState = 'ready' | 'claimed' | 'failed';

export interface JobsTable {
  id: Generated<number>;
  task: string;
  payload: string;
  priority: number;
  state: JobState;
  run_at: number;
  attempts: number;
  reclaims: Generated<number>;
  max_attempts: number;
  lease_owner: string | null;
  lease_expires_at: number | null;
  last_error: string | null;
  idempotency_key: string | null;
  created_at: number;
  updated_at: number;
  /** Jobs with the same key take turns with other keys' jobs (see claimJobs). */
  fair_key: Generated<string | null>;
}

export interface RecurringRunsTable {
  task: string;
  run_at: number;
}

/** Webhook signatures already accepted, kept until their timestamp is too old to be accepted anyway. */
export interface WebhookDeliveriesTable {
  signature: string;
  expires_at: number;
}

/** What became of a message sent to a feed: journaled for it, or refused (by a sender rule, or at a limit). */
export type DeliveryOutcome = 'accepted' | 'blocked' | 'over_limit';

/** A feed's recent deliveries, as its owner sees them on the manage page (the newest per feed only). */
export interface DeliveriesTable {
  id: Generated<number>;
  feed_id: number;
  /** When it arrived; for refusals folded together, when the latest of them did. */
  at: number;
  /** The From: address, or the envelope sender when that is all that is known; the feeds' secrets redacted. */
  sender: string;
  /** Null when the message was refused before its text was sent (at RCPT TO). */
  subject: string | null;
  size: number | null;
  outcome: DeliveryOutcome;
  /** Which rule or limit refused it; '' when accepted. */
  detail: string;
  /** Accepted: its journal row (entries remember it) and ingest job (whose state says pending or failed). */
  journal_uid: string | null;
  job_id: number | null;
  /** Refusals of the same sender for the same reason within a while are folded into one row. */
  count: Generated<number>;
}

/** Messages journaled per feed and hour: what FEEDMAIL_FEED_MESSAGES_PER_DAY counts. */
export interface IntakeCountsTable {
  feed_id: number;
  /** Hours since the epoch (UTC). */
  hour: number;
  messages: number;
}

/** An entry was stored: what open feed pages hear about (issue 11, web/live.ts). */
export interface NotificationsTable {
  id: Generated<number>;
  feed_id: number;
  entry_id: number;
  created_at: number;
}

/** A successful backup (issue 13, ops/backup.ts); `target` is where it went, without credentials. */
export interface BackupRunsTable {
  id: Generated<number>;
  finished_at: number;
  snapshot: string;
  target: string;
  bytes: number;
}

export interface QueueSchema {
  backup_runs: BackupRunsTable;
  deliveries: DeliveriesTable;
  notifications: NotificationsTable;
  intake_counts: IntakeCountsTable;
  journal: JournalTable;
  journal_chunks: JournalChunksTable;
  jobs: JobsTable;
  recurring_runs: RecurringRunsTable;
  webhook_deliveries: WebhookDeliveriesTable;
}

export interface RenderedTable {
  key: string;
  feed_id: number;
  content_type: string;
  etag: string;
  last_modified: number;
  body: Buffer;
  bytes: number;
  accessed_at: number;
}

export interface ProxiedImagesTable {
  /** sha256 of the image URL, hex. */
  key: string;
  /** The sniffed type of a fetched image; null for a refused or failed fetch. */
  content_type: string | null;
  body: Buffer | null;
  bytes: number;
  /** When a refused or failed fetch may be tried again; null for an image. */
  expires_at: number | null;
  accessed_at: number;
}

export interface CacheSchema {
  rendered: RenderedTable;
  proxied_images: ProxiedImagesTable;
}
