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

export interface FeedDocument {
  id: string;
  title: string;
  pageUrl: string;
  atomUrl: string;
  rssUrl: string;
  jsonUrl: string;
  updated: Date;
  entries: FeedDocumentEntry[];
}

/** Characters XML 1.0 forbids; mail can contain them, feed documents must not. */
const INVALID_XML = /[^\u0009\u000a\u000d\u0020-\ud7ff\ue000-\ufffd\u{10000}-\u{10ffff}]/gu;

export function xmlEscape(s: string): string {
  return s.replace(INVALID_XML, '').replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;').replace(/'/g, '&apos;');
}
