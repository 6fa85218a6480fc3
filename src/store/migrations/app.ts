import type { Migration } from './migration.js';

/** app.db: feeds, entries, their parts. Times are milliseconds since the epoch. */
export const appMigrations: Migration[] = [
  {
    name: 'feeds, entries, blobs, entry parts',
    sqlite: `
      CREATE TABLE feeds (
        id INTEGER PRIMARY KEY,
        title TEXT NOT NULL DEFAULT '',
        inbox_token TEXT NOT NULL UNIQUE,
        feed_token TEXT NOT NULL UNIQUE,
        manage_hash TEXT NOT NULL UNIQUE,
        created_at INTEGER NOT NULL,
        updated_at INTEGER NOT NULL,
        version INTEGER NOT NULL DEFAULT 1,
        last_fetched_at INTEGER
      );
      CREATE TABLE blobs (
        hash TEXT PRIMARY KEY,
        size INTEGER NOT NULL,
        data BLOB NOT NULL,
        created_at INTEGER NOT NULL
      );
      CREATE TABLE entries (
        id INTEGER PRIMARY KEY,
        feed_id INTEGER NOT NULL REFERENCES feeds(id) ON DELETE CASCADE,
        journal_uid TEXT NOT NULL,
        share_token TEXT NOT NULL UNIQUE,
        from_name TEXT NOT NULL DEFAULT '',
        from_address TEXT NOT NULL DEFAULT '',
        subject TEXT NOT NULL DEFAULT '',
        sent_at INTEGER,
        received_at INTEGER NOT NULL,
        html TEXT NOT NULL,
        text TEXT NOT NULL,
        confirm_url TEXT,
        note TEXT,
        raw_hash TEXT,
        processed_at INTEGER NOT NULL,
        UNIQUE (feed_id, journal_uid)
      );
      CREATE INDEX entries_by_feed ON entries (feed_id, id DESC);
      CREATE TABLE entry_parts (
        entry_id INTEGER NOT NULL REFERENCES entries(id) ON DELETE CASCADE,
        idx INTEGER NOT NULL,
        blob_hash TEXT,
        content_type TEXT NOT NULL,
        filename TEXT NOT NULL,
        content_id TEXT,
        inline INTEGER NOT NULL,
        size INTEGER NOT NULL,
        PRIMARY KEY (entry_id, idx)
      );
      CREATE INDEX entry_parts_by_blob ON entry_parts (blob_hash);
      CREATE INDEX entries_by_raw ON entries (raw_hash);
    `,
  },
  {
    name: 'feed creation rate limit',
    sqlite: `
      CREATE TABLE feed_creations (
        client TEXT NOT NULL,
        created_at INTEGER NOT NULL
      );
      CREATE INDEX feed_creations_by_client ON feed_creations (client, created_at);
    `,
  },
  {
    // A message sent to many feeds stores its body once (F2 of the security review);
    // entries count their bytes for per-feed quotas; a part can say why it is not offered.
    name: 'shared bodies, entry bytes, part notes',
    sqlite: `
      CREATE TABLE bodies (
        hash TEXT PRIMARY KEY,
        html TEXT NOT NULL,
        text TEXT NOT NULL,
        summary TEXT NOT NULL,
        bytes INTEGER NOT NULL,
        created_at INTEGER NOT NULL
      );
      ALTER TABLE entries ADD COLUMN body_hash TEXT;
      ALTER TABLE entries ADD COLUMN bytes INTEGER NOT NULL DEFAULT 0;
      UPDATE entries SET bytes = length(CAST(html AS BLOB)) + length(CAST(text AS BLOB))
        + coalesce((SELECT size FROM blobs WHERE blobs.hash = entries.raw_hash), 0)
        + coalesce((SELECT sum(size) FROM entry_parts WHERE entry_parts.entry_id = entries.id AND blob_hash IS NOT NULL), 0);
      CREATE INDEX entries_by_body ON entries (body_hash);
      CREATE INDEX entries_bytes_by_feed ON entries (feed_id, bytes);
      ALTER TABLE entry_parts ADD COLUMN note TEXT;
    `,
  },
  {
    // A feed's sender blocklist and allowlist; they go with the feed.
    name: 'sender rules',
    sqlite: `
      CREATE TABLE sender_rules (
        id INTEGER PRIMARY KEY,
        feed_id INTEGER NOT NULL REFERENCES feeds(id) ON DELETE CASCADE,
        action TEXT NOT NULL CHECK (action IN ('block', 'allow')),
        pattern TEXT NOT NULL,
        created_at INTEGER NOT NULL,
        UNIQUE (feed_id, action, pattern)
      );
    `,
  },
];
