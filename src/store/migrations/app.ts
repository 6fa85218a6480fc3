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
    // Issue 10, the manage page: per-feed entry limits (null = the instance's setting),
    // per-sender feeds (entries of one feed by sender address), an icon the owner uploads.
    name: 'per-feed entry limits, entries by sender, feed icons',
    sqlite: `
      ALTER TABLE feeds ADD COLUMN document_entries INTEGER;
      ALTER TABLE feeds ADD COLUMN keep_entries INTEGER;
      CREATE INDEX entries_by_feed_sender ON entries (feed_id, from_address COLLATE NOCASE, id);
      CREATE TABLE feed_icons (
        feed_id INTEGER PRIMARY KEY REFERENCES feeds(id) ON DELETE CASCADE,
        content_type TEXT NOT NULL,
        data BLOB NOT NULL,
        hash TEXT NOT NULL,
        updated_at INTEGER NOT NULL
      );
    `,
  },
  {
    // Full-text search (issue 10): an FTS5 index over a view, so nothing is stored twice. The
    // view derives the indexed text with feedmail_search_text_v1 and, for the body, with
    // feedmail_search_body_v1 (src/store/search-text.ts, registered on every app.db
    // connection): the text a reader sees (the HTML's when there is HTML, since a text part
    // may be a stub), URLs removed, CJK characters made tokens of their own. Triggers on
    // entries keep the index in step however a row comes, changes or
    // goes (a feed's deletion cascades to its entries, and the triggers fire for each), and
    // FTS5 removes a row by deriving its text again, so a body must not go (or change) while
    // an entry still uses it. `feed` holds 'f' || feed_id, so a search reads only one feed's
    // postings; bm25 weighs the subject above the sender above the body, `feed` not at all.
    // The last statement indexes every entry stored before this migration.
    name: 'full-text search',
    sqlite: `
      CREATE VIEW entries_search_content AS
        SELECT e.id AS id,
          feedmail_search_text_v1(e.subject) AS subject,
          feedmail_search_text_v1(e.from_name || ' ' || e.from_address) AS sender,
          feedmail_search_body_v1(coalesce(b.html, e.html), coalesce(b.text, e.text)) AS body,
          'f' || e.feed_id AS feed
        FROM entries e LEFT JOIN bodies b ON b.hash = e.body_hash;
      CREATE VIRTUAL TABLE entries_search USING fts5(
        subject, sender, body, feed,
        content = 'entries_search_content', content_rowid = 'id',
        tokenize = 'unicode61 remove_diacritics 2'
      );
      INSERT INTO entries_search(entries_search, rank) VALUES ('rank', 'bm25(10.0, 4.0, 1.0, 0.0)');
      CREATE TRIGGER entries_search_insert AFTER INSERT ON entries BEGIN
        INSERT INTO entries_search (rowid, subject, sender, body, feed)
          SELECT id, subject, sender, body, feed FROM entries_search_content WHERE id = new.id;
      END;
      CREATE TRIGGER entries_search_delete AFTER DELETE ON entries BEGIN
        INSERT INTO entries_search (entries_search, rowid, subject, sender, body, feed) VALUES ('delete', old.id,
          feedmail_search_text_v1(old.subject),
          feedmail_search_text_v1(old.from_name || ' ' || old.from_address),
          coalesce((SELECT feedmail_search_body_v1(html, text) FROM bodies WHERE hash = old.body_hash), feedmail_search_body_v1(old.html, old.text)),
          'f' || old.feed_id);
      END;
      CREATE TRIGGER entries_search_update AFTER UPDATE OF feed_id, subject, from_name, from_address, html, text, body_hash ON entries BEGIN
        INSERT INTO entries_search (entries_search, rowid, subject, sender, body, feed) VALUES ('delete', old.id,
          feedmail_search_text_v1(old.subject),
          feedmail_search_text_v1(old.from_name || ' ' || old.from_address),
          coalesce((SELECT feedmail_search_body_v1(html, text) FROM bodies WHERE hash = old.body_hash), feedmail_search_body_v1(old.html, old.text)),
          'f' || old.feed_id);
        INSERT INTO entries_search (rowid, subject, sender, body, feed)
          SELECT id, subject, sender, body, feed FROM entries_search_content WHERE id = new.id;
      END;
      CREATE TRIGGER bodies_kept_while_used BEFORE DELETE ON bodies
        WHEN EXISTS (SELECT 1 FROM entries WHERE body_hash = old.hash) BEGIN
        SELECT RAISE(ABORT, 'a body is deleted while an entry still uses it');
      END;
      CREATE TRIGGER bodies_unchanged_while_used BEFORE UPDATE OF html, text ON bodies
        WHEN EXISTS (SELECT 1 FROM entries WHERE body_hash = old.hash) BEGIN
        SELECT RAISE(ABORT, 'a body is changed while an entry uses it');
      END;
      INSERT INTO entries_search (entries_search) VALUES ('rebuild');
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
  {
    // WebSub subscriptions to a feed's documents; they go with the feed. feed_token is the
    // feed URL secret the topic named: a rotated URL ends them (see store/websub.ts).
    name: 'websub subscriptions',
    sqlite: `
      CREATE TABLE websub_subscriptions (
        id INTEGER PRIMARY KEY,
        feed_id INTEGER NOT NULL REFERENCES feeds(id) ON DELETE CASCADE,
        feed_token TEXT NOT NULL,
        topic TEXT NOT NULL,
        base TEXT NOT NULL,
        format TEXT NOT NULL CHECK (format IN ('atom', 'rss', 'json')),
        sender_key TEXT,
        callback TEXT NOT NULL,
        secret TEXT,
        lease_expires_at INTEGER NOT NULL,
        created_at INTEGER NOT NULL,
        updated_at INTEGER NOT NULL,
        UNIQUE (feed_id, topic, callback)
      );
      CREATE INDEX websub_subscriptions_lease ON websub_subscriptions (lease_expires_at);
    `,
  },
  {
    // Keys feedmail keeps for itself, made once and kept with the data: the image proxy signs
    // its URLs with one (web/image-proxy.ts). Never shown, never logged.
    name: 'server keys',
    sqlite: `
      CREATE TABLE server_keys (
        name TEXT PRIMARY KEY,
        value TEXT NOT NULL,
        created_at INTEGER NOT NULL
      );
    `,
  },
];
