/**
 * Forwarded and nested messages (message/rfc822 parts) shown as a mail client shows them:
 * each one after its own From/Date/Subject/To block, with its own styling. mailparser writes
 * an embedded message into the HTML as a header table (`<table class="mp_head">`) followed by
 * the message's own HTML; parse.ts writes messages forwarded as attachments the same way. Here
 * that HTML is cut into one piece per message, each piece is sanitized on its own (so that
 * each message keeps its own <body> attributes, doctype aside), and an inner message's
 * <style> is scoped to that message, its `body` rules to its body.
 */
import { BODY_WRAPPER_TAG, escapeHtml } from './sanitize.js';

/** The attribute of the element holding one forwarded message; its value is the message's number. */
export const MESSAGE_ATTRIBUTE = 'data-fm-message';
/** The attribute of the wrapper that stands for a forwarded message's <body>. */
export const MESSAGE_BODY_ATTRIBUTE = 'data-fm-message-body';

/** Forwarded messages shown with their own header block; the rest is shown in the last one. */
export const MAX_SHOWN_MESSAGES = 50;

/** The header block, as mailparser writes it once parse.ts has repaired its unclosed cells. */
const HEAD_TABLE = /<table class="mp_head">(?:(?!<\/?table\b)[\s\S]){0,20000}?<\/table>/g;
const HEAD_ROW = /<tr><td class="mp_head_key">([A-Za-z]{1,10}):<\/td><td class="mp_head_value">([\s\S]*?)<\/td><\/tr>/g;
/** The order a mail client shows them in. */
const HEAD_ORDER = ['From', 'Date', 'Subject', 'To', 'Cc', 'Bcc'];

export interface ForwardedPiece {
  /** The header table (unsanitized, from mailparser or headTable). */
  head: string;
  /** The message's own HTML (unsanitized). */
  body: string;
}

export interface SplitHtml {
  /** The outer message's own HTML. */
  outer: string;
  messages: ForwardedPiece[];
}

/** Cuts mailparser-style HTML at each forwarded message's header table. */
export function splitForwarded(html: string): SplitHtml {
  const heads = [...html.matchAll(HEAD_TABLE)];
  if (heads.length === 0) return { outer: html, messages: [] };
  const shown = heads.slice(0, MAX_SHOWN_MESSAGES);
  const messages: ForwardedPiece[] = shown.map((m, i) => {
    const start = m.index + m[0].length;
    const end = i + 1 < shown.length ? shown[i + 1]!.index : html.length;
    return { head: orderedHead(m[0]), body: stripJoiner(html.slice(start, end)) };
  });
  return { outer: stripJoiner(html.slice(0, heads[0]!.index)), messages };
}

/** mailparser joins the pieces with '<br/>\n'; between blocks it only adds a blank line. */
function stripJoiner(html: string): string {
  return html.replace(/^(?:\s*<br\/>\n)+/, '').replace(/(?:<br\/>\n\s*)+$/, '');
}

/** The header rows in the order mail clients show them: From, Date, Subject, To, Cc. */
function orderedHead(table: string): string {
  const rows = [...table.matchAll(HEAD_ROW)].map((m) => ({ key: m[1]!, row: `<tr><td class="mp_head_key">${m[1]}:</td><td class="mp_head_value">${m[2]}</td></tr>` }));
  if (rows.length === 0) return table;
  const rank = (key: string) => {
    const i = HEAD_ORDER.indexOf(key);
    return i === -1 ? HEAD_ORDER.length : i;
  };
  rows.sort((a, b) => rank(a.key) - rank(b.key));
  return `<table class="mp_head">${rows.map((r) => r.row).join('\n')}</table>`;
}

export interface HeadFields {
  /** Address lists as mailparser's HTML (`AddressObject.html`), already escaped. */
  fromHtml?: string;
  toHtml?: string;
  ccHtml?: string;
  subject?: string;
  date?: string;
}

/** The header table of a message forwarded as an attachment, written as mailparser writes it for an inline one. */
export function headTable(fields: HeadFields): string {
  const rows: string[] = [];
  const row = (key: string, value: string) => rows.push(`<tr><td class="mp_head_key">${key}:</td><td class="mp_head_value">${value}</td></tr>`);
  if (fields.fromHtml) row('From', fields.fromHtml);
  if (fields.date) row('Date', escapeHtml(fields.date));
  if (fields.subject) row('Subject', `<strong>${escapeHtml(fields.subject)}</strong>`);
  if (fields.toHtml) row('To', fields.toHtml);
  if (fields.ccHtml) row('Cc', fields.ccHtml);
  return `<table class="mp_head">${rows.join('\n')}</table>`;
}

/** The header block of a forwarded message as plain text, as mailparser writes it into the text. */
export function headText(fields: { from?: string; to?: string; cc?: string; subject?: string; date?: string }): string {
  const lines: string[] = [];
  if (fields.from) lines.push(`From: ${fields.from}`);
  if (fields.date) lines.push(`Date: ${fields.date}`);
  if (fields.subject) lines.push(`Subject: ${fields.subject}`);
  if (fields.to) lines.push(`To: ${fields.to}`);
  if (fields.cc) lines.push(`Cc: ${fields.cc}`);
  return `\n${lines.join('\n')}\n`;
}

const FORWARD_STYLE = 'margin: 24px 0 0; padding: 0; border-top: 1px solid #c9ced6';
const HEAD_STYLE = 'margin: 0; padding: 8px 12px; background-color: #f3f4f6; color: #1f2328; '
  + "font-family: -apple-system, 'Segoe UI', Roboto, Helvetica, Arial, sans-serif; font-size: 13px; line-height: 1.5; text-align: left";

/**
 * One forwarded message as shown: its (sanitized) header block, then its (sanitized) body in
 * an element of its own, with its <body> wrapper renamed so that only the outer message's
 * decides the document's doctype and margins, and its <style> scoped to it.
 */
export function forwardedBlock(index: number, sanitizedHead: string, sanitizedBody: string): string {
  const scope = `[${MESSAGE_ATTRIBUTE}="${index}"]`;
  let body = sanitizedBody.replace(new RegExp(BODY_WRAPPER_TAG.source, 'g'), (_, rest: string) =>
    `<div ${MESSAGE_BODY_ATTRIBUTE}${rest.replace(/ data-fm-(?:doctype|margin)(?:="[^"]*")?/g, '')}>`);
  if (!body.includes(`<div ${MESSAGE_BODY_ATTRIBUTE}`)) body = `<div ${MESSAGE_BODY_ATTRIBUTE}>${body}</div>`;
  // The sanitizer's output has a literal <style> only for real style elements, with '<' escaped inside.
  body = body.replace(/<style>([\s\S]*?)<\/style>/g, (_, css: string) => `<style>${scopeCss(css, scope)}</style>`);
  return `<div data-fm-forward="" style="${FORWARD_STYLE}"><div data-fm-forward-head="" style="${HEAD_STYLE}">${sanitizedHead}</div>`
    + `<div ${MESSAGE_ATTRIBUTE}="${index}">${body}</div></div>`;
}

/** At-rules whose blocks hold style rules, which are scoped in turn. */
const GROUPING_AT_RULES = /^@(?:-webkit-)?(?:media|supports|container|layer|document|starting-style)\b/i;
/**
 * At-rules whose blocks hold no selectors (font-face, keyframes), kept as they are. Any other
 * block at-rule is dropped: one that holds selectors unscoped (`@scope (:root) {…}`) would
 * style the page around the message.
 */
const PLAIN_AT_RULES = /^@(?:-webkit-|-moz-)?(?:font-face|keyframes|counter-style|font-feature-values)(?![\w-])/i;
/** Grouping blocks nested deeper than this are dropped (bounds the recursion on hostile CSS). */
const MAX_CSS_NESTING = 6;

/**
 * Scopes a style sheet (already cleaned by cleanCss) to the element `scope` selects: every
 * selector is prefixed by it; `html` and `:root` become the scope itself, `body` the message's
 * body wrapper. Linear in the length of the CSS.
 */
export function scopeCss(css: string, scope: string): string {
  const out: string[] = [];
  let i = 0;
  const n = css.length;

  /** Reads up to (not including) the next '{', ';' or '}' outside strings and brackets. */
  const prelude = (): string => {
    const start = i;
    let depth = 0;
    while (i < n) {
      const c = css[i]!;
      if (c === '"' || c === "'") { i = stringEnd(css, i); continue; }
      if (c === '(' || c === '[') depth++;
      else if ((c === ')' || c === ']') && depth > 0) depth--;
      else if (depth === 0 && (c === '{' || c === ';' || c === '}')) break;
      i++;
    }
    return css.slice(start, i);
  };
  /** Reads a block's content after its '{', up to its matching '}', which is consumed. */
  const block = (): string => {
    const start = i;
    let depth = 0;
    while (i < n) {
      const c = css[i]!;
      if (c === '"' || c === "'") { i = stringEnd(css, i); continue; }
      if (c === '{') depth++;
      else if (c === '}') {
        if (depth === 0) break;
        depth--;
      }
      i++;
    }
    const content = css.slice(start, i);
    i++;
    return content;
  };
  const rules = (nesting: number, emit: boolean): void => {
    while (i < n) {
      const head = prelude();
      const c = css[i];
      if (c === undefined) {
        if (emit && head.trim()) out.push(head);
        return;
      }
      if (c === '}') {
        i++;
        if (nesting > 0) return;
        continue;
      }
      if (c === ';') {
        i++;
        if (emit && head.trim()) out.push(`${head};`);
        continue;
      }
      i++; // '{'
      const name = head.trim();
      if (name.startsWith('@')) {
        if (GROUPING_AT_RULES.test(name) && nesting < MAX_CSS_NESTING) {
          if (emit) out.push(`${name}{`);
          rules(nesting + 1, emit);
          if (emit) out.push('}');
        } else if (GROUPING_AT_RULES.test(name)) {
          block(); // too deep: dropped, rules and all
        } else if (PLAIN_AT_RULES.test(name)) {
          const content = block();
          if (emit) out.push(`${name}{${content}}`);
        } else {
          block(); // @scope, @page and any other: dropped
        }
      } else {
        const content = block();
        const selectors = scopeSelectors(name, scope);
        if (emit && selectors) out.push(`${selectors}{${content}}`);
      }
    }
  };
  rules(0, true);
  return out.join('');
}

/**
 * Index after the end of the CSS string that starts at `at` (a quote): its closing quote, or
 * an unescaped line break, where CSS ends a string too (the break itself is not in it).
 */
function stringEnd(css: string, at: number): number {
  const q = css[at];
  let j = at + 1;
  while (j < css.length) {
    const c = css[j]!;
    if (c === q) return j + 1;
    if (c === '\n' || c === '\r' || c === '\f') return j;
    j += c === '\\' ? 2 : 1;
  }
  return css.length;
}

/** Splits a selector list at its top-level commas. */
function selectorList(list: string): string[] {
  const parts: string[] = [];
  let depth = 0;
  let start = 0;
  for (let j = 0; j < list.length; j++) {
    const c = list[j]!;
    if (c === '"' || c === "'") {
      j = stringEnd(list, j) - 1;
      continue;
    }
    if (c === '(' || c === '[') depth++;
    else if ((c === ')' || c === ']') && depth > 0) depth--;
    else if (c === ',' && depth === 0) {
      parts.push(list.slice(start, j));
      start = j + 1;
    }
  }
  parts.push(list.slice(start));
  return parts;
}

function scopeSelectors(list: string, scope: string): string {
  const body = `${scope} [${MESSAGE_BODY_ATTRIBUTE}]`;
  return selectorList(list).map((raw) => {
    let s = raw.trim();
    if (!s) return '';
    // `html`, `:root` and `html body` are the message's own element and its body.
    const root = /^(?:html|:root)(?![\w-])/i.exec(s);
    if (root) {
      s = s.slice(root[0].length);
      const inner = /^\s*>?\s*body(?![\w-])/i.exec(s);
      if (inner) return `${body}${s.slice(inner[0].length)}`;
      return `${scope}${s}`;
    }
    const bodyMatch = /^body(?![\w-])/i.exec(s);
    if (bodyMatch) return `${body}${s.slice(bodyMatch[0].length)}`;
    return `${scope} ${s}`;
  }).filter((s) => s !== '').join(', ');
}
