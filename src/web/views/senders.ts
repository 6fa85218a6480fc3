/** The feed page's list of senders, each with its own feed URLs (routes/sender-feed.ts). */
import { redactor } from '../../mail/redact.js';
import { senderDomain, senderKey } from '../../feeds/senders.js';
import type { FeedSender } from '../../store/entries.js';
import type { Feed } from '../../store/feeds.js';
import type { Urls } from '../urls.js';
import { html, type SafeHtml } from './html.js';

/** Senders listed on the feed page (the most recent first); older ones keep working URLs. */
export const SENDERS_SHOWN = 100;

export function sendersSection(feed: Feed, senders: FeedSender[], urls: Urls): SafeHtml | string {
  if (senders.length === 0) return '';
  // Stored addresses were redacted when the mail came in; this holds for entries stored before that too.
  const shown = redactor({ inboxToken: feed.inbox_token, feedToken: feed.feed_token });
  return html`<section class="senders" id="senders">
<h2>Senders</h2>
<p class="meta">Each sender has its own feed, for following one newsletter of this inbox.</p>
<ul class="senders">
${senders.map((s) => {
    const key = senderKey(feed.id, s.fromAddress);
    const domain = senderDomain(s.fromAddress);
    const name = shown(s.fromName);
    const address = shown(s.fromAddress);
    return html`<li>${domain ? html`<img class="icon" src="${urls.domainIcon(domain)}" alt="" width="20" height="20">` : ''}
<span class="sender">${name || address || 'Unknown sender'}</span>${name && address ? html` <span class="meta">&lt;${address}&gt;</span>` : ''}
<span class="meta">· ${s.entries} entr${s.entries === 1 ? 'y' : 'ies'} ·
<a href="${urls.senderFeed(feed.feed_token, key, 'atom')}">Atom</a> · <a href="${urls.senderFeed(feed.feed_token, key, 'rss')}">RSS</a> · <a href="${urls.senderFeed(feed.feed_token, key, 'json')}">JSON Feed</a></span></li>`;
  })}
</ul>
</section>`;
}
