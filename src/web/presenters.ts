/**
 * Entry HTML as readers see it: stored sanitized HTML with cid: images pointed
 * at the entry's own part URLs, and the confirm link and notes on top. Feed
 * documents get a stricter cut than the sandboxed entry page: feed readers
 * often show entries inline in their own page, with no sandbox and no CSP.
 */
import type { DocumentEntry, Entry } from '../store/entries.js';
import type { Feed } from '../store/feeds.js';
import type { EntryPart } from '../store/parts.js';
import { redactor } from '../mail/redact.js';
import { BODY_WRAPPER_TAG, escapeHtml } from '../mail/sanitize.js';
import type { FeedDocumentEntry, FeedDocumentHead } from '../feeds/model.js';
import type { Urls } from './urls.js';

const DAY = 86_400_000;

/** A part whose bytes may be linked: kept, and not withheld with a note. */
export function isOffered(part: EntryPart): boolean {
  return part.blob_hash !== null && !part.note;
}

/**
 * Points `cid:` references at the entry's parts: `src` and `background` attributes and CSS
 * `url(cid:…)` (in style attributes and style elements, where the sanitizer wrote the body's
 * background image). Unknown or withheld cids become empty (`none` in CSS) so nothing loads.
 */
export function resolveCids(htmlText: string, entry: Pick<Entry, 'share_token'>, parts: EntryPart[], urls: Urls): string {
  const byCid = new Map<string, EntryPart>();
  for (const p of parts) if (p.content_id) byCid.set(p.content_id.toLowerCase(), p);
  const partUrl = (cid: string): string | null => {
    let id = cid.replace(/&amp;/g, '&');
    try {
      id = decodeURIComponent(id);
    } catch {
      // A malformed %-escape stays as written and simply matches no Content-ID.
    }
    const part = byCid.get(id.toLowerCase());
    return part && isOffered(part) ? urls.part(entry.share_token, part.idx, part.filename) : null;
  };
  return htmlText
    .replace(/(src|background)="cid:([^"]*)"/gi, (_, attr: string, cid: string) => `${attr}="${partUrl(cid) ?? ''}"`)
    // Part URLs are ours and plain (base32 token, digits, an encoded filename): quoted, they need no escaping in CSS.
    .replace(/url\(\s*(&quot;|'|"|)cid:([^"'()\s&]*)\1\s*\)/gi, (_, _q: string, cid: string) => {
      const url = partUrl(cid);
      return url === null ? 'none' : `url('${url.replace(/'/g, '%27')}')`;
    });
}

/** What the wrapper that stands for the sender's <body> says about the document (see BODY_WRAPPER_ATTRIBUTE). */
interface BodyFrame {
  /** The doctype to write, '' for none (quirks mode). */
  doctype: string;
  /** CSS for the document's own <html> and <body>: the sender's body margins and page background. */
  bodyCss: string;
}

const DOCTYPE_VALUE = /^html(?:\s+(?:public|system)(?:\s+(?:"[^"<>]*"|'[^'<>]*')){1,2})?$/i;

/** Reads the first body wrapper of sanitized HTML; entries made before it existed (or from plain text) get a standards-mode document. */
export function bodyFrameOf(htmlText: string): BodyFrame {
  const tag = BODY_WRAPPER_TAG.exec(htmlText);
  if (!tag) return { doctype: '<!doctype html>', bodyCss: '' };
  const attrs = tag[1]!;
  const attr = (name: string): string | undefined => {
    const m = new RegExp(` ${name}(?:="([^"]*)")?(?= |$)`).exec(attrs);
    return m ? decodeAttribute(m[1] ?? '') : undefined;
  };
  const declared = attr('data-fm-doctype');
  let doctype = '<!doctype html>';
  if (declared === '') doctype = '';
  else if (declared !== undefined && DOCTYPE_VALUE.test(declared)) doctype = `<!DOCTYPE ${declared}>`;
  const margin = attr('data-fm-margin');
  const rules: string[] = [];
  if (margin !== undefined && /^\d{1,4}px \d{1,4}px$/.test(margin)) rules.push(`body{margin:${margin}}`);
  const page = pageBackground(attr('style') ?? '');
  if (page) rules.push(`html{${page}}`);
  return { doctype, bodyCss: rules.join('') };
}

/** A colour as CSS writes it: #hex, rgb()/rgba()/hsl()/hsla() of numbers, or a keyword. Nothing else reaches the document's <style>. */
const PAGE_COLOR = /^(#[0-9a-f]{3,8}|(?:rgb|hsl)a?\(\s*[\d.%]+(?:\s*[,/ ]\s*[\d.%]+){2,3}\s*\)|[a-z]{3,20})$/i;
/** A background image kept on the wrapper: an https: URL or one of our part URLs (cid: already resolved), nothing to escape. */
const PAGE_IMAGE = /^url\(\s*(["']?)((?:https:\/\/|\/e\/)[^\s"'()\\<>]+)\1\s*\)$/i;

/**
 * The background the sender gave <body> (bgcolor, background=, or style), read back from the
 * wrapper's style, for the document's own root: a mail client paints it over the whole pane,
 * not only behind the content, so a short dark newsletter is not left on white. Only a plain
 * colour and an image URL are carried; the last declaration wins, as in CSS.
 */
export function pageBackground(style: string): string {
  let color = '';
  let image = '';
  // Linear in the style: plain string operations, no backtracking pattern over the input
  // (a body style of spaces or of unclosed `rgb(` once held a request for many seconds).
  for (const decl of decodeAttribute(style).split(';')) {
    const colon = decl.indexOf(':');
    if (colon < 0) continue;
    const prop = decl.slice(0, colon).trim().toLowerCase();
    if (prop !== 'background' && prop !== 'background-color' && prop !== 'background-image') continue;
    const value = withoutImportant(decl.slice(colon + 1).trim());
    // A value runs to the end of its line only: one that goes on past a line break is not read.
    if (/[\n\r\u2028\u2029]/.test(value)) continue;
    if (prop === 'background-image') {
      image = isPageImage(value) ? value : '';
      continue;
    }
    if (prop === 'background-color') {
      color = isPageColor(value) ? value : '';
      continue;
    }
    // The shorthand resets both: keep what it says of each, when that is plain.
    color = '';
    image = '';
    for (const part of shorthandParts(value)) {
      if (isPageImage(part)) image = part;
      else if (/^(#|rgb|hsl)/i.test(part) && isPageColor(part)) color = part;
      else if (/^[a-z]{3,20}$/i.test(part) && !BACKGROUND_KEYWORDS.has(part.toLowerCase())) color = part;
    }
  }
  return [color && `background-color:${color}`, image && `background-image:${image}`].filter(Boolean).join(';');
}

/** No colour is longer than this; a longer value is not tested against PAGE_COLOR at all. */
const MAX_COLOR_CHARS = 100;
/** Nor an image URL we keep; PAGE_IMAGE is linear, this only spares it hostile runs. */
const MAX_IMAGE_CHARS = 8192;

function isPageColor(value: string): boolean {
  return value.length <= MAX_COLOR_CHARS && PAGE_COLOR.test(value);
}

function isPageImage(value: string): boolean {
  return value.length <= MAX_IMAGE_CHARS && PAGE_IMAGE.test(value);
}

/** A trimmed value without its trailing `!important` (`! important` too), trimmed again. */
function withoutImportant(value: string): string {
  if (value.length < 9 || value.slice(-9).toLowerCase() !== 'important') return value;
  const before = value.slice(0, -9).trimEnd();
  return before.endsWith('!') ? before.slice(0, -1).trimEnd() : value;
}

/**
 * The words of a background shorthand, as `url(…)`, `rgb(…)`/`rgba(…)`/`hsl(…)`/`hsla(…)` up to
 * their `)`, or a run of non-space characters; in one pass, the next `)` found once and reused,
 * so that a value of many unclosed `rgb(` is not rescanned to its end for each of them.
 */
function shorthandParts(value: string): string[] {
  const parts: string[] = [];
  let close = -2; // index of the next ')' at or after the last search; -1 when there is none
  const nextClose = (from: number): number => {
    if (close === -1 || close >= from) return close;
    close = value.indexOf(')', from);
    return close;
  };
  let i = 0;
  while (i < value.length) {
    if (/\s/.test(value[i]!)) { i++; continue; }
    const head = value.slice(i, i + 5).toLowerCase();
    const fn = head.startsWith('url(') ? 4
      : /^(?:rgb|hsl)a\(/.test(head) ? 5
        : /^(?:rgb|hsl)\(/.test(head) ? 4 : 0;
    if (fn) {
      const end = nextClose(i + fn);
      if (end >= 0) { parts.push(value.slice(i, end + 1)); i = end + 1; continue; }
    }
    let j = i;
    while (j < value.length && !/\s/.test(value[j]!)) j++;
    parts.push(value.slice(i, j));
    i = j;
  }
  return parts;
}

/** Words of the background shorthand that are not colours. */
const BACKGROUND_KEYWORDS = new Set(['none', 'repeat', 'no', 'top', 'bottom', 'left', 'right', 'center', 'fixed', 'scroll', 'local',
  'cover', 'contain', 'auto', 'space', 'round', 'border', 'padding', 'content', 'text', 'inherit', 'initial', 'unset', 'revert']);

/**
 * The document the entry body frame shows: the sender's doctype (or its absence, which puts
 * the browser in quirks mode as a mail client does), and the sanitized, cid-resolved body.
 * The <style> in the head comes before the sender's own, so theirs wins, as over a legacy
 * attribute. On a phone a layout wider than the frame scrolls sideways inside the frame,
 * as in a mail app, instead of being cut off.
 */
export function bodyDocument(body: string): string {
  const { doctype, bodyCss } = bodyFrameOf(body);
  return `${doctype}<html><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1"><meta name="referrer" content="no-referrer"><base target="_blank"><title>Message</title>`
    + `${bodyCss ? `<style>${bodyCss}</style>` : ''}</head><body>${body}</body></html>`;
}

/** The confirm URL as shown to anyone but the owner: with the feed's secrets redacted. */
export function shownConfirmUrl(entry: Pick<Entry, 'confirm_url'>, feed: Feed): string | null {
  if (!entry.confirm_url) return null;
  return redactor({ inboxToken: feed.inbox_token, feedToken: feed.feed_token })(entry.confirm_url);
}

/**
 * When an entry was published: the message's own date when it is believable,
 * between 1970 and a day after it arrived (clocks and time zones drift); when
 * it arrived otherwise. Dates like year 0 or -271821 are misread by readers.
 */
export function publishedAt(entry: Pick<Entry, 'sent_at' | 'received_at'>): number {
  const sent = entry.sent_at;
  return sent !== null && Number.isFinite(sent) && sent >= 0 && sent <= entry.received_at + DAY ? sent : entry.received_at;
}

function decodeAttribute(value: string): string {
  return value.replace(/&quot;|&#34;|&#39;|&apos;|&lt;|&gt;|&amp;/g, (e) =>
    ({ '&quot;': '"', '&#34;': '"', '&#39;': "'", '&apos;': "'", '&lt;': '<', '&gt;': '>', '&amp;': '&' })[e]!);
}

/** An attribute value as a browser reads it: every character reference the sanitizer may leave (named ones as decodeAttribute, and numeric ones such as `&#9;`). */
function decodeImageAttribute(value: string): string {
  return value.replace(/&quot;|&apos;|&lt;|&gt;|&amp;|&#(\d{1,7});|&#x([0-9a-f]{1,6});/gi, (e, dec?: string, hex?: string) => {
    if (dec === undefined && hex === undefined) return decodeAttribute(e.toLowerCase());
    const code = dec !== undefined ? Number(dec) : parseInt(hex!, 16);
    return code > 0 && code <= 0x10ffff && !(code >= 0xd800 && code <= 0xdfff) ? String.fromCodePoint(code) : '\ufffd';
  });
}

/** What an image URL becomes: another URL, or undefined to leave it as it is. */
type ImageMap = (target: string) => string | undefined;

/**
 * A remote image feedmail proxies, mapped: http(s), and not one of our own URLs (entry
 * parts, earlier proxied images, which start with `base`). Read as a browser's URL parser
 * reads it (WHATWG, as `new URL` does), so spellings a browser loads are proxied too:
 * tabs and newlines inside, `http:\\host`, `https:host`.
 */
function proxied(target: string, base: string, map: ImageMap): string | undefined {
  let url: URL;
  try {
    url = new URL(target);
  } catch {
    return undefined;
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') return undefined;
  return base && url.href.startsWith(`${base}/`) ? undefined : map(url.href);
}

/** `url(…)` as cleanCss (mail/sanitize.ts) leaves it. */
const CSS_URL = /url\(\s*(?:"([^"]*)"|'([^']*)'|([^"'()\s]*))\s*\)/gi;

/** `image-set(…)` and `-webkit-image-set(…)`, whose candidates may be bare strings rather than url(). */
const CSS_IMAGE_SET = /((?:-webkit-)?image-set\(\s*)([^()]*(?:\([^()]*\)[^()]*)*)\)/gi;
const CSS_STRING = /"([^"]*)"|'([^']*)'/g;

function proxiedCss(css: string, base: string, map: ImageMap): string {
  return css
    .replace(CSS_URL, (whole, dq?: string, sq?: string, bare?: string) => {
      const url = proxied(dq ?? sq ?? bare ?? '', base, map);
      // Our URLs are base64url under the base URL: quoted, nothing in them needs escaping in CSS.
      return url === undefined ? whole : `url('${url}')`;
    })
    .replace(CSS_IMAGE_SET, (_, open: string, candidates: string) => `${open}${candidates.replace(CSS_STRING, (whole, dq?: string, sq?: string) => {
      const url = proxied(dq ?? sq ?? '', base, map);
      return url === undefined ? whole : `'${url}'`;
    })})`);
}

/**
 * Points every remote image of sanitized HTML (or of a whole body document made of it) at
 * the proxy: `src`, `srcset` and `background` attributes, and CSS `url()` in `style`
 * attributes and `<style>` elements. The input is the sanitizer's output (tags never contain
 * a raw '>', attribute values are double-quoted, `<` inside <style> is escaped), so plain
 * patterns find them, as in htmlForFeedReaders. Unchanged when the proxy is off.
 */
export function proxiedImages(htmlText: string, urls: Urls): string {
  return urls.images ? mapImages(htmlText, urls.base, (target) => urls.image(target)) : htmlText;
}

/** The remote images proxiedImages would point at the proxy, each once, in order (for fetching them ahead: jobs/tasks/prefetch-images.ts). */
export function remoteImageUrls(htmlText: string): string[] {
  const found = new Set<string>();
  mapImages(htmlText, '', (target) => {
    found.add(target);
    return undefined;
  });
  return [...found];
}

function mapImages(htmlText: string, base: string, map: ImageMap): string {
  return htmlText
    .replace(/(<style>)([\s\S]*?)(<\/style>)/gi, (_, open: string, css: string, close: string) => `${open}${proxiedCss(css, base, map)}${close}`)
    .replace(/<([a-z][a-z0-9]*)(\s[^>]*)>/gi, (whole, tag: string, attrs: string) => {
      if (!/\b(src|srcset|background|style)=/i.test(attrs)) return whole;
      const kept = attrs.replace(/(\s+)([^\s="'>/]+)(?:="([^"]*)")?/g, (attrWhole, space: string, name: string, value: string | undefined) => {
        if (value === undefined) return attrWhole;
        const attr = name.toLowerCase();
        let next: string | undefined;
        const decoded = decodeImageAttribute(value);
        if (attr === 'src' || attr === 'background') next = proxied(decoded, base, map);
        else if (attr === 'style' && /url\(|image-set\(/i.test(decoded)) next = proxiedCss(decoded, base, map);
        else if (attr === 'srcset') {
          next = decoded.split(/,(?=\s)/).map((candidate) => candidate.replace(/^(\s*)(\S+)/, (c, lead: string, url: string) => {
            const p = proxied(url, base, map);
            return p === undefined ? c : `${lead}${p}`;
          })).join(',');
        }
        return next === undefined ? attrWhole : `${space}${name}="${escapeHtml(next)}"`;
      });
      return `<${tag}${kept}>`;
    });
}

/** Positioning that takes an element out of the entry, to overlay or restyle the reader's own page. */
const ESCAPING_POSITION = /(^|;)\s*position\s*:\s*([^;]*)/gi;

function styleForFeed(style: string): string {
  return style.replace(ESCAPING_POSITION, (whole, sep: string, value: string) =>
    /^\s*(static|relative)\s*(!\s*important\s*)?$/i.test(value) ? whole : sep);
}

/**
 * What feed readers get of an entry's HTML. The input is the sanitizer's output
 * (tags never contain a raw '>' and every attribute value is double-quoted), so
 * tags and attributes can be found with plain patterns. Removes `<style>` blocks
 * (they apply to the reader's whole page), ids, positions other than static and
 * relative, and `src`/`background` URLs that are not absolute: a reader resolves
 * those against its own origin or ours (`<img src="/manage/x/delete">`). Our own
 * part URLs are already absolute by then (see resolveCids).
 */
export function htmlForFeedReaders(htmlText: string): string {
  return htmlText
    .replace(/<style>[\s\S]*?<\/style>/gi, '')
    .replace(/<([a-z][a-z0-9]*)(\s[^>]*)>/gi, (_, tag: string, attrs: string) => {
      // Attribute by attribute from the left, so text inside one value is never read as another attribute.
      const kept = attrs.replace(/(\s+)([^\s="'>/]+)(?:="([^"]*)")?/g, (whole, space: string, name: string, value: string | undefined) => {
        const attr = name.toLowerCase();
        // Ids serve the entry's own stylesheet, which readers do not get; in a reader's page they could clash with its own.
        if (attr === 'id') return '';
        // Readers show `src`; a candidate list is one more URL-carrying attribute for them to resolve.
        if (attr === 'srcset') return '';
        if (value === undefined || (attr !== 'style' && attr !== 'src' && attr !== 'background')) return whole;
        const decoded = decodeAttribute(value);
        if (attr === 'style') return `${space}${name}="${escapeHtml(styleForFeed(decoded))}"`;
        return /^\s*(https?:\/\/|data:image\/)/i.test(decoded) ? whole : '';
      });
      return `<${tag}${kept}>`;
    });
}

/** Cuts a field shown in feed documents to `max` characters, without splitting a surrogate pair. */
function clip(s: string, max: number): string {
  if (s.length <= max) return s;
  let end = max - 1;
  if (/[\ud800-\udbff]/.test(s[end - 1] ?? '')) end -= 1;
  return `${s.slice(0, end)}…`;
}

/** Bounds on the parts of an entry that are not its body, so that a summary entry stays small. */
const MAX_TITLE = 500;
const MAX_AUTHOR = 200;
const MAX_FILENAME = 200;
const MAX_ENCLOSURES = 20;
const MAX_CONFIRM_URL = 4096;

function noticesHtml(entry: DocumentEntry, feed: Feed, urls: Urls): string {
  let top = '';
  const confirm = shownConfirmUrl(entry, feed);
  if (confirm) {
    const href = confirm.length <= MAX_CONFIRM_URL ? confirm : urls.entry(entry.share_token);
    top += `<p><strong>This looks like a subscription confirmation.</strong> <a href="${escapeHtml(href)}">Confirm the subscription</a></p>`;
  }
  if (entry.note) top += `<p><em>${escapeHtml(clip(entry.note, 1000))}</em></p>`;
  return top;
}

function attachmentsHtml(entry: DocumentEntry, attachments: EntryPart[], urls: Urls): string {
  if (!attachments.length) return '';
  return `<hr><p>Attachments:</p><ul>${attachments.map((p) => {
    if (p.note) return `<li>${escapeHtml(p.filename)} (${p.size} bytes): ${escapeHtml(p.note)}</li>`;
    if (!p.blob_hash) return `<li>${escapeHtml(p.filename)} (${p.size} bytes, too large to keep)</li>`;
    return `<li><a href="${escapeHtml(urls.part(entry.share_token, p.idx, p.filename))}">${escapeHtml(p.filename)}</a> (${p.size} bytes)</li>`;
  }).join('')}</ul>`;
}

/** The start of an entry's plain text on one line, for a summary; the HTML's text when there is none. */
function summaryText(entry: DocumentEntry, summaryChars: number): string {
  let source = entry.summary;
  if (!source.trim()) {
    source = decodeAttribute(entry.html.slice(0, summaryChars * 20)
      .replace(/<style>[\s\S]*?(<\/style>|$)/gi, ' ')
      .replace(/<[^>]*(>|$)/g, ' '));
  }
  const flat = source.replace(/\s+/g, ' ').trim();
  if (flat.length > summaryChars) return clip(flat, summaryChars);
  // The store cut the text at summaryChars: say that more follows.
  return Array.from(entry.summary).length >= summaryChars ? `${flat}…` : flat;
}

export function feedDocumentHead(feed: Feed, urls: Urls): FeedDocumentHead {
  return {
    id: `urn:feedmail:feed:${feed.feed_token}`,
    title: feed.title || 'feedmail inbox',
    pageUrl: urls.feedPage(feed.feed_token),
    atomUrl: urls.feed(feed.feed_token, 'atom'),
    rssUrl: urls.feed(feed.feed_token, 'rss'),
    jsonUrl: urls.feed(feed.feed_token, 'json'),
    updated: new Date(feed.updated_at),
    hubUrl: urls.websubHub(),
  };
}

/**
 * One entry of a feed document. `whole` carries the body (cleaned for readers);
 * `summary` carries the start of its text and a link to the entry page, for
 * newsletters too long for a feed document. `entry.html` must be the whole body
 * for `whole`.
 */
export function feedDocumentEntry(entry: DocumentEntry, feed: Feed, parts: EntryPart[], urls: Urls, form: 'whole' | 'summary', summaryChars = 1000): FeedDocumentEntry {
  const attachments = parts.filter((p) => !p.inline);
  let body: string;
  if (form === 'whole') {
    body = noticesHtml(entry, feed, urls) + proxiedImages(htmlForFeedReaders(resolveCids(entry.html, entry, parts, urls)), urls) + attachmentsHtml(entry, attachments, urls);
  } else {
    const more = attachments.length ? ` (with ${attachments.length} attachment${attachments.length === 1 ? '' : 's'})` : '';
    body = `${noticesHtml(entry, feed, urls)}<p>${escapeHtml(summaryText(entry, summaryChars))}</p>`
      + `<p><em>This newsletter is too long to show in full in a feed reader.</em> <a href="${escapeHtml(urls.entry(entry.share_token))}"><strong>Read the whole newsletter</strong></a>${more}</p>`;
  }
  return {
    // Stable across a change of base URL, so readers do not see every entry twice.
    id: `urn:feedmail:entry:${entry.share_token}`,
    url: urls.entry(entry.share_token),
    title: clip(entry.subject || '(no subject)', MAX_TITLE),
    authorName: clip(entry.from_name, MAX_AUTHOR),
    authorEmail: clip(entry.from_address, MAX_AUTHOR),
    published: new Date(publishedAt(entry)),
    updated: new Date(entry.processed_at),
    html: body,
    enclosures: attachments.filter(isOffered).slice(0, MAX_ENCLOSURES).map((p) => {
      const name = clip(p.filename, MAX_FILENAME);
      return { url: urls.part(entry.share_token, p.idx, name), type: p.content_type, length: p.size, title: name };
    }),
  };
}
