/**
 * What a person types into the search box, as an FTS5 MATCH expression that cannot fail.
 *
 * The language: words (all must match), "quoted phrases", `word*` for a prefix (of two letters
 * or more, four at most in a query: see MAX_PREFIX_TERMS), `-word` or
 * `-"a phrase"` to exclude, and `OR` (in capitals) between two terms. Everything else is
 * taken literally: every term becomes a quoted FTS5 string (with `"` doubled), so FTS5's own
 * syntax (NEAR, AND, NOT, ^, column filters, parentheses) is never interpreted, and a term
 * the tokenizer would see no word in (punctuation, emoji) is left out rather than matching
 * nothing. Terms go through the same searchText as the indexed text, so a run of CJK
 * characters becomes a phrase of single characters (a substring search) and a URL, which
 * the index never holds, is dropped.
 */
import { searchText } from './search-text.js';

/** Characters of a query that are read; the rest is ignored (and the page says so). */
export const MAX_QUERY_CHARS = 500;
/** Terms of a query that are used; the rest are ignored (and the page says so). */
export const MAX_QUERY_TERMS = 16;
/**
 * Prefix terms of a query (`word*`): each one reads the postings of every word in the whole
 * index that starts with it, so a query holds a few at most and each needs this many letters;
 * other `*`s are ignored (and the page says so).
 */
export const MAX_PREFIX_TERMS = 4;
export const MIN_PREFIX_CHARS = 2;

/** The columns a person searches; the index's `feed` column is only for the store's own filter. */
const SEARCHED_COLUMNS = '{subject sender body}';

interface Term {
  /** The term as an FTS5 string, quoted and escaped, with ` *` when it is a prefix. */
  fts: string;
  negated: boolean;
}

export interface ParsedQuery {
  /** Groups that must all match; the terms of a group are alternatives (OR). */
  all: string[][];
  /** Terms no result may match. */
  none: string[];
  /** Whether part of the query was ignored (too long, too many terms). */
  truncated: boolean;
  /** Whether some `*` were ignored (too many prefixes, or too short ones). */
  prefixesIgnored: boolean;
  /** Whether the person typed anything at all (something unsearchable then finds nothing). */
  typed: boolean;
}

type Item = { kind: 'term'; text: string; prefix: boolean; negated: boolean } | { kind: 'or' };

const SPACE = /\s/;

/** Splits a query into terms and OR operators (see the module comment). */
function lex(query: string): Item[] {
  const items: Item[] = [];
  let i = 0;
  while (i < query.length) {
    while (i < query.length && SPACE.test(query[i]!)) i++;
    if (i >= query.length) break;
    let negated = false;
    if (query[i] === '-' && i + 1 < query.length && !SPACE.test(query[i + 1]!)) {
      negated = true;
      i++;
    }
    if (query[i] === '"') {
      const close = query.indexOf('"', i + 1);
      const end = close < 0 ? query.length : close;
      const text = query.slice(i + 1, end);
      i = close < 0 ? query.length : close + 1;
      const prefix = query[i] === '*';
      if (prefix) i++;
      items.push({ kind: 'term', text, prefix, negated });
      continue;
    }
    let j = i;
    while (j < query.length && query[j] !== '"' && !SPACE.test(query[j]!)) j++;
    const word = query.slice(i, j);
    i = j;
    if (word === 'OR' && !negated) {
      items.push({ kind: 'or' });
      continue;
    }
    const prefix = word.endsWith('*');
    items.push({ kind: 'term', text: prefix ? word.replace(/\*+$/, '') : word, prefix, negated });
  }
  return items;
}

/** A letter, digit or private-use character: what FTS5's unicode61 tokenizer makes words of. */
const WORD_CHAR = /[\p{L}\p{N}\p{Co}]/u;

/** The last word of a term, which a `*` makes a prefix. */
const LAST_WORD = /[\p{L}\p{N}\p{Co}]+[^\p{L}\p{N}\p{Co}]*$/u;

/** A term as a quoted FTS5 string, or undefined when it holds nothing the index could match. */
function ftsString(text: string, prefix: boolean): { fts: string; prefix: boolean } | undefined {
  const indexed = searchText(text);
  if (!WORD_CHAR.test(indexed)) return undefined;
  const last = LAST_WORD.exec(indexed)?.[0].replace(/[^\p{L}\p{N}\p{Co}]+$/u, '') ?? '';
  const asPrefix = prefix && Array.from(last).length >= MIN_PREFIX_CHARS;
  return { fts: `"${indexed.replace(/"/g, '""')}"${asPrefix ? ' *' : ''}`, prefix: asPrefix };
}

/** Reads a query typed by a person; never throws. */
export function parseQuery(input: string): ParsedQuery {
  const chars = Array.from(input);
  let truncated = chars.length > MAX_QUERY_CHARS;
  const query = truncated ? chars.slice(0, MAX_QUERY_CHARS).join('') : input;
  const items: (Term | { kind: 'or' })[] = [];
  let terms = 0;
  let prefixes = 0;
  let prefixesIgnored = false;
  for (const item of lex(query)) {
    if (item.kind === 'or') {
      items.push(item);
      continue;
    }
    const allowPrefix = item.prefix && prefixes < MAX_PREFIX_TERMS;
    const term = ftsString(item.text, allowPrefix);
    if (term === undefined) continue;
    if (terms === MAX_QUERY_TERMS) {
      truncated = true;
      break;
    }
    terms++;
    if (term.prefix) prefixes++;
    else if (item.prefix) prefixesIgnored = true;
    items.push({ fts: term.fts, negated: item.negated });
  }
  const all: string[][] = [];
  const none: string[] = [];
  const positive = (x: Term | { kind: 'or' } | undefined): x is Term => x !== undefined && 'fts' in x && !x.negated;
  for (let k = 0; k < items.length; k++) {
    const item = items[k]!;
    if ('kind' in item) {
      // OR between two terms joins them; anywhere else it is the word "or".
      if (positive(items[k - 1]) && positive(items[k + 1])) continue;
      if (all.length + none.length >= MAX_QUERY_TERMS) {
        truncated = true;
        continue;
      }
      all.push([ftsString('or', false)!.fts]);
    } else if (item.negated) {
      none.push(item.fts);
    } else if (k > 0 && 'kind' in items[k - 1]! && positive(items[k - 2])) {
      all[all.length - 1]!.push(item.fts);
    } else {
      all.push([item.fts]);
    }
  }
  return { all, none, truncated, prefixesIgnored, typed: input.trim() !== '' };
}

/**
 * The MATCH expression for a parsed query within one feed's entries, or undefined when the
 * query asks for nothing (no term to match, none to exclude). `feedToken` is what the
 * index's `feed` column holds for the feed (see the migration).
 */
export function matchExpression(feedToken: string, query: ParsedQuery, everything = false): string | undefined {
  const feed = `feed : "${feedToken}"`;
  const groups = query.all.map((g) => (g.length === 1 ? g[0]! : `(${g.join(' OR ')})`));
  if (groups.length === 0 && query.none.length === 0 && !everything) return undefined;
  const must = groups.length ? `(${feed} AND ${SEARCHED_COLUMNS} : (${groups.join(' AND ')}))` : feed;
  return query.none.length ? `${must} NOT ${SEARCHED_COLUMNS} : (${query.none.join(' OR ')})` : must;
}
