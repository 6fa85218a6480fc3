/**
 * Turns raw mail into entry content: parse, sanitize, drop trackers, find a
 * confirm link, then remove every recipient feed's secrets. All of it runs in a
 * processing thread (see process-pool.ts). A step that fails costs only what it was
 * working on: the entry is stored without that part, with a note saying so,
 * and never dropped.
 */
import type { EntryContent } from '../store/entries.js';
import { findConfirmUrl } from './confirm.js';
import { forwardedBlock, splitForwarded } from './forwarded.js';
import { parseMessage, recoverAsText } from './parse.js';
import { confirmUrlForFeed, redactPart, redactor, type FeedSecrets } from './redact.js';
import { FLATTENED_NOTE, sanitizeNewsletterHtmlWithReport } from './sanitize.js';
import { textToHtml } from './text-html.js';

export interface ProcessOptions {
  maxPartBytes: number;
  keepTrackingPixels: boolean;
}

/**
 * A processed message is what an entry stores, before the recipients' secrets are redacted;
 * and, when its HTML is text shown as text (a plain-text message, or a message's text shown
 * in place of its HTML), that text in `htmlFromText`. Redaction then builds the HTML from the
 * redacted text (see redactForRecipients): redacting the HTML instead would miss a secret
 * that the markup textToHtml writes splits, as a link that ends at a URL's hard wrap does.
 */
export type ProcessedMessage = EntryContent & { htmlFromText?: string };

/**
 * What ingest stores: one content for every recipient feed (its `confirmUrl`
 * redacted of all of them), and each recipient's own confirm URL, in the order
 * the recipients were given, with the other recipients' secrets removed.
 */
export type ProcessedForRecipients = EntryContent & { confirmUrls: (string | null)[] };

/** Characters of a message's text kept and shown: a newsletter is far shorter, and escaping megabytes costs several copies of them. */
const MAX_TEXT_CHARS = 1_000_000;

/**
 * HTML larger than this (before or after sanitizing) is not shown; the message's text is.
 * Real newsletters stay far below it (mail clients clip at ~100 KB), and sanitizing and
 * redacting tens of megabytes of markup costs several copies of them in the processing thread.
 */
const MAX_HTML_CHARS = 4_000_000;
const TOO_MUCH_HTML_NOTE = 'The HTML of this message is too large to show; its text is shown instead.';

/** The words of HTML too large for mailparser to convert: tags and style/script blocks removed. */
function roughText(html: string): string {
  return html.slice(0, MAX_TEXT_CHARS * 4)
    .replace(/<(style|script)\b[^>]*>[\s\S]*?<\/\1\s*>/gi, ' ')
    .replace(/<[^>]*>/g, ' ')
    .replace(/[ \t]+/g, ' ');
}

/** The text a text-only message shows, cut to MAX_TEXT_CHARS (with a note saying so). */
function shownText(text: string, notes: string[]): string {
  if (text.length <= MAX_TEXT_CHARS) return text;
  notes.push(`Only the first ${MAX_TEXT_CHARS.toLocaleString('en')} characters of this message's text are shown.`);
  return text.slice(0, MAX_TEXT_CHARS);
}

function message(err: unknown): string {
  return ((err as Error)?.message ?? String(err)).split('\n')[0]!.slice(0, 200);
}

/**
 * Sanitizes a message's HTML; a message with forwarded messages in it is sanitized one message
 * at a time, so that each keeps its own <body> and <style> (see forwarded.ts).
 */
function sanitizeWithForwards(html: string, options: ProcessOptions): { html: string; flattened: boolean } {
  const split = splitForwarded(html);
  const sanitize = (piece: string) => sanitizeNewsletterHtmlWithReport(piece, { keepTrackingPixels: options.keepTrackingPixels });
  if (split.messages.length === 0) return sanitize(html);
  const outer = sanitize(split.outer);
  let flattened = outer.flattened;
  const out = [outer.html];
  split.messages.forEach((m, i) => {
    const head = sanitize(m.head);
    const body = sanitize(m.body);
    flattened ||= head.flattened || body.flattened;
    out.push(forwardedBlock(i + 1, head.html, body.html));
  });
  return { html: out.join(''), flattened };
}

export async function processMessage(raw: Buffer, options: ProcessOptions): Promise<ProcessedMessage> {
  const parsed = await parseMessage(raw, { maxPartBytes: options.maxPartBytes });
  const notes = parsed.note ? [parsed.note] : [];
  let html: string;
  // The message's text when it is shown in place of HTML: the HTML is built from it again once it is redacted.
  const fromText: { text?: string } = {};
  const asText = (text: string): string => {
    fromText.text = text;
    return textToHtml(text);
  };
  try {
    if (parsed.html.length > MAX_HTML_CHARS) {
      html = asText(shownText(parsed.text || roughText(parsed.html), notes));
      notes.push(TOO_MUCH_HTML_NOTE);
    } else if (parsed.html.trim()) {
      const sanitized = sanitizeWithForwards(parsed.html, options);
      if (sanitized.html.length > MAX_HTML_CHARS) {
        html = asText(shownText(parsed.text || roughText(parsed.html), notes));
        notes.push(TOO_MUCH_HTML_NOTE);
      } else {
        html = sanitized.html;
        if (sanitized.flattened) notes.push(FLATTENED_NOTE);
      }
    } else {
      html = asText(shownText(parsed.text, notes));
    }
  } catch (err) {
    html = asText(shownText(parsed.text, notes));
    notes.push(`The HTML of this message could not be processed (${message(err)}); its text is shown instead.`);
  }
  let confirmUrl: string | null = null;
  try {
    confirmUrl = findConfirmUrl(parsed.subject, html, parsed.text);
  } catch {
    // A confirm link is a convenience; the entry is complete without it.
  }
  return {
    fromName: parsed.fromName,
    fromAddress: parsed.fromAddress,
    subject: parsed.subject,
    sentAt: parsed.sentAt,
    html,
    text: parsed.text.slice(0, MAX_TEXT_CHARS),
    confirmUrl,
    note: notes.length ? notes.join(' ') : null,
    parts: parsed.parts,
    ...(fromText.text === undefined ? {} : { htmlFromText: fromText.text }),
  };
}

/**
 * The content every recipient feed stores. Everything shown to readers is
 * redacted of the secrets of every feed the message was addressed to (so one
 * feed's readers never learn another's address), in every field, note and part.
 */
export function redactForRecipients(processed: ProcessedMessage, recipients: FeedSecrets[]): ProcessedForRecipients {
  const redact = redactor(recipients);
  const notes = processed.note === null ? [] : [redact(processed.note)];
  let html: string;
  let text: string;
  try {
    text = redact(processed.text);
  } catch (err) {
    text = '';
    notes.push(`The text of this message could not be checked for the feed's address (${message(err)}) and was left out.`);
  }
  try {
    // HTML made from text is made again from the redacted text, so no markup can split a secret.
    if (processed.htmlFromText === undefined) html = redact(processed.html);
    else html = textToHtml(processed.htmlFromText === processed.text ? text : redact(processed.htmlFromText));
  } catch (err) {
    html = textToHtml(text);
    notes.push(`The HTML of this message could not be checked for the feed's address (${message(err)}); its text is shown instead.`);
  }
  const confirmUrls = recipients.map((own) => {
    if (!processed.confirmUrl) return null;
    try {
      return confirmUrlForFeed(processed.confirmUrl, own, recipients);
    } catch {
      // As above: without its confirm link, the feed's entry is still complete.
      return null;
    }
  });
  let confirmUrl: string | null = null;
  try {
    confirmUrl = processed.confirmUrl === null ? null : redact(processed.confirmUrl);
  } catch {
    // as above: the entry is complete without it
  }
  return {
    fromName: redact(processed.fromName),
    fromAddress: redact(processed.fromAddress),
    subject: redact(processed.subject),
    sentAt: processed.sentAt,
    html,
    text,
    confirmUrl,
    note: notes.length ? notes.join(' ') : null,
    parts: processed.parts.map((p) => redactPart(p, recipients)),
    confirmUrls,
  };
}

/** Processes and redacts, as a processing thread does for ingest. */
export async function processForRecipients(raw: Buffer, options: ProcessOptions, recipients: FeedSecrets[]): Promise<ProcessedForRecipients> {
  return redactForRecipients(await processMessage(raw, options), recipients);
}

/** What an entry shows when its message could not be processed in time or at all: its raw text, redacted. */
export function fallbackForRecipients(raw: Buffer, reason: string, recipients: FeedSecrets[]): ProcessedForRecipients {
  const recovered = recoverAsText(raw, reason);
  return redactForRecipients({ ...recovered, html: '', htmlFromText: recovered.text, confirmUrl: null }, recipients);
}

/**
 * The last resort when even the fallback could not run: an entry that says the
 * message arrived and could not be shown, with nothing from the message in it
 * (so nothing needs redacting). The raw message is still stored with the entry.
 */
export function minimalContent(reason: string, recipients: number): ProcessedForRecipients {
  return {
    fromName: '',
    fromAddress: '',
    subject: '(unreadable message)',
    sentAt: null,
    html: '',
    text: '',
    confirmUrl: null,
    note: `This message could not be processed (${reason}).`,
    parts: [],
    confirmUrls: Array<null>(recipients).fill(null),
  };
}
