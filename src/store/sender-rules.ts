/**
 * A feed's sender rules (blocklist and allowlist). Patterns arrive checked and normalized
 * (mail/sender-rules.ts:parseSenderPattern); the rows go with their feed (ON DELETE CASCADE).
 */
import type { Kysely, Selectable } from 'kysely';
import { serializeOn } from './dialect.js';
import type { AppSchema, SenderRuleAction, SenderRulesTable } from './schema.js';

export type SenderRule = Selectable<SenderRulesTable>;

/**
 * Adds a rule unless the feed has `max` rules already; the same rule twice is one rule.
 * Counted and inserted in one write transaction (BEGIN IMMEDIATE), so parallel requests
 * cannot pass the bound.
 */
export async function addSenderRule(db: Kysely<AppSchema>, now: number, feedId: number, action: SenderRuleAction, pattern: string, max: number): Promise<'added' | 'exists' | 'too_many'> {
  return db.transaction().execute(async (trx) => {
    await serializeOn(trx, `sender rules of ${feedId}`);
    const same = await trx.selectFrom('sender_rules').select('id')
      .where('feed_id', '=', feedId).where('action', '=', action).where('pattern', '=', pattern).executeTakeFirst();
    if (same) return 'exists';
    const { n } = await trx.selectFrom('sender_rules').select((eb) => eb.fn.countAll<number>().as('n')).where('feed_id', '=', feedId).executeTakeFirstOrThrow();
    if (Number(n) >= max) return 'too_many';
    await trx.insertInto('sender_rules').values({ feed_id: feedId, action, pattern, created_at: now }).execute();
    return 'added';
  });
}

/** The feed's rules, blocks first, each list in the order they were added. */
export async function senderRulesOfFeed(db: Kysely<AppSchema>, feedId: number): Promise<SenderRule[]> {
  return db.selectFrom('sender_rules').selectAll().where('feed_id', '=', feedId).orderBy('action', 'desc').orderBy('id').execute();
}

/** Removes one of the feed's rules (another feed's rule id removes nothing). */
export async function removeSenderRule(db: Kysely<AppSchema>, feedId: number, id: number): Promise<boolean> {
  const r = await db.deleteFrom('sender_rules').where('feed_id', '=', feedId).where('id', '=', id).executeTakeFirst();
  return Number(r.numDeletedRows) > 0;
}
