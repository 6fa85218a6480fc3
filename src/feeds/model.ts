/** The format-independent shape every feed document is rendered from. */
export interface FeedDocumentEntry {
  id: string;
  url: string;
  title: string;
  authorName: string;
  authorEmail: string;
  published: Date;
  updated: Date;
  html: string;
  enclosures: { url: string; type: string; length: number; title: string }[];
}

/** Everything of a feed document but its entries. */
export interface FeedDocumentHead {
  id: string;
  title: string;
  pageUrl: string;
  atomUrl: string;
  rssUrl: string;
  jsonUrl: string;
  updated: Date;
  /** The WebSub hub that pushes this document to its subscribers (web/routes/websub.ts). */
  hubUrl?: string;
  /** The feed's icon, always served by feedmail itself: readers never fetch anything from a sender. */
  icon?: { url: string; type: string };
}

export interface FeedDocument extends FeedDocumentHead {
  entries: FeedDocumentEntry[];
}

/**
 * A format rendered piece by piece: head, entries joined by `separator`, tail.
 * The pieces let a caller measure each entry and stop before a size bound, and
 * yield to the event loop between entries.
 */
export interface FeedFormat {
  head(feed: FeedDocumentHead): string;
  entry(entry: FeedDocumentEntry): string;
  separator: string;
  tail(feed: FeedDocumentHead): string;
}

/** A whole document in one call, for callers that have no bound to keep. */
export function renderWith(format: FeedFormat, feed: FeedDocument): string {
  return format.head(feed) + feed.entries.map((e) => format.entry(e)).join(format.separator) + format.tail(feed);
}

/** Characters XML 1.0 forbids; mail can contain them, feed documents must not. */
const INVALID_XML = /[^\u0009\u000a\u000d\u0020-\ud7ff\ue000-\ufffd\u{10000}-\u{10ffff}]/gu;

export function xmlEscape(s: string): string {
  return s.replace(INVALID_XML, '').replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;').replace(/'/g, '&apos;');
}
