/** JSON Feed 1.1. */
import { renderWith, type FeedDocument, type FeedFormat } from './model.js';

export const jsonFeedFormat: FeedFormat = {
  head: (feed) => {
    // The top-level object without its closing brace; items follow, one piece each.
    const top = JSON.stringify({
      version: 'https://jsonfeed.org/version/1.1',
      title: feed.title,
      home_page_url: feed.pageUrl,
      feed_url: feed.jsonUrl,
      ...(feed.hubUrl ? { hubs: [{ type: 'WebSub', url: feed.hubUrl }] } : {}),
      ...(feed.icon ? { icon: feed.icon.url, favicon: feed.icon.url } : {}),
    }, null, 2);
    return `${top.slice(0, -2)},\n  "items": [`;
  },
  entry: (e) => {
    const item = JSON.stringify({
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
    }, null, 2);
    return `\n    ${item.replace(/\n/g, '\n    ')}`;
  },
  separator: ',',
  tail: () => '\n  ]\n}\n',
};

export function renderJsonFeed(feed: FeedDocument): string {
  return renderWith(jsonFeedFormat, feed);
}
