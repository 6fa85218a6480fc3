/**
 * Plain-text mail as a mail client shows it: every line break and space kept
 * (indentation, aligned columns, runs of blank lines), long lines wrapped at the
 * page's width, `>` quotes set off as quote blocks, and http(s)/mailto URLs as links.
 * format=flowed is already reflowed by the parser. Everything is escaped here;
 * the only markup is what this module writes.
 */
import { escapeHtml } from './sanitize.js';

/** The frame of the text: its whitespace kept, long words broken rather than overflowing. */
const TEXT_STYLE = 'white-space: pre-wrap; overflow-wrap: anywhere; tab-size: 8; '
  + "font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, 'Liberation Mono', monospace; font-size: 13px; line-height: normal";
const QUOTE_STYLE = 'margin: 0; padding: 0 0 0 0.75em; border-left: 2px solid #9aa6c0; color: #4a5568';
const LINK_ATTRIBUTES = 'target="_blank" rel="noopener noreferrer nofollow"';

/** Mail line lengths: beyond this nothing is linkified or grouped, only escaped (bounds the work on hostile input). */
const MAX_URL_CHARS = 4096;
/** Deeper quotes are shown at this depth. */
const MAX_QUOTE_DEPTH = 8;


/**
 * URLs as mail clients find them: http(s)://…, mailto:…, and www.… (shown as written,
 * linked over http). Trailing punctuation stays outside the link, and so does a closing
 * bracket that has no opening one inside the URL.
 */
const URL = /\b(?:https?:\/\/|mailto:|www\.)[^\s<>"'`\u0000-\u001f\u007f]+/gi;

function trimUrl(url: string): string {
  const u = url.slice(0, MAX_URL_CHARS);
  // The brackets are counted once and the counts kept as the end moves back, so a URL that
  // ends in thousands of closing brackets is trimmed in one pass, not recounted per bracket.
  const counts: Record<string, number> = { '(': 0, ')': 0, '[': 0, ']': 0, '{': 0, '}': 0 };
  for (const ch of u) if (ch in counts) counts[ch]!++;
  let end = u.length;
  while (end > 0) {
    const last = u[end - 1]!;
    if ('.,;:!?'.includes(last)) { end--; continue; }
    const open = CLOSING[last];
    if (open !== undefined && counts[open]! < counts[last]!) { counts[last]!--; end--; continue; }
    break;
  }
  return u.slice(0, end);
}

const CLOSING: Record<string, string> = { ')': '(', ']': '[', '}': '{' };

function count(s: string, c: string): number {
  let n = 0;
  for (const ch of s) if (ch === c) n++;
  return n;
}

/** One line (or run of lines) of text as escaped HTML with its URLs as links. */
export function linkify(text: string): string {
  let out = '';
  let at = 0;
  for (const m of text.matchAll(URL)) {
    const url = trimUrl(m[0]);
    const start = m.index;
    // A scheme with nothing after it ("http://" alone) is text.
    if (!/^(?:https?:\/\/[^/?#\s]|mailto:[^\s]|www\.[^\s.])/i.test(url)) continue;
    // A URL that runs to the end of a line which the next line continues without a space was
    // hard-wrapped by the mailer: its link would be broken anyway, and a link ending at the
    // wrap would put markup inside whatever the URL carries (a recipient's address that
    // redaction must see whole). Such a URL stays text.
    const after = start + m[0].length;
    if (url.length === m[0].length && (text[after] === '\n' || text[after] === '\r') && /[^\s<>"'`]/.test(text[after + (text[after] === '\r' && text[after + 1] === '\n' ? 2 : 1)] ?? '')) continue;
    const href = /^www\./i.test(url) ? `http://${url}` : url;
    out += escapeHtml(text.slice(at, start));
    out += `<a href="${escapeHtml(href)}" ${LINK_ATTRIBUTES}>${escapeHtml(url)}</a>`;
    at = start + url.length;
  }
  return out + escapeHtml(text.slice(at));
}

/** How many `>` open a line ("> > x" and ">> x" are both depth 2). */
function quoteDepth(line: string): number {
  const m = /^(?:> ?)+/.exec(line);
  if (!m) return 0;
  return Math.min(count(m[0], '>'), MAX_QUOTE_DEPTH);
}

/**
 * The text's lines grouped by quote depth; each group is one block, its lines joined by
 * their newlines. In a pre-wrap block a final newline draws no line, so a group that
 * ends with an empty line gets one more newline to keep that blank line visible.
 */
function renderLines(lines: string[]): string {
  let out = '';
  let depth = 0;
  let group: string[] = [];
  const flush = (): void => {
    if (group.length === 0) return;
    const body = linkify(group.join('\n'));
    out += group.at(-1) === '' ? `${body}\n` : body;
    group = [];
  };
  for (const line of lines) {
    const d = quoteDepth(line);
    if (d !== depth) {
      flush();
      while (depth < d) { out += `<blockquote type="cite" style="${QUOTE_STYLE}">`; depth++; }
      while (depth > d) { out += '</blockquote>'; depth--; }
    }
    group.push(line);
  }
  flush();
  while (depth > 0) { out += '</blockquote>'; depth--; }
  return out;
}

/** Plain text as readable HTML, for entries that have no HTML of their own. */
export function textToHtml(text: string): string {
  const lines = text.replace(/\r\n?/g, '\n').replace(/\u0000/g, '').split('\n');
  // Trailing blank lines are the end of the message, not its shape.
  while (lines.length > 1 && lines.at(-1)!.trim() === '') lines.pop();
  return `<div class="feedmail-text" style="${TEXT_STYLE}">${renderLines(lines)}</div>`;
}
