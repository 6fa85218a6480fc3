/** RSS 2.0, with atom:link rel=self and dc:creator for the sender's name. */
import { renderWith, xmlEscape as x, type FeedDocument, type FeedDocumentHead, type FeedFormat } from './model.js';

/** RSS 2.0 allows a GIF, JPEG or PNG as the channel's image, with the channel's title and link. */
function rssImage(feed: FeedDocumentHead): string {
  if (!feed.icon || !/^image\/(png|gif|jpeg)$/.test(feed.icon.type)) return '';
  return `<image><url>${x(feed.icon.url)}</url><title>${x(feed.title)}</title><link>${x(feed.pageUrl)}</link></image>\n`;
}

export const rssFormat: FeedFormat = {
  head: (feed) => `<?xml version="1.0" encoding="utf-8"?>
<rss version="2.0" xmlns:atom="http://www.w3.org/2005/Atom" xmlns:dc="http://purl.org/dc/elements/1.1/">
<channel>
<title>${x(feed.title)}</title>
<link>${x(feed.pageUrl)}</link>
<description>${x(`Newsletters received by ${feed.title}`)}</description>
<atom:link rel="self" type="application/rss+xml" href="${x(feed.rssUrl)}"/>
${feed.hubUrl ? `<atom:link rel="hub" href="${x(feed.hubUrl)}"/>\n` : ''}<lastBuildDate>${feed.updated.toUTCString()}</lastBuildDate>
<generator>feedmail</generator>
${rssImage(feed)}`,
  entry: (e) => {
    // RSS allows one enclosure per item; the rest stay linked from the entry page.
    const enclosure = e.enclosures[0]
      ? `\n<enclosure url="${x(e.enclosures[0].url)}" length="${e.enclosures[0].length}" type="${x(e.enclosures[0].type)}"/>`
      : '';
    const author = e.authorEmail ? `\n<author>${x(e.authorName ? `${e.authorEmail} (${e.authorName})` : e.authorEmail)}</author>` : '';
    return `<item>
<title>${x(e.title)}</title>
<link>${x(e.url)}</link>
<guid isPermaLink="false">${x(e.id)}</guid>
<pubDate>${e.published.toUTCString()}</pubDate>${author}
<dc:creator>${x(e.authorName || e.authorEmail || 'Unknown sender')}</dc:creator>
<description>${x(e.html)}</description>${enclosure}
</item>`;
  },
  separator: '\n',
  tail: () => `
</channel>
</rss>
`,
};

export function renderRss(feed: FeedDocument): string {
  return renderWith(rssFormat, feed);
}
