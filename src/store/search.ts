/**
 * Full-text search over one feed's entries. The index (entries_search, see the migration
 * "full-text search") is kept in step by triggers on `entries`; this module only reads it,
 * checks it and rebuilds it.
 */
import { sql, type Kysely } from 'kysely';
import type { AppSchema } from './schema.js';
import { dialectOf } from './dialect.js';
import { checkSearchIndexPg, markMatches, pageOfMatches, rebuildSearchIndexPg, searchIndexBytesPg } from './search-pg.js';
import { matchExpression, parseQuery } from './search-query.js';

/** Wraps highlighted words in snippets and subjects; the indexed text never holds these (see search-text.ts). */
export const HIGHLIGHT_START = '\u0001';
export const HIGHLIGHT_END = '\u0002';
/**
 * Tokens of body text a snippet holds (FTS5's most): the page shows a part of it around the
 * first match. FTS5 starts a snippet at the start of the sentence holding the match, and a
 * CJK character is a token, so a smaller window would often end inside a CJK phrase.
 */
const SNIPPET_TOKENS = 64;

export interface SearchRequest {
  /** As the person typed it (see search-query.ts for what it may hold). */
  query: string;
  /** Received at or after this time (ms), when given. */
  from: number | null;
  /** Received before this time (ms), when given. */
  to: number | null;
  offset: number;
  limit: number;
}

export interface SearchHit {
  id: number;
  share_token: string;
  subject: string;
  from_name: string;
  from_address: string;
  received_at: number;
  /** The subject as indexed, matched words between HIGHLIGHT_START and HIGHLIGHT_END. */
  subject_marked: string;
  /** A stretch of the body text as indexed, marked the same way; '…' where it was cut. */
  snippet: string;
}

export interface SearchResult {
  hits: SearchHit[];
  /** Whether there are results after these. */
  more: boolean;
  /** Whether part of the query was ignored (too long, too many terms). */
  truncated: boolean;
  /** Whether some `*` were taken as plain words (too many prefixes, or too short ones). */
  prefixesIgnored: boolean;
}

/**
 * The entries of a feed that match a query, best first (bm25; subject above sender above
 * body), then newest first. With no query but a date range, every entry in the range.
 */
export async function searchEntries(db: Kysely<AppSchema>, feedId: number, request: SearchRequest): Promise<SearchResult> {
  const parsed = parseQuery(request.query);
  const dated = request.from !== null || request.to !== null;
  const match = matchExpression(`f${feedId}`, parsed, dated && !parsed.typed);
  if (match === undefined || (request.from !== null && request.to !== null && request.from >= request.to)) {
    return { hits: [], more: false, truncated: parsed.truncated, prefixesIgnored: parsed.prefixesIgnored };
  }
  if (dialectOf(db) === 'postgres') {
    const pageIds = await pageOfMatches(db, { query: parsed, feedId, from: request.from, to: request.to, offset: request.offset, limit: request.limit });
    const ids = pageIds.slice(0, request.limit);
    const marked = ids.length ? await markMatches(db, parsed, ids, HIGHLIGHT_START, HIGHLIGHT_END) : [];
    return { ...await pageHits(db, feedId, ids, marked), more: pageIds.length > request.limit, truncated: parsed.truncated, prefixesIgnored: parsed.prefixesIgnored };
  }
  const from = request.from === null ? sql`` : sql`AND e.received_at >= ${request.from}`;
  const to = request.to === null ? sql`` : sql`AND e.received_at < ${request.to}`;
  // Ranking first, then highlighting only the page: snippet() reads and tokenizes a whole body,
  // and a sorted query would compute it for every match, not only the ones shown.
  const page = await sql<{ id: number }>`
    SELECT e.id FROM entries_search JOIN entries e ON e.id = entries_search.rowid
    WHERE entries_search MATCH ${match} AND e.feed_id = ${feedId} ${from} ${to}
    ORDER BY entries_search.rank, e.received_at DESC, e.id DESC
    LIMIT ${request.limit + 1} OFFSET ${request.offset}`.execute(db);
  const ids = page.rows.slice(0, request.limit).map((r) => r.id);
  if (ids.length === 0) return { hits: [], more: false, truncated: parsed.truncated, prefixesIgnored: parsed.prefixesIgnored };
  // One pass over the matches that highlights the page's rows only. A `rowid = ?` per row would
  // evaluate the whole query again for each (a prefix term expands over the index every time);
  // the `+` keeps SQLite from handing the IN list to FTS5 as such a per-row lookup.
  const marked = await sql<{ id: number; subject_marked: string; snippet: string }>`
    SELECT entries_search.rowid AS id,
      highlight(entries_search, 0, ${HIGHLIGHT_START}, ${HIGHLIGHT_END}) AS subject_marked,
      snippet(entries_search, 2, ${HIGHLIGHT_START}, ${HIGHLIGHT_END}, '…', ${SNIPPET_TOKENS}) AS snippet
    FROM entries_search
    WHERE entries_search MATCH ${match} AND +entries_search.rowid IN (SELECT value FROM json_each(${JSON.stringify(ids)}))`.execute(db);
  return { ...await pageHits(db, feedId, ids, marked.rows), more: page.rows.length > request.limit, truncated: parsed.truncated, prefixesIgnored: parsed.prefixesIgnored };
}

/** The page's entries in the ranked order, with their highlights. */
async function pageHits(db: Kysely<AppSchema>, feedId: number, ids: number[], marked: { id: number; subject_marked: string; snippet: string }[]): Promise<{ hits: SearchHit[] }> {
  if (ids.length === 0) return { hits: [] };
  const entries = await db.selectFrom('entries')
    .select(['id', 'share_token', 'subject', 'from_name', 'from_address', 'received_at'])
    .where('id', 'in', ids).where('feed_id', '=', feedId).execute();
  const marks = new Map(marked.map((r) => [r.id, r]));
  const byId = new Map(entries.map((e) => [e.id, e]));
  const hits: SearchHit[] = [];
  for (const id of ids) {
    const entry = byId.get(id);
    const mark = marks.get(id);
    // An entry deleted since the first query is simply not shown.
    if (entry && mark) hits.push({ ...entry, subject_marked: mark.subject_marked, snippet: mark.snippet });
  }
  return { hits };
}

/**
 * FTS5's own check of the index against what the view derives from the entries: undefined
 * when they agree, else what FTS5 found (a stale or missing row). Reads every entry.
 */
export async function checkSearchIndex(db: Kysely<AppSchema>): Promise<string | undefined> {
  if (dialectOf(db) === 'postgres') return checkSearchIndexPg(db);
  try {
    await sql`INSERT INTO entries_search (entries_search, rank) VALUES ('integrity-check', 1)`.execute(db);
    return undefined;
  } catch (err) {
    const code = (err as { code?: string }).code ?? '';
    if (code.startsWith('SQLITE_CORRUPT')) return (err as Error).message;
    throw err;
  }
}

/** Builds the index again from every entry (after checkSearchIndex found it out of step). */
export async function rebuildSearchIndex(db: Kysely<AppSchema>): Promise<void> {
  if (dialectOf(db) === 'postgres') return rebuildSearchIndexPg(db);
  await sql`INSERT INTO entries_search (entries_search) VALUES ('rebuild')`.execute(db);
}

/** Bytes the index takes in app.db (its FTS5 tables), for operators and the benchmark. */
export async function searchIndexBytes(db: Kysely<AppSchema>): Promise<number> {
  if (dialectOf(db) === 'postgres') return searchIndexBytesPg(db);
  const { rows } = await sql<{ n: number | null }>`
    SELECT sum(pgsize) AS n FROM dbstat
    WHERE name IN ('entries_search_data', 'entries_search_idx', 'entries_search_docsize', 'entries_search_config')`.execute(db);
  return Number(rows[0]?.n ?? 0);
}
