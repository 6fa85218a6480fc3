import type { Migration } from './migration.js';

/** cache.db: rendered output only; deleting the file while stopped loses nothing. */
export const cacheMigrations: Migration[] = [
  {
    name: 'rendered documents',
    sqlite: `
      CREATE TABLE rendered (
        key TEXT PRIMARY KEY,
        feed_id INTEGER NOT NULL,
        content_type TEXT NOT NULL,
        etag TEXT NOT NULL,
        last_modified INTEGER NOT NULL,
        body BLOB NOT NULL,
        bytes INTEGER NOT NULL,
        accessed_at INTEGER NOT NULL
      );
      CREATE INDEX rendered_by_access ON rendered (accessed_at);
      CREATE INDEX rendered_by_feed ON rendered (feed_id);
    `,
    postgres: `
      CREATE UNLOGGED TABLE rendered (
        key text PRIMARY KEY,
        feed_id bigint NOT NULL,
        content_type text NOT NULL,
        etag text NOT NULL,
        last_modified bigint NOT NULL,
        body bytea NOT NULL,
        bytes bigint NOT NULL,
        accessed_at bigint NOT NULL
      );
      CREATE INDEX rendered_by_access ON rendered (accessed_at);
      CREATE INDEX rendered_by_feed ON rendered (feed_id);
    `,
  },
  {
    // Images fetched by the image proxy (web/routes/image.ts), keyed by a hash of their URL;
    // a refused or failed fetch is a row without a body until it expires.
    name: 'proxied images',
    sqlite: `
      CREATE TABLE proxied_images (
        key TEXT PRIMARY KEY,
        content_type TEXT,
        body BLOB,
        bytes INTEGER NOT NULL,
        expires_at INTEGER,
        accessed_at INTEGER NOT NULL
      );
      CREATE INDEX proxied_images_by_access ON proxied_images (accessed_at);
    `,
    postgres: `
      CREATE UNLOGGED TABLE proxied_images (
        key text PRIMARY KEY,
        content_type text,
        body bytea,
        bytes bigint NOT NULL,
        expires_at bigint,
        accessed_at bigint NOT NULL
      );
      CREATE INDEX proxied_images_by_access ON proxied_images (accessed_at);
    `,
  },
];
