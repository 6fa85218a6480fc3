/**
 * Turns raw mail into entry content: parse, sanitize, drop trackers, find a
 * confirm link. Pure and feed-independent; `contentForFeed` then removes the
 * receiving feed's own secrets.
 */
import type { EntryContent, NewPart } from '../store/entries.js';
import { findConfirmUrl } from './confirm.js';
import { parseMessage, recoverAsText } from './parse.js';
import { redactor, type FeedSecrets } from './redact.js';
import { sanitizeNewsletterHtml, textToHtml } from './sanitize.js';

export interface RenderOptions {
  maxPartBytes: number;
  keepTrackingPixels: boolean;
}

/** A rendered message is exactly what an entry stores, before a feed's secrets are redacted. */
export type RenderedMessage = EntryContent;

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

/** Parts whose bytes are text a reader may open (and so may carry the address). */
const TEXT_LIKE = /^(text\/|message\/|application\/(ics|json|xml|x-?ndjson)$)/;

function redactPart(part: NewPart, redact: (s: string) => string): NewPart {
  const filename = redact(part.filename);
  if (!part.content || !TEXT_LIKE.test(part.contentType)) return { ...part, filename };
  // latin1 maps bytes to characters one to one, so everything but the secrets survives unchanged.
  const content = Buffer.from(redact(part.content.toString('latin1')), 'latin1');
  return { ...part, filename, content, size: content.length };
}

/**
 * The content one feed stores. Everything shown to readers is redacted: the
 * secrets of every feed the message was addressed to (so one feed's readers
 * never learn another's address), in every field, note and text-like part.
 * The confirm URL is kept whole because redacting it may break it; it is shown
 * whole only on the owner's manage page.
 */
export function contentForFeed(rendered: RenderedMessage, secrets: FeedSecrets | FeedSecrets[]): EntryContent {
  const redact = redactor(secrets);
  return {
    fromName: redact(rendered.fromName),
    fromAddress: redact(rendered.fromAddress),
    subject: redact(rendered.subject),
    sentAt: rendered.sentAt,
    html: redact(rendered.html),
    text: redact(rendered.text),
    confirmUrl: rendered.confirmUrl,
    note: rendered.note === null ? null : redact(rendered.note),
    parts: rendered.parts.map((p) => redactPart(p, redact)),
  };
}

/** What an entry shows when its message could not be rendered in time or at all. */
export function fallbackRendering(raw: Buffer, reason: string): RenderedMessage {
  const recovered = recoverAsText(raw, reason);
  return { ...recovered, html: textToHtml(recovered.text), confirmUrl: null };
}
