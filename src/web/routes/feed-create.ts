/**
 * POST /feeds: one button, no signup. Answers an HTML page or, when asked, JSON for scripts.
 * Only from our own page or from a script (the server refuses cross-site posts): another
 * site cannot make its visitors create feeds (and use up their creation budget).
 */
import net from 'node:net';
import { clientNetwork } from '../../client-network.js';
import { RateLimitedError } from '../../errors.js';
import { inboxAddress } from '../../mail/ingest.js';
import { cleanTitle, readFields, sendHtml, sendJson, wantsJson } from '../http.js';
import type { Route } from '../context.js';
import { html } from '../views/html.js';
import { copyField, layout } from '../views/layout.js';

export const feedCreateRoute: Route = {
  method: 'POST',
  path: /^\/feeds\/?$/,
  handler: async ({ req, res, client, deps }) => {
    const fields = await readFields(req);
    const title = cleanTitle(fields.title);
    const perHour = deps.config.feedsPerHourPerClient;
    const created = await deps.stores.app.createFeed(title, perHour > 0 ? { client: creationLimitKey(client), perHour } : null);
    if ('retryAt' in created) throw new RateLimitedError(Math.max(1, Math.ceil((created.retryAt - deps.stores.app.clock.now()) / 1000)));
    const { feed, manageToken } = created;
    const { urls, config } = deps;
    const address = inboxAddress(feed, config.mailDomains);
    const result = {
      title: feed.title,
      address,
      feeds: { atom: urls.feed(feed.feed_token, 'atom'), rss: urls.feed(feed.feed_token, 'rss'), json: urls.feed(feed.feed_token, 'json') },
      page: urls.feedPage(feed.feed_token),
      manage: urls.manage(manageToken),
    };
    deps.log.info({ feedId: feed.id }, 'web: feed created');
    if (wantsJson(req)) return sendJson(res, 201, result);
    sendHtml(res, 201, layout('Your new feed', html`
<h1>Your feed${feed.title ? html`: ${feed.title}` : ''} is ready</h1>
<section class="step" aria-labelledby="step-address">
<h2 id="step-address"><span class="step-number" aria-hidden="true">1</span> Subscribe to newsletters</h2>
<p>Subscribe to newsletters with this address:</p>
${copyField('Email address', address, 'address')}
</section>
<section class="step" aria-labelledby="step-feed">
<h2 id="step-feed"><span class="step-number" aria-hidden="true">2</span> Read them in your feed reader</h2>
<p>Add this feed to your feed reader:</p>
${copyField('Atom feed', result.feeds.atom, 'atom')}
<details><summary>RSS and JSON Feed</summary>
${copyField('RSS feed', result.feeds.rss, 'rss')}
${copyField('JSON Feed', result.feeds.json, 'json')}
</details>
</section>
<section class="step" aria-labelledby="step-manage">
<h2 id="step-manage"><span class="step-number" aria-hidden="true">3</span> Keep the manage link</h2>
<p>Bookmark the manage link: it is the only way to rename or delete this feed, and it is shown only now.</p>
${copyField('Manage link', result.manage, 'manage')}
</section>
<div id="my-feed" class="notice" data-title="${feed.title}" data-page="${result.page}" data-atom="${result.feeds.atom}" data-json="${result.feeds.json}" hidden>
<p>This browser now lists this feed under “My feeds” on the <a href="/">home page</a> (kept in this browser only, never sent to the server; it does not keep the email address).</p>
<label><input type="checkbox" id="remember-manage"> Also keep the manage link in this browser (anyone using this browser could then manage the feed)</label>
</div>
<p><a class="button" href="${result.page}">Open the feed page</a></p>
<script src="/static/my-feeds.js" defer></script>
`));
  },
};

/**
 * What the creation limit counts by: an IPv6 client by its /64 (a host is handed
 * a whole /64, so each of its addresses would otherwise get a budget of its own),
 * an IPv4 client by its exact address (a /24 would put unrelated users behind
 * one carrier NAT or campus into one budget).
 */
export function creationLimitKey(client: string): string {
  const ip = client.startsWith('::ffff:') && net.isIPv4(client.slice(7)) ? client.slice(7) : client;
  return net.isIPv6(ip) ? clientNetwork(ip) : ip;
}
