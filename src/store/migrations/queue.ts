import type { Migration } from './migration.js';

/**
 * queue.db: the inbound journal, jobs and recurring-task slots. Ids never repeat
 * (AUTOINCREMENT), and each journal row also has a random uid, which is what
 * entries remember, so even a restored or recreated queue.db cannot make a new
 * message look like one already stored.
 */
export const queueMigrations: Migration[] = [
  {
    name: 'journal, jobs, recurring runs',
    sqlite: `
      CREATE TABLE journal (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        uid TEXT NOT NULL UNIQUE,
        received_at INTEGER NOT NULL,
        source TEXT NOT NULL,
        mail_from TEXT NOT NULL DEFAULT '',
        feed_ids TEXT NOT NULL,
        size INTEGER NOT NULL,
        raw BLOB NOT NULL
      );
      CREATE INDEX journal_by_time ON journal (received_at);
      CREATE TABLE jobs (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        task TEXT NOT NULL,
        payload TEXT NOT NULL DEFAULT '{}',
        priority INTEGER NOT NULL DEFAULT 100,
        state TEXT NOT NULL DEFAULT 'ready' CHECK (state IN ('ready', 'claimed', 'failed')),
        run_at INTEGER NOT NULL,
        attempts INTEGER NOT NULL DEFAULT 0,
        reclaims INTEGER NOT NULL DEFAULT 0,
        max_attempts INTEGER NOT NULL DEFAULT 10,
        lease_owner TEXT,
        lease_expires_at INTEGER,
        last_error TEXT,
        idempotency_key TEXT UNIQUE,
        created_at INTEGER NOT NULL,
        updated_at INTEGER NOT NULL
      );
      CREATE INDEX jobs_claimable ON jobs (state, priority, run_at);
      CREATE INDEX jobs_by_lease ON jobs (state, lease_expires_at);
      CREATE TABLE recurring_runs (
        task TEXT NOT NULL,
        run_at INTEGER NOT NULL,
        PRIMARY KEY (task, run_at)
      );
    `,
  },
  {
    // Ingest jobs are claimed round-robin across these keys (the recipient feeds), so one
    // feed's backlog cannot hold up everyone else's mail.
    name: 'fairness key of jobs',
    sqlite: `
      ALTER TABLE jobs ADD COLUMN fair_key TEXT;
    `,
  },
  {
    // Each signed webhook delivery is accepted once: its signature stays here until its
    // timestamp is past the accepted window, so every process refuses the repeat.
    name: 'accepted webhook deliveries',
    sqlite: `
      CREATE TABLE webhook_deliveries (
        signature TEXT PRIMARY KEY,
        expires_at INTEGER NOT NULL
      );
      CREATE INDEX webhook_deliveries_by_expiry ON webhook_deliveries (expires_at);
    `,
  },
  {
    // A large message is written in pieces, each committed on its own before the journal
    // row that makes it count, so no single commit holds the process for long.
    name: 'journal chunks',
    sqlite: `
      CREATE TABLE journal_chunks (
        uid TEXT NOT NULL,
        seq INTEGER NOT NULL,
        data BLOB NOT NULL,
        created_at INTEGER NOT NULL,
        PRIMARY KEY (uid, seq)
      );
      CREATE INDEX journal_chunks_by_time ON journal_chunks (created_at);
    `,
  },
  {
    // What each feed's owner sees of the mail sent to it (accepted or refused, the newest
    // rows per feed only), and what the messages-per-day limit counts. Both live here, beside
    // the journal: an accepted message's row and count are written in its journal
    // transaction, and whether it is still pending or failed is its ingest job's state.
    name: 'recent deliveries, messages per feed and hour',
    sqlite: `
      CREATE TABLE deliveries (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        feed_id INTEGER NOT NULL,
        at INTEGER NOT NULL,
        sender TEXT NOT NULL DEFAULT '',
        subject TEXT,
        size INTEGER,
        outcome TEXT NOT NULL CHECK (outcome IN ('accepted', 'blocked', 'over_limit')),
        detail TEXT NOT NULL DEFAULT '',
        journal_uid TEXT,
        job_id INTEGER,
        count INTEGER NOT NULL DEFAULT 1
      );
      CREATE INDEX deliveries_by_feed ON deliveries (feed_id, at);
      CREATE INDEX deliveries_by_time ON deliveries (at);
      CREATE TABLE intake_counts (
        feed_id INTEGER NOT NULL,
        hour INTEGER NOT NULL,
        messages INTEGER NOT NULL,
        PRIMARY KEY (feed_id, hour)
      ) WITHOUT ROWID;
      CREATE INDEX intake_counts_by_hour ON intake_counts (hour);
    `,
  },
  {
    // Issue 11: live updates. One row per entry stored, written by whichever process stored it;
    // every web process polls the newest ids (only while it has a stream open) and tells the
    // open pages of that feed. Rows are only kept for a while (jobs/tasks/prune-old-rows.ts).
    name: 'entry notifications',
    sqlite: `
      CREATE TABLE notifications (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        feed_id INTEGER NOT NULL,
        entry_id INTEGER NOT NULL,
        created_at INTEGER NOT NULL
      );
      CREATE INDEX notifications_by_feed ON notifications (feed_id, id);
      CREATE INDEX notifications_by_time ON notifications (created_at);
    `,
  },
  {
    // Issue 13: each successful backup (feedmail backup, or the scheduled task), so /readyz and
    // operators can tell how old the newest one is. Written after the snapshot's manifest.
    name: 'backup runs',
    sqlite: `
      CREATE TABLE backup_runs (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        finished_at INTEGER NOT NULL,
        snapshot TEXT NOT NULL,
        target TEXT NOT NULL,
        bytes INTEGER NOT NULL
      );
      CREATE INDEX backup_runs_by_time ON backup_runs (finished_at);
    `,
  },
  {
    // Issue 14: a claim looks at each fair key's oldest runnable jobs (and the running ones,
    // to count them) through this index, instead of ranking the whole backlog.
    name: 'jobs by state and fair key',
    sqlite: `
      CREATE INDEX jobs_by_fair_key ON jobs (state, fair_key, priority, run_at, id);
    `,
  },
];
