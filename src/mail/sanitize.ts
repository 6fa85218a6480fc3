/**
 * Newsletter HTML is hostile until it has been through here. An allowlist keeps
 * what newsletters need to look right (tables, inline styles, colors, widths,
 * images) and drops everything that can run code, navigate, submit or load
 * things on its own.
 */
import { QuoteType, Tokenizer, type TokenizerCallbacks } from 'htmlparser2';
import sanitize from 'sanitize-html';

export interface SanitizeOptions {
  keepTrackingPixels: boolean;
  /**
   * Limits on the markup sanitize-html is given; HTML_BOUNDS unless a test or benchmark says
   * otherwise. Both infinite skips the bounding pass, and with it the <style/> rewrite: that
   * is sanitize-html alone, for comparisons only.
   */
  bounds?: HtmlBounds;
}

/**
 * How much structure a message may have. sanitize-html's parser (htmlparser2) keeps
 * its open elements in an array it shifts at the front, so its time grows with the
 * square of the nesting depth: 150,000 nested <div>s took the whole 20 s budget.
 * Markup beyond either limit is flattened before sanitizing: its tags are dropped,
 * its text is kept.
 */
export interface HtmlBounds {
  /** Open elements at once. Real newsletters nest tables 20-40 deep; Chromium itself stops nesting at 512. */
  maxDepth: number;
  /** Elements in the whole message (a 25 MB message can hold millions). */
  maxElements: number;
}

export const HTML_BOUNDS: HtmlBounds = { maxDepth: 256, maxElements: 50_000 };

/** What an entry says when its markup was flattened. */
export const FLATTENED_NOTE = 'This message nests its layout too deeply or has too many elements; its layout was simplified to show it.';

export interface SanitizedHtml {
  html: string;
  /** Markup beyond HTML_BOUNDS was flattened (the reader should be told, see FLATTENED_NOTE). */
  flattened: boolean;
}

/** Elements whose content sanitize-html drops along with the element. */
const NON_TEXT_TAGS = ['script', 'textarea', 'option', 'noscript', 'title', 'template', 'xmp', 'iframe', 'noembed', 'noframes', 'object', 'svg', 'math'];

const ALLOWED_TAGS = [
  'a', 'abbr', 'address', 'article', 'aside', 'b', 'bdi', 'bdo', 'big', 'blockquote', 'br', 'caption',
  'center', 'cite', 'code', 'col', 'colgroup', 'dd', 'del', 'details', 'dfn', 'div', 'dl', 'dt', 'em',
  'figcaption', 'figure', 'font', 'footer', 'h1', 'h2', 'h3', 'h4', 'h5', 'h6', 'header', 'hr', 'i',
  'img', 'ins', 'kbd', 'li', 'main', 'mark', 'nav', 'ol', 'p', 'pre', 'q', 's', 'samp', 'section',
  'small', 'span', 'strike', 'strong', 'style', 'sub', 'summary', 'sup', 'table', 'tbody', 'td',
  'tfoot', 'th', 'thead', 'time', 'tr', 'tt', 'u', 'ul', 'var', 'wbr',
];

const LAYOUT_ATTRIBUTES = [
  'style', 'class', 'id', 'dir', 'lang', 'title', 'align', 'valign', 'width', 'height', 'bgcolor',
  'color', 'border', 'cellpadding', 'cellspacing', 'colspan', 'rowspan', 'nowrap', 'role',
];

/**
 * Elements whose `background` attribute browsers still draw. Only https: and cid: images are
 * kept there (cid: is resolved to the entry's own part when shown, as for <img>).
 */
const BACKGROUND_TAGS = ['table', 'thead', 'tbody', 'tfoot', 'tr', 'td', 'th'];

/**
 * The wrapper that stands for the sender's <body>: a <div> with this attribute, the body's
 * class, id and style, and its legacy attributes as CSS. `data-fm-doctype` carries the
 * sender's doctype (empty: there was none, so a mail client shows it in quirks mode), and
 * `data-fm-margin` the body's leftmargin/topmargin, which belong to the document's own body.
 * Only the entry body document reads them (see web/presenters.ts, bodyDocument).
 */
export const BODY_WRAPPER_ATTRIBUTE = 'data-fm-body';
/**
 * The wrapper's opening tag as sanitize-html writes it (an empty attribute bare, '>' escaped
 * in values); group 1 holds its other attributes. Every reader of the wrapper matches it so.
 */
export const BODY_WRAPPER_TAG = /<div data-fm-body(?:="")?((?: [^>]*)?)>/;
const BODY_WRAPPER_ATTRIBUTES = [BODY_WRAPPER_ATTRIBUTE, 'data-fm-doctype', 'data-fm-margin', 'data-fm-link', 'data-fm-vlink', 'data-fm-alink'];

/** A legacy colour attribute value that can be written into CSS as it is (#rgb, #rrggbb, or a colour name). */
const CSS_COLOR = /^(#[0-9a-f]{3}|#[0-9a-f]{6}|[a-z]{3,20})$/i;
/** Browsers read bgcolor="ffffff" as #ffffff. */
function legacyColor(value: string | undefined): string | null {
  const v = (value ?? '').trim();
  if (/^[0-9a-f]{6}$/i.test(v)) return `#${v}`;
  return CSS_COLOR.test(v) ? v : null;
}

/** A background image URL kept on legacy attributes and on the body wrapper: https: or cid:, nothing to escape. */
function backgroundUrl(value: string | undefined): string | null {
  const v = (value ?? '').trim();
  return /^(https:\/\/|cid:)[^\s"'()\\<>]+$/i.test(v) ? v : null;
}

/** A doctype exactly as a browser reads one for choosing its mode, or null. */
const DOCTYPE = /^html(?:\s+(?:public|system)(?:\s+(?:"[^"<>]*"|'[^'<>]*')){1,2})?$/i;

/**
 * The sender's doctype, as it decides the mode a browser renders in: the first thing in the
 * document after whitespace and comments. '' when there is none (quirks mode).
 */
export function senderDoctype(html: string): string {
  // One forward scan (a pattern of repeated comments once backtracked exponentially): a
  // comment ends at its first `-->`, as in a browser, and the doctype at its first `>`.
  let i = html.startsWith('\ufeff') ? 1 : 0;
  for (;;) {
    if (i < html.length && isSpace(html[i]!)) { i++; continue; }
    if (!html.startsWith('<!--', i)) break;
    const end = html.indexOf('-->', i + 4);
    if (end < 0) return '';
    i = end + 3;
  }
  if (html.slice(i, i + 9).toLowerCase() !== '<!doctype' || !isSpace(html[i + 9] ?? '')) return '';
  const close = html.indexOf('>', i + 9);
  if (close < 0) return '';
  const value = html.slice(i + 9, close).trim().replace(/\s+/g, ' ');
  return DOCTYPE.test(value) ? value : 'html';
}

/** One character that `\s` matches. */
function isSpace(c: string): boolean {
  return c !== '' && c.trim() === '';
}

/** Carries what a <body> says onto the wrapper that replaces it. */
function bodyWrapper(attribs: Record<string, string>, doctype: string, keepTrackingPixels: boolean): Record<string, string> {
  const css: string[] = [];
  const bg = legacyColor(attribs.bgcolor);
  if (bg) css.push(`background-color: ${bg}`);
  const url = backgroundUrl(attribs.background);
  const image = url !== null && (keepTrackingPixels || !isTrackerBackground(url)) ? url : null;
  if (image) css.push(`background-image: url(${image})`);
  const text = legacyColor(attribs.text);
  if (text) css.push(`color: ${text}`);
  // Later declarations win: the sender's own style overrides what the legacy attributes say, as in a browser.
  if (attribs.style !== undefined && attribs.style.trim()) css.push(attribs.style.trim().replace(/;\s*$/, ''));
  const out: Record<string, string> = { [BODY_WRAPPER_ATTRIBUTE]: '', 'data-fm-doctype': doctype };
  const px = (v: string | undefined) => (v !== undefined && /^\s*\d{1,4}\s*$/.test(v) ? `${Number(v)}px` : null);
  const top = px(attribs.topmargin) ?? px(attribs.marginheight);
  const left = px(attribs.leftmargin) ?? px(attribs.marginwidth);
  if (top !== null || left !== null) out['data-fm-margin'] = `${top ?? '8px'} ${left ?? '8px'}`;
  if (attribs.class !== undefined) out.class = attribs.class;
  if (attribs.id !== undefined) out.id = attribs.id;
  if (attribs.dir !== undefined) out.dir = attribs.dir;
  if (attribs.lang !== undefined) out.lang = attribs.lang;
  if (css.length) out.style = css.join('; ');
  for (const [attr, rule] of [['link', 'a:link'], ['vlink', 'a:visited'], ['alink', 'a:active']] as const) {
    const color = legacyColor(attribs[attr]);
    if (color) out[`data-fm-${attr}`] = `${rule}|${color}`;
  }
  return out;
}

/**
 * The link colours of a <body link vlink alink>, as a style element at the start of its
 * wrapper. `:where()` gives them no specificity, so the sender's own CSS wins, as it does over
 * a presentational attribute.
 */
function linkColorStyles(html: string): string {
  return html.replace(new RegExp(BODY_WRAPPER_TAG.source, 'g'), (whole, rest: string) => {
    const rules: string[] = [];
    const kept = rest.replace(/ data-fm-(?:link|vlink|alink)="([a-z:]+)\|(#?[0-9a-z]+)"/gi, (_, rule: string, color: string) => {
      rules.push(`:where(${rule}){color:${color}}`);
      return '';
    });
    return rules.length ? `<div data-fm-body${kept}><style>${rules.join(' ')}</style>` : whole;
  });
}

/**
 * Paths that open trackers use, on any host (matched against the image URL). A spacer can be
 * called pixel.gif too: these count only for images whose markup gives them no real size.
 */
const TRACKER_PATHS: RegExp[] = [
  /\/track\/open/i,
  /\/open\.(php|aspx|gif|png)\b/i,
  /[?&](utm_medium=email&)?(mc_eid|open_id)=/i,
  /\/wf\/open\?/i,
  /\/e\/o\//i,
  /\/pixel(\.gif|\.png)?(\?|$|\/)/i,
  /\/beacon(\.gif)?(\?|$|\/)/i,
  /\/(trk|tracking)\/(open|o)\b/i,
];

/** Known open-tracking hosts and their endpoints: removed whatever size the markup gives. */
const TRACKER_HOSTS: RegExp[] = [
  /google-analytics\.com\/collect/i,
  /list-manage\.com\/track\//i,
  /mandrillapp\.com\/track/i,
  /sendgrid\.net\/(wf|trk)/i,
  /mailchimp\.com\/track/i,
  // HubSpot: every path of its mail host but the file manager (`/hub/<portal>/hubfs/`), where
  // the images a sender put in the message live; its link host serves the open pixel (`/Cto/`).
  /\.hubspotemail\.net\/(?!hub\/\d+\/hubfs\/)/i,
  /\.hubspotlinks\.com\//i,
  /email\.mg\.[^/]+\/o\//i,
  /substack\.com\/o\//i,
  /convertkit-mail\d*\.com\/o\//i,
];

/** CSS that can run code, pull in other sheets or bind behaviour; removed wherever CSS appears. */
export function cleanCss(css: string): string {
  // Escapes can spell "expression" or "javascript", and can hide comment markers; decode them
  // first, so that what is checked below is what a browser would read.
  let out = css
    .replace(/\\([0-9a-f]{1,6})\s?/gi, (_, hex: string) => {
      const cp = parseInt(hex, 16);
      return cp > 0 && cp <= 0x10ffff ? String.fromCodePoint(cp) : '';
    })
    .replace(/\\(.)/g, '$1');
  // Comments can split a keyword ("expr/**/ession"); an unterminated one runs to the end.
  out = out.replace(/\/\*[\s\S]*?(\*\/|$)/g, '');
  out = out
    // Replaced by a space, not by nothing, so that the pieces around a removal cannot join
    // into a new keyword ("@imp@import;ort").
    .replace(/@(import|charset|namespace)[^;]*;?/gi, ' ')
    .replace(/expression\s*\(/gi, 'blocked(')
    .replace(/(-moz-binding|behavior|behaviour)\s*:/gi, 'blocked:')
    // No CSS of any use names -moz-binding; where junk stands between it and its colon it goes too.
    .replace(/-moz-binding/gi, 'blocked')
    // A url() whose target is readable is kept when it is safe; any other url( is dropped.
    .replace(/url\s*\(\s*(?:"([^"]*)"|'([^']*)'|([^"'()\s]*))\s*\)|url\s*\(/gi, (whole, dq?: string, sq?: string, bare?: string) => {
      const target = dq ?? sq ?? bare;
      return target !== undefined && isSafeCssUrl(target) ? whole : 'none';
    })
    .replace(/(javascript|vbscript|livescript)\s*:/gi, 'blocked:');
  return out;
}

function isSafeCssUrl(target: string): boolean {
  const t = target.trim().toLowerCase();
  return t.startsWith('https://') || t.startsWith('http://') || t.startsWith('cid:') || /^data:image\/(png|gif|jpe?g|webp);/.test(t);
}

function numeric(v: string | undefined): number | null {
  if (v === undefined) return null;
  const m = /^\s*(\d+(?:\.\d+)?)\s*(px)?\s*$/i.exec(v);
  return m ? Number(m[1]) : null;
}

function styleValue(style: string, prop: string): string | undefined {
  const m = new RegExp(`(?:^|;)\\s*${prop}\\s*:\\s*([^;]+)`, 'i').exec(style);
  return m?.[1]?.trim();
}

/** 1x1, hidden, or known-tracker images exist to report that the mail was opened. */
export function isTrackingImage(attribs: Record<string, string>): boolean {
  const style = attribs.style ?? '';
  const width = numeric(attribs.width) ?? numeric(styleValue(style, 'width'));
  const height = numeric(attribs.height) ?? numeric(styleValue(style, 'height'));
  if ((width !== null && width <= 2) && (height !== null && height <= 2)) return true;
  if (width === 0 || height === 0) return true;
  const display = styleValue(style, 'display');
  const visibility = styleValue(style, 'visibility');
  if (display?.toLowerCase().startsWith('none') || visibility?.toLowerCase().startsWith('hidden')) return true;
  const opacity = styleValue(style, 'opacity');
  if (opacity !== undefined && Number(opacity) === 0) return true;
  const src = attribs.src ?? '';
  if (TRACKER_HOSTS.some((p) => p.test(src))) return true;
  // A spacer or divider: its markup gives it a real size (width="20" height="1", a 600 px rule).
  // At a tracker path, a few pixels each way (3x3, 4x4) is still a pixel, not a spacer.
  const sized = (width !== null && width > 2) || (height !== null && height > 2);
  const tiny = width !== null && height !== null && width <= TINY_IMAGE_PX && height <= TINY_IMAGE_PX;
  return (!sized || tiny) && TRACKER_PATHS.some((p) => p.test(src));
}

/** An image no larger than this each way, at a tracker path, is an open tracker whatever its markup says. */
const TINY_IMAGE_PX = 4;

/** A background image URL at a known tracker host or path: the open report a mail client sends when it draws it. */
function isTrackerBackground(url: string): boolean {
  return TRACKER_HOSTS.some((p) => p.test(url)) || TRACKER_PATHS.some((p) => p.test(url));
}

/**
 * A `srcset` a mail client may choose from (it shows one of the candidates instead of
 * `src`): every URL absolute https (as for `background`: plain http is how the hostile
 * corpus reaches attacker hosts) and none at a tracker host, every descriptor a plain width
 * or density. Anything else, and the image keeps only its `src`.
 */
function isPlainSrcset(srcset: string): boolean {
  if (srcset.length > 8192) return false;
  const candidates = srcset.split(/,\s+/).map((c) => c.trim()).filter((c) => c !== '');
  if (candidates.length === 0 || candidates.length > 16) return false;
  return candidates.every((candidate) => {
    const [url = '', descriptor, ...extra] = candidate.replace(/,$/, '').split(/\s+/);
    if (extra.length > 0 || (descriptor !== undefined && !/^\d+(\.\d+)?[wx]$/.test(descriptor))) return false;
    return /^https:\/\/[^\s"'<>\\]+$/i.test(url) && !TRACKER_HOSTS.some((p) => p.test(url));
  });
}

/** An href a browser would follow to http(s), mail or phone; it ignores whitespace and controls in the scheme. */
function isLink(href: string): boolean {
  return /^(https?|mailto|tel):/i.test(href.replace(/[\u0000-\u0020\u007f]+/g, ''));
}

const SAFE_DATA_IMAGE = /^data:image\/(png|gif|jpe?g|webp);base64,[a-z0-9+/=\s]+$/i;

/** Sanitizes newsletter HTML for storage and for every place it is shown. */
export function sanitizeNewsletterHtml(html: string, options: SanitizeOptions): string {
  return sanitizeNewsletterHtmlWithReport(html, options).html;
}

/** Like sanitizeNewsletterHtml, and says whether the markup had to be flattened to stay within bounds. */
export function sanitizeNewsletterHtmlWithReport(html: string, options: SanitizeOptions): SanitizedHtml {
  const bounds = options.bounds ?? HTML_BOUNDS;
  const doctype = senderDoctype(html);
  if (!Number.isFinite(bounds.maxDepth) && !Number.isFinite(bounds.maxElements)) {
    return { html: sanitizeMarkup(html, options, doctype), flattened: false };
  }
  const bounded = boundMarkup(html, bounds);
  return { html: sanitizeMarkup(bounded.html, options, doctype), flattened: bounded.flattened };
}

function sanitizeMarkup(html: string, options: SanitizeOptions, doctype: string): string {
  const cleaned = sanitize(html, {
    allowedTags: ALLOWED_TAGS,
    allowVulnerableTags: true, // <style> is allowed on purpose; its text is cleaned below.
    disallowedTagsMode: 'discard',
    nonTextTags: NON_TEXT_TAGS,
    allowedAttributes: {
      '*': LAYOUT_ATTRIBUTES,
      a: ['href', 'name', 'target', 'rel'],
      div: BODY_WRAPPER_ATTRIBUTES,
      ...Object.fromEntries(BACKGROUND_TAGS.map((tag) => [tag, ['background']])),
      img: ['src', 'srcset', 'alt', 'width', 'height', 'border', 'hspace', 'vspace'],
      font: ['face', 'size', 'color'],
      ol: ['start', 'type', 'reversed'],
      ul: ['type'],
      li: ['value'],
      td: ['abbr', 'headers', 'scope', 'background'],
      th: ['abbr', 'headers', 'scope', 'background'],
      time: ['datetime'],
      col: ['span'],
      colgroup: ['span'],
      q: ['cite'],
      blockquote: ['cite'],
    },
    allowedSchemes: ['http', 'https', 'mailto', 'tel'],
    allowedSchemesByTag: { img: ['http', 'https', 'cid', 'data'], ...Object.fromEntries(BACKGROUND_TAGS.map((tag) => [tag, ['https', 'cid']])) },
    allowedSchemesAppliedToAttributes: ['href', 'src', 'cite', 'background'],
    allowProtocolRelative: false,
    parseStyleAttributes: false,
    transformTags: {
      '*': (tagName, attribs) => {
        if (attribs.style !== undefined) attribs.style = cleanCss(attribs.style);
        if (attribs.background !== undefined) {
          const url = backgroundUrl(attribs.background);
          if (url === null || (!options.keepTrackingPixels && isTrackerBackground(url))) delete attribs.background;
          else attribs.background = url;
        }
        return { tagName, attribs };
      },
      body: (_tagName, attribs) => ({ tagName: 'div', attribs: bodyWrapper(attribs, doctype, options.keepTrackingPixels) }),
      // Attributes on <style> (title, media...) are of no use, and the cleaning below expects a bare tag.
      style: (tagName) => ({ tagName, attribs: {} }),
      a: (tagName, attribs) => {
        const { href, target: _target, rel: _rel, ...rest } = attribs;
        if (rest.style !== undefined) rest.style = cleanCss(rest.style);
        // Decided here rather than left to the scheme filter, so that a link whose href goes
        // does not keep a target/rel made for it (and sanitizing twice changes nothing).
        // In-page anchors stay; relative links would point into feedmail itself, so they go.
        if (href !== undefined && isLink(href)) return { tagName, attribs: { ...rest, href, target: '_blank', rel: 'noopener noreferrer nofollow' } };
        if (href !== undefined && href.trim().startsWith('#')) return { tagName, attribs: { ...rest, href: href.trim() } };
        return { tagName, attribs: rest };
      },
      img: (tagName, attribs) => {
        if (attribs.style !== undefined) attribs.style = cleanCss(attribs.style);
        const src = (attribs.src ?? '').trim();
        // data: only for plain raster images; SVG and anything else would be a way around the allowlist.
        if (src.toLowerCase().startsWith('data:') && !SAFE_DATA_IMAGE.test(src)) return { tagName, attribs: { ...attribs, src: '' } };
        // Without a src the exclusiveFilter below drops the image. (Renaming the tag instead
        // would trip a sanitize-html bug that renames the next closing tag at the same depth.)
        if (!options.keepTrackingPixels && isTrackingImage(attribs)) return { tagName, attribs: {} };
        if (attribs.srcset !== undefined && !isPlainSrcset(attribs.srcset)) {
          const { srcset: _dropped, ...rest } = attribs;
          return { tagName, attribs: rest };
        }
        return { tagName, attribs };
      },
    },
    exclusiveFilter: (frame) => frame.tag === 'img' && !frame.attribs.src,
  });
  // sanitize-html passes <style> text through verbatim; clean it here. Everywhere else its output
  // escapes '<', so a literal <style> in the output is always a real (attribute-less) element.
  // The comment markers old mail wraps its CSS in (<style><!-- ... --></style>) mean nothing to
  // CSS; written as '\3c !--' they swallowed the first rule, so they go first.
  return linkColorStyles(cleaned.replace(/<style>([\s\S]*?)<\/style>/g, (_, css: string) => `<style>${cleanCss(css.replace(/<!--|-->/g, ' ')).replace(/</g, '\\3c ')}</style>`));
}

// The bounding pass below reads markup with htmlparser2's tokenizer (linear) and builds the
// element tree by the rules of htmlparser2's Parser, which sanitize-html uses, but with a stack
// that grows at the end. These tables are copied from htmlparser2 10 (dist/esm/Parser.js).
const P = new Set(['p']);
const FORM = new Set(['input', 'option', 'optgroup', 'select', 'button', 'datalist', 'textarea']);
const DD_DT = new Set(['dd', 'dt']);
const RT_RP = new Set(['rt', 'rp']);
const TABLE_SECTION = new Set(['thead', 'tbody']);
/** Opening the key closes open elements in its set, innermost first, while they are innermost. */
const OPEN_IMPLIES_CLOSE = new Map<string, Set<string>>([
  ['tr', new Set(['tr', 'th', 'td'])], ['th', new Set(['th'])], ['td', new Set(['thead', 'th', 'td'])],
  ['body', new Set(['head', 'link', 'script'])], ['li', new Set(['li'])],
  ['select', FORM], ['input', FORM], ['output', FORM], ['button', FORM], ['datalist', FORM], ['textarea', FORM],
  ['option', new Set(['option'])], ['optgroup', new Set(['optgroup', 'option'])],
  ['dd', DD_DT], ['dt', DD_DT], ['rt', RT_RP], ['rp', RT_RP], ['tbody', TABLE_SECTION], ['tfoot', TABLE_SECTION],
  ...['p', 'h1', 'h2', 'h3', 'h4', 'h5', 'h6', 'address', 'article', 'aside', 'blockquote', 'details', 'div', 'dl',
    'fieldset', 'figcaption', 'figure', 'footer', 'form', 'header', 'hr', 'main', 'nav', 'ol', 'pre', 'section',
    'table', 'ul'].map((tag): [string, Set<string>] => [tag, P]),
]);
const VOID_ELEMENTS = new Set([
  'area', 'base', 'basefont', 'br', 'col', 'command', 'embed', 'frame', 'hr', 'img', 'input', 'isindex',
  'keygen', 'link', 'meta', 'param', 'source', 'track', 'wbr',
]);
/** Inside these `<x/>` closes x; elsewhere the slash is ignored. */
const FOREIGN_CONTEXT = new Set(['math', 'svg']);
const HTML_INTEGRATION = new Set(['mi', 'mo', 'mn', 'ms', 'mtext', 'annotation-xml', 'foreignobject', 'desc', 'title']);
/** The tokenizer reads the content of these as raw text, up to their end tag. */
const RAW_TEXT = new Set(['script', 'style', 'title', 'textarea', 'xmp']);
/** A dropped element whose content would not be shown as text either: its content goes too. */
const MUTED_WHEN_DROPPED = new Set([...NON_TEXT_TAGS, 'style']);
/** Attribute names anything in the allowlist could have; others are dropped when markup is rewritten. */
const PLAIN_ATTRIBUTE = /^[a-z_:][a-z0-9_.:-]*$/;

interface BoundedMarkup {
  /** The markup as it came, or written out again when it had to change (or `rewrite` says so). */
  html: string;
  flattened: boolean;
  /**
   * A `<style/>` was seen. htmlparser2 then keeps the style element open but reads what
   * follows as markup, and sanitize-html copies its decoded text into the <style> unescaped
   * ("&lt;/style&gt;&lt;img onerror=...&gt;" came out as a live <img>). Written out again,
   * that text is escaped and stays inside the style element.
   */
  selfClosedStyle: boolean;
}

/**
 * Keeps markup within `bounds`, in time linear in its length. Markup that is within them
 * is returned as it came, so ordinary mail is sanitized byte for byte as it always was.
 * Otherwise it is written out again: elements deeper than maxDepth, or after the first
 * maxElements, lose their tags but keep their text; comments, declarations and processing
 * instructions are dropped (sanitize-html drops them too); text and attribute values are
 * escaped again. `rewrite: true` writes it out again in any case (for tests).
 */
export function boundMarkup(html: string, bounds: HtmlBounds, { rewrite = false } = {}): BoundedMarkup {
  // The first pass only looks: building output for mail that needs none would cost a third
  // of the sanitizing time on large text.
  const look = readMarkup(html, bounds, rewrite);
  if (!rewrite && !look.flattened && !look.selfClosedStyle) return { html, flattened: false, selfClosedStyle: false };
  const built = rewrite ? look : readMarkup(html, bounds, true);
  return { html: built.out.join(''), flattened: built.flattened, selfClosedStyle: built.selfClosedStyle };
}

function readMarkup(html: string, bounds: HtmlBounds, write: boolean): BoundedMarkupBuilder {
  const builder = new BoundedMarkupBuilder(html, bounds, write);
  const tokenizer = new Tokenizer({ decodeEntities: true }, builder);
  tokenizer.write(html);
  tokenizer.end();
  return builder;
}

class BoundedMarkupBuilder implements TokenizerCallbacks {
  /** Output, when `write`. */
  readonly out: string[] = [];
  flattened = false;
  selfClosedStyle = false;
  /** Open elements, innermost last. */
  private readonly stack: string[] = [];
  /** How many of each name are open, so that an end tag matching nothing costs nothing. */
  private readonly openCount = new Map<string, number>();
  /** The first `written` entries of the stack were written out; the rest were dropped. */
  private written = 0;
  /** Stack index of a dropped element whose content is dropped as well, if one is open. */
  private mutedFrom = Infinity;
  private elements = 0;
  private readonly foreignContext: boolean[] = [false];
  /** The tokenizer is inside a raw-text element (style, script...). */
  private rawText = false;
  /** The start tag being read, until its '>'. */
  private tag: string | null = null;
  private tagWritten = false;
  private attribs: Map<string, string> | null = null;
  private attribName = '';
  private attribValue = '';
  /** The first `blankChecked` entries of `out` were looked at; `blank` while all of them were whitespace. */
  private blankChecked = 0;
  private blank = true;

  constructor(private readonly src: string, private readonly bounds: HtmlBounds, private readonly write: boolean) {}

  /** Nothing but whitespace written yet: each entry of `out` is looked at once, however many doctypes come. */
  private nothingWritten(): boolean {
    while (this.blank && this.blankChecked < this.out.length) {
      if (this.out[this.blankChecked]!.trim() !== '') this.blank = false;
      this.blankChecked++;
    }
    return this.blank;
  }

  ontext(start: number, end: number): void {
    if (this.write) this.writeText(this.src.slice(start, end), this.rawText);
  }

  ontextentity(codepoint: number): void {
    if (this.write) this.writeText(String.fromCodePoint(codepoint), false);
  }

  onopentagname(start: number, end: number): void {
    this.openElement(this.src.slice(start, end).toLowerCase());
  }

  onattribname(start: number, end: number): void {
    this.attribName = this.src.slice(start, end).toLowerCase();
  }

  onattribdata(start: number, end: number): void {
    if (this.attribs) this.attribValue += this.src.slice(start, end);
  }

  onattribentity(codepoint: number): void {
    if (this.attribs) this.attribValue += String.fromCodePoint(codepoint);
  }

  onattribend(_quote: QuoteType): void {
    // As htmlparser2: the first of two attributes with the same name wins.
    if (this.attribs && !this.attribs.has(this.attribName)) this.attribs.set(this.attribName, this.attribValue);
    this.attribValue = '';
  }

  onopentagend(): void {
    const name = this.tag;
    this.finishStartTag();
    this.rawText = name !== null && RAW_TEXT.has(name);
  }

  onselfclosingtag(): void {
    const name = this.tag;
    this.rawText = false;
    if (name === null) return;
    if (this.foreignContext[this.foreignContext.length - 1]) {
      this.finishStartTag();
      if (this.stack[this.stack.length - 1] === name) this.pop();
      return;
    }
    // Outside SVG and MathML htmlparser2 ignores the slash: the element stays open.
    if (name === 'style') this.selfClosedStyle = true;
    this.finishStartTag();
  }

  onclosetag(start: number, end: number): void {
    this.rawText = false;
    const name = this.src.slice(start, end).toLowerCase();
    if (FOREIGN_CONTEXT.has(name) || HTML_INTEGRATION.has(name)) this.foreignContext.pop();
    if (!VOID_ELEMENTS.has(name)) {
      if ((this.openCount.get(name) ?? 0) > 0) {
        while (this.pop() !== name) { /* closes everything opened inside it */ }
      } else if (name === 'p') {
        // htmlparser2 reads a stray </p> as <p></p>.
        this.openElement('p');
        this.finishStartTag();
        this.pop();
      }
    } else if (name === 'br') {
      // ... and a </br> as <br>.
      this.openElement('br');
      this.finishStartTag();
    }
  }

  oncomment(): void {}
  oncdata(): void {}

  ondeclaration(start: number, end: number): void {
    // A doctype before anything else decides how the sender meant the document to be
    // rendered (see senderDoctype): written out again, it stays first.
    if (this.write && /^doctype\s/i.test(this.src.slice(start, end)) && this.nothingWritten()) {
      this.out.push(`<!${this.src.slice(start, end)}>`);
    }
  }

  onprocessinginstruction(): void {}

  onend(): void {
    // A start tag cut off by the end of the input was never written, so it gets no end tag.
    if (this.tag !== null && this.tagWritten && this.stack[this.stack.length - 1] === this.tag && this.written === this.stack.length) {
      this.written--;
    }
    while (this.stack.length > 0) this.pop();
  }

  private openElement(name: string): void {
    const closes = OPEN_IMPLIES_CLOSE.get(name);
    if (closes) {
      while (this.stack.length > 0 && closes.has(this.stack[this.stack.length - 1]!)) this.pop();
    }
    const depth = this.stack.length;
    const muted = this.mutedFrom < depth;
    let write = !muted && this.written === depth;
    if (write && (depth >= this.bounds.maxDepth || this.elements >= this.bounds.maxElements)) {
      write = false;
      this.flattened = true;
    }
    if (write) this.elements++;
    this.tag = name;
    this.tagWritten = write;
    this.attribs = write && this.write ? new Map() : null;
    if (VOID_ELEMENTS.has(name)) return;
    if (!write && !muted && MUTED_WHEN_DROPPED.has(name)) this.mutedFrom = depth;
    this.stack.push(name);
    this.openCount.set(name, (this.openCount.get(name) ?? 0) + 1);
    if (write) this.written++;
    if (FOREIGN_CONTEXT.has(name)) this.foreignContext.push(true);
    else if (HTML_INTEGRATION.has(name)) this.foreignContext.push(false);
  }

  private finishStartTag(): void {
    if (this.tag !== null && this.tagWritten && this.write) {
      let tag = `<${this.tag}`;
      for (const [name, value] of this.attribs ?? []) {
        if (PLAIN_ATTRIBUTE.test(name)) tag += ` ${name}="${escapeAttribute(value)}"`;
      }
      this.out.push(`${tag}>`);
    }
    this.tag = null;
    this.attribs = null;
  }

  /** Closes the innermost open element, writing its end tag if its start tag was written. */
  private pop(): string | undefined {
    const name = this.stack.pop();
    if (name === undefined) return undefined;
    const index = this.stack.length;
    this.openCount.set(name, this.openCount.get(name)! - 1);
    if (index < this.written) {
      this.written = index;
      if (this.write) this.out.push(`</${name}>`);
    }
    if (index <= this.mutedFrom) this.mutedFrom = Infinity;
    return name;
  }

  private writeText(text: string, raw: boolean): void {
    if (this.mutedFrom < this.stack.length) return;
    // Raw text is only ever inside a written raw-text element (a dropped one is muted), where it reads the same again.
    this.out.push(raw ? text : text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;'));
  }
}

function escapeAttribute(value: string): string {
  return value.replace(/&/g, '&amp;').replace(/"/g, '&quot;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
}

const HTML_ESCAPES: Record<string, string> = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' };

/** One pass, one result string: chained replaces made a copy per character class. */
export function escapeHtml(s: string): string {
  return s.replace(/[&<>"']/g, (c) => HTML_ESCAPES[c]!);
}
