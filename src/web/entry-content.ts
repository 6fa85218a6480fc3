/**
 * Entry HTML as readers see it: stored sanitized HTML with cid: images pointed
 * at the entry's own part URLs, and the confirm link and notes on top.
 */
import type { Entry } from '../store/entries.js';
import type { Feed } from '../store/feeds.js';
import type { EntryPart } from '../store/parts.js';
import { redactor } from '../mail/redact.js';
import { escapeHtml } from '../mail/sanitize.js';
import type { FeedDocument } from '../feeds/model.js';
import type { Urls } from './urls.js';

/** Points `cid:` references at the entry's parts; unknown cids become empty so nothing loads. */
export function resolveCids(htmlText: string, entry: Entry, parts: EntryPart[], urls: Urls): string {
  const byCid = new Map<string, EntryPart>();
  for (const p of parts) if (p.content_id) byCid.set(p.content_id.toLowerCase(), p);
  return htmlText.replace(/(src|background)="cid:([^"]*)"/gi, (_, attr: string, cid: string) => {
    let id = cid.replace(/&amp;/g, '&');
    try {
      id = decodeURIComponent(id);
    } catch {
      // keep as is
    }
    const part = byCid.get(id.toLowerCase());
    return part?.blob_hash ? `${attr}="${urls.part(entry.share_token, part.idx, part.filename)}"` : `${attr}=""`;
  });
}

/** The confirm URL as shown to anyone but the owner: with the feed's secrets redacted. */
export function shownConfirmUrl(entry: Entry, feed: Feed): string | null {
  if (!entry.confirm_url) return null;
  return redactor({ inboxToken: feed.inbox_token, feedToken: feed.feed_token })(entry.confirm_url);
}

export function entryHtmlForFeed(entry: Entry, feed: Feed, parts: EntryPart[], urls: Urls): string {
  let top = '';
  const confirm = shownConfirmUrl(entry, feed);
  if (confirm) {
    top += `<p><strong>This looks like a subscription confirmation.</strong> <a href="${escapeHtml(confirm)}">Confirm the subscription</a></p>`;
  }
  if (entry.note) top += `<p><em>${escapeHtml(entry.note)}</em></p>`;
  const attachments = parts.filter((p) => !p.inline);
  let bottom = '';
  if (attachments.length) {
    bottom = `<hr><p>Attachments:</p><ul>${attachments.map((p) => p.blob_hash
      ? `<li><a href="${escapeHtml(urls.part(entry.share_token, p.idx, p.filename))}">${escapeHtml(p.filename)}</a> (${p.size} bytes)</li>`
      : `<li>${escapeHtml(p.filename)} (${p.size} bytes, too large to keep)</li>`).join('')}</ul>`;
  }
  return top + resolveCids(entry.html, entry, parts, urls) + bottom;
}

export function buildFeedDocument(feed: Feed, entries: Entry[], partsByEntry: Map<number, EntryPart[]>, urls: Urls): FeedDocument {
  const title = feed.title || 'feedmail inbox';
  return {
    id: `urn:feedmail:feed:${feed.feed_token}`,
    title,
    pageUrl: urls.feedPage(feed.feed_token),
    atomUrl: urls.feed(feed.feed_token, 'atom'),
    rssUrl: urls.feed(feed.feed_token, 'rss'),
    jsonUrl: urls.feed(feed.feed_token, 'json'),
    updated: new Date(feed.updated_at),
    entries: entries.map((e) => {
      const parts = partsByEntry.get(e.id) ?? [];
      return {
        // Stable across a change of base URL, so readers do not see every entry twice.
        id: `urn:feedmail:entry:${e.share_token}`,
        url: urls.entry(e.share_token),
        title: e.subject || '(no subject)',
        authorName: e.from_name,
        authorEmail: e.from_address,
        published: new Date(e.sent_at && e.sent_at <= e.received_at + 86_400_000 ? e.sent_at : e.received_at),
        updated: new Date(e.processed_at),
        html: entryHtmlForFeed(e, feed, parts, urls),
        enclosures: parts.filter((p) => !p.inline && p.blob_hash).map((p) => ({
          url: urls.part(e.share_token, p.idx, p.filename), type: p.content_type, length: p.size, title: p.filename,
        })),
      };
    }),
  };
}
