/**
 * Turns raw mail into entry content: parse, sanitize, drop trackers, find a
 * confirm link. Pure and feed-independent; `contentForFeed` then removes the
 * receiving feed's own secrets.
 */
import type { EntryContent } from '../store/entries.js';
import { findConfirmUrl } from './confirm.js';
import { parseMessage, type ParsedPart } from './parse.js';
import { redactor, type FeedSecrets } from './redact.js';
import { sanitizeNewsletterHtml, textToHtml } from './sanitize.js';

export interface RenderOptions {
  maxPartBytes: number;
  keepTrackingPixels: boolean;
}

export interface RenderedMessage {
  fromName: string;
  fromAddress: string;
  subject: string;
  sentAt: number | null;
  html: string;
  text: string;
  confirmUrl: string | null;
  note: string | null;
  parts: ParsedPart[];
}

export async function renderMessage(raw: Buffer, options: RenderOptions): Promise<RenderedMessage> {
  const parsed = await parseMessage(raw, { maxPartBytes: options.maxPartBytes });
  const html = parsed.html.trim()
    ? sanitizeNewsletterHtml(parsed.html, { keepTrackingPixels: options.keepTrackingPixels })
    : textToHtml(parsed.text);
  return {
    fromName: parsed.fromName,
    fromAddress: parsed.fromAddress,
    subject: parsed.subject,
    sentAt: parsed.sentAt,
    html,
    text: parsed.text.slice(0, 1_000_000),
    confirmUrl: findConfirmUrl(parsed.subject, html, parsed.text),
    note: parsed.note,
    parts: parsed.parts,
  };
}

/**
 * The content one feed stores. Everything shown to readers is redacted; the
 * confirm URL is kept whole because redacting it may break it, and it is
 * shown whole only on the owner's manage page.
 */
export function contentForFeed(rendered: RenderedMessage, secrets: FeedSecrets): EntryContent {
  const redact = redactor(secrets);
  return {
    fromName: redact(rendered.fromName),
    fromAddress: redact(rendered.fromAddress),
    subject: redact(rendered.subject),
    sentAt: rendered.sentAt,
    html: redact(rendered.html),
    text: redact(rendered.text),
    confirmUrl: rendered.confirmUrl,
    note: rendered.note,
    parts: rendered.parts.map((p) => ({ ...p, filename: redact(p.filename) })),
  };
}

/** What an entry shows when its message could not be rendered in time or at all. */
export function fallbackRendering(raw: Buffer, reason: string): RenderedMessage {
  const text = raw.subarray(0, 200_000).toString('utf8').replace(/\u0000/g, '');
  const subject = /^subject:[ \t]*(.*)$/im.exec(text)?.[1]?.trim().slice(0, 300) ?? '';
  return {
    fromName: '',
    fromAddress: '',
    subject: subject || '(unreadable message)',
    sentAt: null,
    html: textToHtml(text),
    text,
    confirmUrl: null,
    note: `This message could not be processed (${reason}); its raw text is shown instead.`,
    parts: [],
  };
}
