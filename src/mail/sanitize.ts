/**
 * Newsletter HTML is hostile until it has been through here. An allowlist keeps
 * what newsletters need to look right (tables, inline styles, colors, widths,
 * images) and drops everything that can run code, navigate, submit or load
 * things on its own.
 */
import sanitize from 'sanitize-html';

export interface SanitizeOptions {
  keepTrackingPixels: boolean;
}

const ALLOWED_TAGS = [
  'a', 'abbr', 'address', 'article', 'aside', 'b', 'bdi', 'bdo', 'big', 'blockquote', 'br', 'caption',
  'center', 'cite', 'code', 'col', 'colgroup', 'dd', 'del', 'details', 'dfn', 'div', 'dl', 'dt', 'em',
  'figcaption', 'figure', 'font', 'footer', 'h1', 'h2', 'h3', 'h4', 'h5', 'h6', 'header', 'hr', 'i',
  'img', 'ins', 'kbd', 'li', 'main', 'mark', 'nav', 'ol', 'p', 'pre', 'q', 's', 'samp', 'section',
  'small', 'span', 'strike', 'strong', 'style', 'sub', 'summary', 'sup', 'table', 'tbody', 'td',
  'tfoot', 'th', 'thead', 'time', 'tr', 'tt', 'u', 'ul', 'var', 'wbr',
];

const LAYOUT_ATTRIBUTES = [
  'style', 'class', 'dir', 'lang', 'title', 'align', 'valign', 'width', 'height', 'bgcolor',
  'color', 'border', 'cellpadding', 'cellspacing', 'colspan', 'rowspan', 'nowrap', 'role',
];

/** Hosts and paths of well-known open trackers (matched against the image URL). */
const TRACKER_PATTERNS: RegExp[] = [
  /\/track\/open/i,
  /\/open\.(php|aspx|gif|png)\b/i,
  /[?&](utm_medium=email&)?(mc_eid|open_id)=/i,
  /\/wf\/open\?/i,
  /\/e\/o\//i,
  /\/pixel(\.gif|\.png)?(\?|$|\/)/i,
  /\/beacon(\.gif)?(\?|$|\/)/i,
  /google-analytics\.com\/collect/i,
  /\/(trk|tracking)\/(open|o)\b/i,
  /list-manage\.com\/track\//i,
  /mandrillapp\.com\/track/i,
  /sendgrid\.net\/(wf|trk)/i,
  /mailchimp\.com\/track/i,
  /\.hubspotemail\.net\//i,
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
  return TRACKER_PATTERNS.some((p) => p.test(src));
}

/** An href a browser would follow to http(s), mail or phone; it ignores whitespace and controls in the scheme. */
function isLink(href: string): boolean {
  return /^(https?|mailto|tel):/i.test(href.replace(/[\u0000-\u0020\u007f]+/g, ''));
}

const SAFE_DATA_IMAGE = /^data:image\/(png|gif|jpe?g|webp);base64,[a-z0-9+/=\s]+$/i;

/** Sanitizes newsletter HTML for storage and for every place it is shown. */
export function sanitizeNewsletterHtml(html: string, options: SanitizeOptions): string {
  const cleaned = sanitize(html, {
    allowedTags: ALLOWED_TAGS,
    allowVulnerableTags: true, // <style> is allowed on purpose; its text is cleaned below.
    disallowedTagsMode: 'discard',
    nonTextTags: ['script', 'textarea', 'option', 'noscript', 'title', 'template', 'xmp', 'iframe', 'noembed', 'noframes', 'object', 'svg', 'math'],
    allowedAttributes: {
      '*': LAYOUT_ATTRIBUTES,
      a: ['href', 'name', 'target', 'rel'],
      img: ['src', 'alt', 'width', 'height', 'border', 'hspace', 'vspace'],
      font: ['face', 'size', 'color'],
      ol: ['start', 'type', 'reversed'],
      ul: ['type'],
      li: ['value'],
      td: ['abbr', 'headers', 'scope'],
      th: ['abbr', 'headers', 'scope'],
      time: ['datetime'],
      col: ['span'],
      colgroup: ['span'],
      q: ['cite'],
      blockquote: ['cite'],
    },
    allowedSchemes: ['http', 'https', 'mailto', 'tel'],
    allowedSchemesByTag: { img: ['http', 'https', 'cid', 'data'] },
    allowedSchemesAppliedToAttributes: ['href', 'src', 'cite'],
    allowProtocolRelative: false,
    parseStyleAttributes: false,
    transformTags: {
      '*': (tagName, attribs) => {
        if (attribs.style !== undefined) attribs.style = cleanCss(attribs.style);
        return { tagName, attribs };
      },
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
        return { tagName, attribs };
      },
    },
    exclusiveFilter: (frame) => frame.tag === 'img' && !frame.attribs.src,
  });
  // sanitize-html passes <style> text through verbatim; clean it here. Everywhere else its output
  // escapes '<', so a literal <style> in the output is always a real (attribute-less) element.
  return cleaned.replace(/<style>([\s\S]*?)<\/style>/g, (_, css: string) => `<style>${cleanCss(css).replace(/</g, '\\3c ')}</style>`);
}

/** Plain text as readable HTML, for entries that have no HTML at all. */
export function textToHtml(text: string): string {
  const escaped = escapeHtml(text);
  const linked = escaped.replace(/\bhttps?:\/\/[^\s<>"']+[^\s<>"'.,;:!?)\]]/g, (url) => `<a href="${url}" target="_blank" rel="noopener noreferrer nofollow">${url}</a>`);
  return `<div style="white-space: pre-wrap; font-family: inherit">${linked}</div>`;
}

export function escapeHtml(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;').replace(/'/g, '&#39;');
}
