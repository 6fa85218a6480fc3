/**
 * Full-text search on PostgreSQL (see search.ts for SQLite's FTS5 index). The table
 * entries_search (the PostgreSQL form of the migration "full-text search") holds, per
 * entry, the text SQLite's view derives (searchText / searchBody of search-text.ts, which
 * are JavaScript and so are run here, when an entry is stored or replaced) and a
 * generated `tsvector` over it with a GIN index: subject weighted A, sender B, body C,
 * in the configuration feedmail_search: 'simple' (no stemming, no stop words, as FTS5's
 * unicode61) after `unaccent` (as its remove_diacritics). PostgreSQL's parser knows
 * tags, e-mail addresses, host names, paths and numbers as tokens of their own, where
 * FTS5 sees only words: every other character is stored between two CJK_SEPARATORs
 * (ZERO WIDTH SPACE, a separator to both, never shown), so both find the same words and
 * a `<b>` in a message is text, not a tag ts_headline would drop.
 *
 * Queries are parsed by the same search-query.ts; each term becomes a
 * `phraseto_tsquery` (a prefix term's last word `to_tsquery('…':*)`) with its text
 * passed as a bound parameter, so nothing a person types is ever read as tsquery syntax.
 * Highlights are ts_headline's, merged where adjacent (as FTS5 marks a phrase).
 */
import { sql, type Kysely, type RawBuilder } from 'kysely';
import { dialectOf } from './dialect.js';
import type { EntryContent } from './entries.js';
import type { AppSchema } from './schema.js';
import type { ParsedQuery } from './search-query.js';
import { CJK_SEPARATOR, searchBody, searchText } from './search-text.js';

/**
 * Characters of body text indexed per entry. A tsvector holds at most 1 MB, and a body
 * of this many characters cannot reach it; FTS5 on SQLite indexes the whole body.
 */
export const PG_INDEXED_BODY_CHARS = 500_000;

const NOT_WORD = /[^\p{L}\p{N}\p{Co}\s\u200b]/gu;

/** Text as PostgreSQL's parser should see it: words, with everything else standing alone (see the module comment). */
function wordsApart(text: string): string {
  return text.replace(NOT_WORD, `${CJK_SEPARATOR}$&${CJK_SEPARATOR}`);
}

/** The three texts SQLite's view entries_search_content derives for an entry. */
type SearchedContent = Pick<EntryContent, 'subject' | 'fromName' | 'fromAddress' | 'html' | 'text'>;

function searchTexts(content: SearchedContent): { subject: string; sender: string; body: string } {
  return {
    subject: wordsApart(searchText(content.subject)),
    sender: wordsApart(searchText(`${content.fromName} ${content.fromAddress}`)),
    body: wordsApart(searchBody(content.html, content.text).slice(0, PG_INDEXED_BODY_CHARS)),
  };
}

/** Stores (or replaces) an entry's row of the search index; on SQLite the triggers do this, so nothing happens. */
export async function indexEntryForSearch(trx: Kysely<AppSchema>, entryId: number, feedId: number, content: SearchedContent): Promise<void> {
  if (dialectOf(trx) !== 'postgres') return;
  const t = searchTexts(content);
  await sql`INSERT INTO entries_search (entry_id, feed_id, subject, sender, body)
    VALUES (${entryId}, ${feedId}, ${t.subject}, ${t.sender}, ${t.body})
    ON CONFLICT (entry_id) DO UPDATE SET feed_id = excluded.feed_id, subject = excluded.subject, sender = excluded.sender, body = excluded.body`
    .execute(trx);
}

/** A term of search-query.ts (a quoted FTS5 string, maybe with ` *`) back as its text and whether it is a prefix. */
function termOf(fts: string): { text: string; prefix: boolean } {
  const m = /^"((?:[^"]|"")*)"( \*)?$/s.exec(fts);
  if (!m) return { text: fts, prefix: false };
  return { text: m[1]!.replace(/""/g, '"'), prefix: m[2] !== undefined };
}

const LAST_WORD = /[\p{L}\p{N}\p{Co}]+(?=[^\p{L}\p{N}\p{Co}]*$)/u;
const WORD_CHAR = /[\p{L}\p{N}\p{Co}]/u;

/** One term as a tsquery; its text is always a bound parameter. */
function termQuery(fts: string): RawBuilder<unknown> {
  const { text, prefix } = termOf(fts);
  const last = prefix ? LAST_WORD.exec(text) : null;
  if (!last) return sql`phraseto_tsquery('feedmail_search', ${wordsApart(text)})`;
  // The last word, letters and digits only (so nothing in it is tsquery syntax), as a prefix.
  const prefixQuery = sql`to_tsquery('feedmail_search', ${`'${last[0]}':*`})`;
  const before = text.slice(0, last.index);
  return WORD_CHAR.test(before) ? sql`(phraseto_tsquery('feedmail_search', ${wordsApart(before)}) <-> ${prefixQuery})` : prefixQuery;
}

/** The query's required part (every group, each an OR of terms), or undefined when it has none. */
function mustQuery(query: ParsedQuery): RawBuilder<unknown> | undefined {
  if (query.all.length === 0) return undefined;
  return sql`(${sql.join(query.all.map((g) => sql`(${sql.join(g.map(termQuery), sql` || `)})`), sql` && `)})`;
}

function noneQuery(query: ParsedQuery): RawBuilder<unknown> | undefined {
  if (query.none.length === 0) return undefined;
  return sql`(${sql.join(query.none.map(termQuery), sql` || `)})`;
}

/** Weights of D, C, B, A (unused, body, sender, subject): bm25(10, 4, 1) on SQLite. */
const WEIGHTS = '{0, 0.1, 0.4, 1.0}';

export interface PgSearchPage {
  query: ParsedQuery;
  feedId: number;
  from: number | null;
  to: number | null;
  offset: number;
  limit: number;
}

/** The ids of one page of matches (limit + 1 to tell whether there are more), best first, then newest. */
export async function pageOfMatches(db: Kysely<AppSchema>, p: PgSearchPage): Promise<number[]> {
  const must = mustQuery(p.query);
  const none = noneQuery(p.query);
  const from = p.from === null ? sql`` : sql`AND e.received_at >= ${p.from}`;
  const to = p.to === null ? sql`` : sql`AND e.received_at < ${p.to}`;
  const { rows } = await sql<{ id: number }>`
    SELECT s.entry_id AS id FROM entries_search s JOIN entries e ON e.id = s.entry_id
    WHERE s.feed_id = ${p.feedId} ${must ? sql`AND s.document @@ ${must}` : sql``} ${none ? sql`AND NOT (s.document @@ ${none})` : sql``} ${from} ${to}
    ORDER BY ${must ? sql`ts_rank(${WEIGHTS}::float4[], s.document, ${must}) DESC,` : sql``} e.received_at DESC, e.id DESC
    LIMIT ${p.limit + 1} OFFSET ${p.offset}`.execute(db);
  return rows.map((r) => r.id);
}

/** Tokens of body text a snippet holds at most (as FTS5's snippet on SQLite). */
const SNIPPET_WORDS = 64;

/** Highlights one page's subjects and body snippets with `start`/`end` around the matched words. */
export async function markMatches(db: Kysely<AppSchema>, query: ParsedQuery, ids: number[], start: string, end: string): Promise<{ id: number; subject_marked: string; snippet: string }[]> {
  const must = mustQuery(query) ?? sql`''::tsquery`;
  const marks = `StartSel="${start}", StopSel="${end}"`;
  const { rows } = await sql<{ id: number; subject_marked: string; snippet: string }>`
    SELECT s.entry_id AS id,
      ts_headline('feedmail_search', s.subject, ${must}, ${`${marks}, HighlightAll=true`}) AS subject_marked,
      ts_headline('feedmail_search', s.body, ${must}, ${`${marks}, MaxWords=${SNIPPET_WORDS}, MinWords=${SNIPPET_WORDS / 2}, ShortWord=0, MaxFragments=1`}) AS snippet
    FROM entries_search s WHERE s.entry_id = ANY(${ids}::bigint[])`.execute(db);
  // ts_headline marks each word; FTS5 marks a run of matched words (a phrase) as one.
  const adjacent = new RegExp(`${end}([\\s\\u200b]*)${start}`, 'g');
  return rows.map((r) => ({ id: r.id, subject_marked: r.subject_marked.replace(adjacent, '$1'), snippet: r.snippet.replace(adjacent, '$1').trim() }));
}

/** Entries without their row of the index (or with a stale one): undefined when none, else what is wrong. */
export async function checkSearchIndexPg(db: Kysely<AppSchema>): Promise<string | undefined> {
  const { rows } = await sql<{ missing: number; orphans: number }>`
    SELECT (SELECT count(*) FROM entries e WHERE NOT EXISTS (SELECT 1 FROM entries_search s WHERE s.entry_id = e.id)) AS missing,
      (SELECT count(*) FROM entries_search s JOIN entries e ON e.id = s.entry_id WHERE s.feed_id <> e.feed_id) AS orphans`.execute(db);
  const missing = Number(rows[0]?.missing ?? 0);
  const stale = Number(rows[0]?.orphans ?? 0);
  if (missing === 0 && stale === 0) return undefined;
  return `${missing} entr${missing === 1 ? 'y is' : 'ies are'} missing from the search index${stale ? `, ${stale} filed under another feed` : ''}`;
}

/** Derives every entry's row of the index again, a page at a time. */
export async function rebuildSearchIndexPg(db: Kysely<AppSchema>): Promise<void> {
  let after = 0;
  for (;;) {
    const page = await db.selectFrom('entries').leftJoin('bodies', 'bodies.hash', 'entries.body_hash')
      .select(['entries.id', 'entries.feed_id', 'entries.subject', 'entries.from_name', 'entries.from_address',
        sql<string>`coalesce(bodies.html, entries.html)`.as('html'), sql<string>`coalesce(bodies.text, entries.text)`.as('text')])
      .where('entries.id', '>', after).orderBy('entries.id').limit(200).execute();
    if (page.length === 0) return;
    await db.transaction().execute(async (trx) => {
      for (const e of page) {
        await indexEntryForSearch(trx, e.id, e.feed_id, { subject: e.subject, fromName: e.from_name, fromAddress: e.from_address, html: e.html, text: e.text });
      }
    });
    after = page[page.length - 1]!.id;
  }
}

/** Bytes the index takes (its table, TOAST and indexes). */
export async function searchIndexBytesPg(db: Kysely<AppSchema>): Promise<number> {
  const { rows } = await sql<{ n: number }>`SELECT pg_total_relation_size('entries_search') AS n`.execute(db);
  return Number(rows[0]?.n ?? 0);
}
