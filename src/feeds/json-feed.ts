/** JSON Feed 1.1. */
import type { FeedDocument } from './model.js';

export function renderJsonFeed(feed: FeedDocument): string {
  return JSON.stringify({
    version: 'https://jsonfeed.org/version/1.1',
    title: feed.title,
    home_page_url: feed.pageUrl,
    feed_url: feed.jsonUrl,
    items: feed.entries.map((e) => ({
      id: e.id,
      url: e.url,
      title: e.title,
      content_html: e.html,
      date_published: e.published.toISOString(),
      date_modified: e.updated.toISOString(),
      authors: [{ name: e.authorName || e.authorEmail || 'Unknown sender', ...(e.authorEmail ? { url: `mailto:${e.authorEmail}` } : {}) }],
      ...(e.enclosures.length ? {
        attachments: e.enclosures.map((a) => ({ url: a.url, mime_type: a.type, title: a.title, size_in_bytes: a.length })),
      } : {}),
    })),
  }, null, 2);
}
