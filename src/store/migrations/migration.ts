/**
 * A migration is SQL per dialect; each list only ever grows at its end, and a new
 * migration gives both forms (the same step, in each dialect's types and words).
 * PostgreSQL: ids are bigint identities, times and sizes bigint (milliseconds, bytes),
 * BLOB is bytea, and each database is a schema of its own (store/postgres.ts).
 */
export interface Migration {
  name: string;
  sqlite: string;
  postgres: string;
}
