/**
 * GET /feeds/<feed-secret>/search?q=…&from=…&to=…&page=…: full-text search over one feed's
 * entries, as a page (or JSON for `Accept: application/json`). It shows what the feed secret
 * already shows (subjects, senders, dates, the text of the entries and their links) and
 * nothing more; any query answers results or an empty list (see store/search-query.ts).
 */
import { escapeHtml } from '../../mail/sanitize.js';
import { SECRET_IN_PATH } from '../../secrets.js';
import { HIGHLIGHT_END, HIGHLIGHT_START, type SearchHit } from '../../store/search.js';
import { CJK_SEPARATOR } from '../../store/search-text.js';
import { MAX_PREFIX_TERMS, MAX_QUERY_CHARS, MAX_QUERY_TERMS, MIN_PREFIX_CHARS } from '../../store/search-query.js';
import type { Route } from '../context.js';
import { foundOr404, sendHtml, sendJson, wantsJson } from '../http.js';
import { html, SafeHtml } from '../views/html.js';
import { layout } from '../views/layout.js';

/** Results per page. */
export const SEARCH_PAGE_SIZE = 20;
/** Pages a search can be read to (20 × 250 = 5,000 results): deeper offsets only cost more. */
const MAX_PAGE = 250;
const DAY = 86_400_000;
/** Search pages are never for search engines, whoever links them. */
const NOINDEX = { 'X-Robots-Tag': 'noindex, nofollow' };

export interface SearchValues {
  q: string;
  from: string;
  to: string;
}

/** The search box, on the feed page and above results; a plain GET form that needs no JavaScript. */
export function searchForm(feedToken: string, values: SearchValues = { q: '', from: '', to: '' }): SafeHtml {
  const dated = values.from !== '' || values.to !== '';
  return html`<form class="search" method="get" action="/feeds/${feedToken}/search" role="search">
<label for="search-q">Search this feed</label>
<div class="search-row"><input id="search-q" type="search" name="q" value="${values.q}" maxlength="${MAX_QUERY_CHARS}" placeholder="words, &quot;a phrase&quot;, news*, -ads, cats OR dogs" autocomplete="off"><button type="submit">Search</button></div>
<details${dated ? html` open` : ''}><summary>Dates</summary>
<div class="search-dates"><label>Received from <input type="date" name="from" value="${values.from}"></label>
<label>to <input type="date" name="to" value="${values.to}"></label></div>
<p class="hint">Days in UTC; both ends included. With dates and no words, every entry of those days is listed.</p>
</details>
</form>`;
}

/** A YYYY-MM-DD day as the time its UTC day starts; null when empty, undefined when not a date. */
function parseDay(value: string): number | null | undefined {
  if (value === '') return null;
  const m = /^(\d{4})-(\d{2})-(\d{2})$/.exec(value);
  if (!m) return undefined;
  // setUTCFullYear, not Date.UTC, which reads the years 0-99 as 1900-1999.
  const d = new Date(0);
  d.setUTCFullYear(Number(m[1]), Number(m[2]) - 1, Number(m[3]));
  // A day that does not exist (2024-02-31) rolls over into the next month: it is not a date.
  return d.toISOString().slice(0, 10) === value ? d.getTime() : undefined;
}

/** Characters of a snippet shown before its first match, and from it on. */
const SHOWN_BEFORE = 80;
const SHOWN_FROM = 240;

/** The part of a snippet around its first match, cut at spaces where there are some near, '…' where cut. */
function aroundFirstMatch(snippet: string): string {
  const at = Math.max(0, snippet.indexOf(HIGHLIGHT_START));
  let start = Math.max(0, at - SHOWN_BEFORE);
  let end = Math.min(snippet.length, at + SHOWN_FROM);
  if (start > 0) {
    const space = snippet.indexOf(' ', start);
    if (space >= 0 && space < Math.min(at, start + 20)) start = space + 1;
  }
  if (end < snippet.length) {
    const space = snippet.lastIndexOf(' ', end);
    if (space > Math.max(at, end - 20)) end = space;
  }
  // Never half a surrogate pair at a cut.
  if (/[\udc00-\udfff]/.test(snippet[start] ?? '')) start++;
  if (/[\ud800-\udbff]/.test(snippet[end - 1] ?? '')) end--;
  const cut = snippet.slice(start, end);
  return `${start > 0 && !cut.startsWith('…') ? '…' : ''}${cut}${end < snippet.length && !cut.endsWith('…') ? '…' : ''}`;
}

/** Text as indexed, with its highlights, as HTML: everything escaped, then the markers made <mark>. */
function markedHtml(marked: string, around = false): SafeHtml {
  let out = '';
  let open = false;
  const shown = shownText(marked);
  for (const piece of (around ? aroundFirstMatch(shown) : shown).split(/([\u0001\u0002])/)) {
    if (piece === HIGHLIGHT_START) {
      if (!open) out += '<mark>';
      open = true;
    } else if (piece === HIGHLIGHT_END) {
      if (open) out += '</mark>';
      open = false;
    } else {
      out += escapeHtml(piece);
    }
  }
  return new SafeHtml(open ? `${out}</mark>` : out);
}

/** Indexed text as shown: without the separators put between CJK characters, on one line. */
function shownText(text: string): string {
  return text.split(CJK_SEPARATOR).join('').replace(/\s+/g, ' ').trim();
}

/**
 * The subject with its matches marked, when the indexed subject is the subject as stored
 * (it is not when the subject held a URL, which the index leaves out): else the subject as it is.
 */
function subjectHtml(hit: SearchHit): SafeHtml {
  const plain = shownText(hit.subject_marked).replace(/[\u0001\u0002]/g, '');
  if (hit.subject === '' || plain !== shownText(hit.subject)) return html`${hit.subject || '(no subject)'}`;
  return markedHtml(hit.subject_marked);
}

export const feedSearchRoute: Route = {
  method: 'GET',
  path: new RegExp(String.raw`^/feeds/${SECRET_IN_PATH}/search/?$`, 'i'),
  handler: async ({ req, res, url, params, deps }) => {
    const feed = foundOr404(await deps.stores.app.feedByFeedToken(params[0]!));
    const values: SearchValues = {
      q: url.searchParams.get('q') ?? '',
      from: (url.searchParams.get('from') ?? '').trim(),
      to: (url.searchParams.get('to') ?? '').trim(),
    };
    const from = parseDay(values.from);
    const to = parseDay(values.to);
    const pageParam = Number.parseInt(url.searchParams.get('page') ?? '1', 10);
    const page = Number.isFinite(pageParam) ? Math.min(MAX_PAGE, Math.max(1, pageParam)) : 1;
    const notes: string[] = [];
    if (from === undefined) notes.push(`"${values.from}" is not a date (YYYY-MM-DD); it is ignored.`);
    if (to === undefined) notes.push(`"${values.to}" is not a date (YYYY-MM-DD); it is ignored.`);
    if (typeof from === 'number' && typeof to === 'number' && from > to) notes.push('The first day is after the last, so no day is in between.');
    const asked = values.q.trim() !== '' || typeof from === 'number' || typeof to === 'number';
    const result = asked
      ? await deps.stores.app.searchEntries(feed.id, {
        query: values.q,
        from: from ?? null,
        to: typeof to === 'number' ? to + DAY : null,
        offset: (page - 1) * SEARCH_PAGE_SIZE,
        limit: SEARCH_PAGE_SIZE,
      })
      : { hits: [], more: false, truncated: false, prefixesIgnored: false };
    if (result.truncated) notes.push(`Only the first ${MAX_QUERY_CHARS} characters and ${MAX_QUERY_TERMS} terms of the query are used.`);
    if (result.prefixesIgnored) notes.push(`A * counts for words of ${MIN_PREFIX_CHARS} letters or more, ${MAX_PREFIX_TERMS} times in a query at most; the others were searched as whole words.`);

    // Links to other pages of the same search, relative to this one: they carry what the URL already does.
    const pageLink = (n: number) => {
      const p = new URLSearchParams();
      if (values.q) p.set('q', values.q);
      if (values.from) p.set('from', values.from);
      if (values.to) p.set('to', values.to);
      if (n > 1) p.set('page', String(n));
      return `?${p.toString()}`;
    };
    const previous = page > 1 && asked ? pageLink(page - 1) : null;
    const next = result.more && page < MAX_PAGE ? pageLink(page + 1) : null;
    const { urls } = deps;

    if (wantsJson(req)) {
      return sendJson(res, 200, {
        query: values.q,
        // The days searched: what was typed when it is a date.
        from: typeof from === 'number' ? values.from : null,
        to: typeof to === 'number' ? values.to : null,
        page,
        notes,
        results: result.hits.map((h) => ({
          url: urls.entry(h.share_token),
          subject: h.subject,
          subject_html: subjectHtml(h).value,
          from_name: h.from_name,
          from_address: h.from_address,
          received_at: new Date(h.received_at).toISOString(),
          snippet_html: markedHtml(h.snippet, true).value,
        })),
        previous,
        next,
      }, NOINDEX);
    }

    const title = feed.title || 'feedmail inbox';
    const first = (page - 1) * SEARCH_PAGE_SIZE + 1;
    sendHtml(res, 200, layout(values.q.trim() ? `${values.q.trim().slice(0, 80)} · search · ${title}` : `Search · ${title}`, html`
<h1>Search <a href="${urls.feedPage(feed.feed_token)}">${title}</a></h1>
${searchForm(feed.feed_token, values)}
${notes.map((n) => html`<p class="notice">${n}</p>`)}
${!asked ? html`<p class="hint">Type words to find: all of them must appear (in the subject, the sender or the text). "Quoted words" find a phrase, news* finds words that start with "news", -word leaves out entries with that word, and OR between two words finds either. Links in the mail are not searched.</p>`
    : result.hits.length === 0 ? html`<p class="no-results">${page > 1 ? 'No more results.' : 'No entries match this search.'}</p>`
      : html`<p class="meta">Results ${first}–${first + result.hits.length - 1}, best match first</p>
<ol class="entries results" start="${first}">
${result.hits.map((h) => html`<li><a class="subject" href="${urls.entry(h.share_token)}">${subjectHtml(h)}</a>
<span class="meta">${h.from_name ? html`${h.from_name} ` : ''}${h.from_address ? html`&lt;${h.from_address}&gt;` : ''} · ${new Date(h.received_at).toUTCString()}</span>
${h.snippet.trim() ? html`<p class="snippet">${markedHtml(h.snippet, true)}</p>` : ''}</li>`)}
</ol>`}
${previous || next ? html`<nav class="pages">${previous ? html`<a rel="prev" href="${previous}">← Previous</a>` : ''} ${next ? html`<a rel="next" href="${next}">Next →</a>` : ''}</nav>` : ''}
`), NOINDEX);
  },
};
