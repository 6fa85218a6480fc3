/** GET /feeds/<feed-secret>: the feed as a web page, for people rather than readers. */
import { entryLimits } from '../../feeds/entry-limits.js';
import { SECRET_IN_PATH } from '../../secrets.js';
import { foundOr404, sendHtml } from '../http.js';
import type { Route } from '../context.js';
import { shownConfirmUrl } from '../presenters.js';
import { searchForm } from './feed-search.js';
import { html } from '../views/html.js';
import { confirmNotice, layout } from '../views/layout.js';
import { SENDERS_SHOWN, sendersSection } from '../views/senders.js';

const DAY = 86_400_000;

export const feedPageRoute: Route = {
  method: 'GET',
  path: new RegExp(String.raw`^/feeds/${SECRET_IN_PATH}/?$`, 'i'),
  handler: async ({ res, params, deps }) => {
    const feed = foundOr404(await deps.stores.app.feedByFeedToken(params[0]!));
    const entries = await deps.stores.app.entrySummariesOfFeed(feed.id, entryLimits(feed, deps.config).documentEntries);
    const senders = await deps.stores.app.sendersOfFeed(feed.id, SENDERS_SHOWN);
    const { urls, config } = deps;
    const live = deps.live?.enabled === true;
    const confirmations = entries.filter((e) => e.confirm_url && deps.stores.app.clock.now() - e.received_at < 14 * DAY);
    let expiry = html``;
    if (config.feedExpireDays > 0) {
      const lastUse = Math.max(feed.last_fetched_at ?? 0, feed.created_at);
      const daysLeft = Math.ceil((lastUse + config.feedExpireDays * DAY - deps.stores.app.clock.now()) / DAY);
      if (daysLeft <= Math.min(7, config.feedExpireDays)) {
        expiry = html`<p class="notice">No feed reader has fetched this feed recently. It will be deleted in ${Math.max(0, daysLeft)} day(s) unless a reader fetches it.</p>`;
      }
    }
    sendHtml(res, 200, layout(feed.title || 'feedmail inbox', html`
<h1>${feed.title || 'feedmail inbox'}</h1>
${expiry}
${confirmations.map((e) => confirmNotice(shownConfirmUrl(e, feed) ?? '', e.subject))}
<p class="meta">Subscribe in your reader: <a href="${urls.feed(feed.feed_token, 'atom')}">Atom</a> · <a href="${urls.feed(feed.feed_token, 'rss')}">RSS</a> · <a href="${urls.feed(feed.feed_token, 'json')}">JSON Feed</a></p>
${searchForm(feed.feed_token)}
${entries.length === 0 ? html`<p id="no-mail">No mail yet. New newsletters appear here as they arrive.</p>` : html``}
<p id="live-status" class="meta" role="status" aria-live="polite"></p>
<ul class="entries" id="entries"${live ? html` data-events="/feeds/${feed.feed_token}/events?since=${String(deps.stores.app.clock.now() - 2000)}"` : html``}${entries.length === 0 ? html` hidden` : html``}>
${entries.map((e) => html`<li><a class="subject" href="${urls.entry(e.share_token)}">${e.subject || '(no subject)'}</a>
<span class="meta">${e.from_name || e.from_address} · ${new Date(e.received_at).toUTCString()}</span></li>`)}
</ul>
${live ? html`<script src="/static/live.js" defer></script>` : html``}
${sendersSection(feed, senders, urls)}
`), { 'X-Robots-Tag': 'noindex, nofollow' });
  },
};
