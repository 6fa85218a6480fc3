/**
 * The text the search index holds for an entry, made from what the entry stores (its
 * already-redacted subject, sender and body text): no URLs, no control characters, and
 * CJK characters standing alone so that any run of them can be found as a phrase.
 *
 * The index is an FTS5 external-content table over a view that calls this function
 * (registered on every app.db connection as SEARCH_TEXT_FUNCTION), so nothing is stored
 * twice. FTS5 removes a row by re-deriving the text it indexed, so this function must give
 * the same output for the same input forever, whatever the Node version: it uses only
 * explicit ASCII classes and code-point ranges, never Unicode property tables or
 * normalization (which change with Unicode versions). To change what it produces, add a
 * new function under a new name and a migration that points the view at it and rebuilds
 * the index; test/search.test.ts pins this version's output.
 */

/** The SQL name of searchText; the version is part of the name (see above). */
export const SEARCH_TEXT_FUNCTION = 'feedmail_search_text_v1';
/** The SQL name of searchBody, under the same rule. */
export const SEARCH_BODY_FUNCTION = 'feedmail_search_body_v1';

/**
 * Separates CJK characters for the tokenizer and is removed again from what is shown:
 * ZERO WIDTH SPACE is a format character, which FTS5's unicode61 tokenizer treats as a
 * separator, and it is invisible wherever the original text had one.
 */
export const CJK_SEPARATOR = '\u200b';

/** Characters a URL in text is made of (RFC 3986's, ASCII only, so it stops at CJK text glued to it). */
const URL_CHAR = String.raw`[A-Za-z0-9\-._~:/?#@!$&()*+,;=%]`;

/**
 * URLs, which carry tracking and personal tokens: anything with "://" (with its scheme, or
 * from "://" on when more than 32 scheme characters are glued before it), "www." links,
 * mailto: and data: links, and a domain name followed by a path, query or fragment
 * ("example.com/u?t=…"). Every alternative starts at a boundary its lookbehind checks at
 * once, and its repetitions are bounded, so the scan stays linear on hostile text.
 */
const URLS = new RegExp([
  String.raw`(?<![A-Za-z0-9+.\-])[A-Za-z0-9+.\-]{0,32}:\/\/${URL_CHAR}*`,
  String.raw`:\/\/${URL_CHAR}*`,
  String.raw`(?<![A-Za-z0-9\-.])[Ww]{3}\.${URL_CHAR}+`,
  String.raw`(?<![A-Za-z0-9\-.])(?:[Mm]ailto|MAILTO|[Dd]ata|DATA):${URL_CHAR}+`,
  String.raw`(?<![A-Za-z0-9\-])(?:[A-Za-z0-9\-]{1,63}\.){1,8}[A-Za-z]{2,24}[/?#]${URL_CHAR}*`,
].join('|'), 'g');

/** A removed URL (NUL stands for it) with the brackets it was written in: "Read more [https://…]". */
const BRACKETED_URL = /[[<(]?\u0000[\]>)]?/g;

/** C0 controls but tab and line breaks, and DEL: never text, and \x01/\x02 mark highlights. */
const CONTROLS = /[\u0000-\u0008\u000b\u000c\u000e-\u001f\u007f]/g;

/**
 * Scripts written without spaces between words (Han, Hiragana, Katakana), and Hangul,
 * whose words carry their particles: each character becomes a token of its own.
 */
const CJK = /[\u3005-\u3007\u3040-\u30ff\u31f0-\u31ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af\uf900-\ufaff\uff66-\uff9f\u{20000}-\u{3134f}]/gu;

/** What the index holds for a piece of stored text (see the module comment). */
export function searchText(value: unknown): string {
  const text = typeof value === 'string' ? value : value === null || value === undefined ? '' : String(value);
  return text.replace(URLS, '\u0000').replace(BRACKETED_URL, ' ').replace(CONTROLS, ' ').replace(CJK, `${CJK_SEPARATOR}$&${CJK_SEPARATOR}`);
}

/** Elements that sit inside a word's run of text: their tags join what is on either side ("<b>W</b>ord"). */
const INLINE_TAGS = new Set(['a', 'abbr', 'b', 'bdi', 'bdo', 'cite', 'code', 'data', 'dfn', 'em', 'font', 'i', 'kbd', 'mark', 'q', 's',
  'samp', 'small', 'span', 'strike', 'strong', 'sub', 'sup', 'time', 'tt', 'u', 'var', 'wbr']);

/** The escapes the sanitizer writes (see escapeHtml) and numeric references; anything else stays as written. */
const ENTITY = /&(?:amp|lt|gt|quot|apos|nbsp|#(\d{1,7})|#[xX]([0-9a-fA-F]{1,6}));/g;
const NAMED: Record<string, string> = { '&amp;': '&', '&lt;': '<', '&gt;': '>', '&quot;': '"', '&apos;': "'", '&nbsp;': ' ' };

function decodeEntity(whole: string, dec: string | undefined, hex: string | undefined): string {
  if (dec === undefined && hex === undefined) return NAMED[whole] ?? whole;
  const code = dec !== undefined ? Number(dec) : parseInt(hex!, 16);
  return code > 0 && code <= 0x10ffff && (code < 0xd800 || code > 0xdfff) ? String.fromCodePoint(code) : ' ';
}

/**
 * What the index holds for an entry's body: the text its page shows. That is the sanitized
 * HTML's text when the entry has HTML (a newsletter's text part is often a stub such as
 * "view this email in your browser"), else the stored text; then as searchText. The HTML is
 * the sanitizer's output, so its tags never contain a raw '>' and plain patterns find them.
 * Fixed for ever like searchText (see the module comment).
 */
export function searchBody(html: unknown, text: unknown): string {
  if (typeof html !== 'string' || html.trim() === '') return searchText(text);
  const visible = html
    .replace(/<style\b[^>]*>[\s\S]*?(?:<\/style>|$)/gi, ' ')
    .replace(/<!--[\s\S]*?(?:-->|$)/g, ' ')
    .replace(/<\/?([A-Za-z][A-Za-z0-9]*)[^>]*>/g, (_, tag: string) => (INLINE_TAGS.has(tag.toLowerCase()) ? '' : ' '))
    .replace(ENTITY, decodeEntity)
    .replace(/[ \t\r\n\f]+/g, ' ');
  return searchText(visible);
}
