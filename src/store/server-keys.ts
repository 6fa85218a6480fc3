/** Keys feedmail makes for itself once and keeps in app.db (see the 'server keys' migration). */
import type { Kysely } from 'kysely';
import type { AppSchema } from './schema.js';

/**
 * The key stored under `name`, storing `candidate` first when there is none. Two processes
 * starting at once on one data directory both get the one that was stored first.
 */
export async function serverKey(db: Kysely<AppSchema>, now: number, name: string, candidate: string): Promise<string> {
  await db.insertInto('server_keys').values({ name, value: candidate, created_at: now })
    .onConflict((oc) => oc.column('name').doNothing()).execute();
  const row = await db.selectFrom('server_keys').select('value').where('name', '=', name).executeTakeFirstOrThrow();
  return row.value;
}
