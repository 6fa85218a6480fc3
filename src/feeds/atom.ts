/** Atom 1.0 (RFC 4287). */
import { renderWith, xmlEscape as x, type FeedDocument, type FeedFormat } from './model.js';

export const atomFormat: FeedFormat = {
  head: (feed) => `<?xml version="1.0" encoding="utf-8"?>
<feed xmlns="http://www.w3.org/2005/Atom">
<id>${x(feed.id)}</id>
<title type="text">${x(feed.title)}</title>
<link rel="self" type="application/atom+xml" href="${x(feed.atomUrl)}"/>
<link rel="alternate" type="text/html" href="${x(feed.pageUrl)}"/>
${feed.hubUrl ? `<link rel="hub" href="${x(feed.hubUrl)}"/>\n` : ''}<updated>${feed.updated.toISOString()}</updated>
<generator>feedmail</generator>
${feed.icon ? `<icon>${x(feed.icon.url)}</icon>\n<logo>${x(feed.icon.url)}</logo>\n` : ''}`,
  entry: (e) => {
    const email = e.authorEmail ? `<email>${x(e.authorEmail)}</email>` : '';
    const enclosures = e.enclosures.map((a) =>
      `<link rel="enclosure" href="${x(a.url)}" type="${x(a.type)}" length="${a.length}" title="${x(a.title)}"/>`).join('');
    return `<entry>
<id>${x(e.id)}</id>
<title type="text">${x(e.title)}</title>
<link rel="alternate" type="text/html" href="${x(e.url)}"/>${enclosures}
<author><name>${x(e.authorName || e.authorEmail || 'Unknown sender')}</name>${email}</author>
<published>${e.published.toISOString()}</published>
<updated>${e.updated.toISOString()}</updated>
<content type="html">${x(e.html)}</content>
</entry>`;
  },
  separator: '\n',
  tail: () => `
</feed>
`,
};

export function renderAtom(feed: FeedDocument): string {
  return renderWith(atomFormat, feed);
}
