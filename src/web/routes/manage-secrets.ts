/**
 * Rotating a secret that leaked, from the manage page:
 *   POST /manage/<secret>/rotate-address   a new inbox address; mail to the old one gets 550;
 *   POST /manage/<secret>/rotate-feed-url  a new feed URL; the old URL, its feed page, its
 *        per-sender feeds and its icon answer 404, and the documents are rendered anew.
 * Both need confirm=yes and show the new value once on the result page (the manage page
 * shows the current values too). Logs name the feed, never a secret.
 */
import { inboxAddress } from '../../mail/ingest.js';
import { SECRET_IN_PATH } from '../../secrets.js';
import { readFields, sendHtml, sendJson, wantsJson } from '../http.js';
import type { Route } from '../context.js';
import { html, type SafeHtml } from '../views/html.js';
import { copyField, layout } from '../views/layout.js';
import { confirmedOr400, feedForManage, managePath } from './manage-common.js';

/** The manage page's section with both forms. */
export function rotateSection(token: string): SafeHtml {
  return html`<section id="rotate">
<h2>Replace a leaked address or feed URL</h2>
<p class="meta">If the email address or the feed URL got into the wrong hands, replace it. The old one stops working at once.</p>
<form method="post" action="${managePath(token, '/rotate-address')}">
<p><label><input type="checkbox" name="confirm" value="yes" required> Replace the email address: mail to the old address is refused from now on, so give the new one to your newsletters</label></p>
<button type="submit" class="secondary">New email address</button>
</form>
<form method="post" action="${managePath(token, '/rotate-feed-url')}">
<p><label><input type="checkbox" name="confirm" value="yes" required> Replace the feed URL: the old feed URL, feed page and per-sender feeds stop working, so update your feed reader</label></p>
<button type="submit" class="secondary">New feed URL</button>
</form>
</section>`;
}

export const manageRotateAddressRoute: Route = {
  method: 'POST',
  path: new RegExp(String.raw`^/manage/${SECRET_IN_PATH}/rotate-address$`, 'i'),
  handler: async ({ req, res, params, deps }) => {
    const token = params[0]!.toLowerCase();
    const feed = await feedForManage(deps, token);
    const fields = await readFields(req);
    if (!confirmedOr400(req, res, fields, token, 'replace the email address')) return;
    const inboxToken = await deps.stores.app.rotateInboxToken(feed.id);
    deps.log.info({ feedId: feed.id }, 'web: inbox address rotated');
    const address = inboxAddress({ inbox_token: inboxToken }, deps.config.mailDomains);
    if (wantsJson(req)) return sendJson(res, 200, { address });
    sendHtml(res, 200, layout('New email address', html`<h1>New email address</h1>
<p>Mail to the old address is now refused. Give this address to your newsletters (change it in each newsletter's settings, or subscribe again):</p>
${copyField('Email address', address, 'address')}
<p><a href="${managePath(token)}">Back to the manage page</a></p>`));
  },
};

export const manageRotateFeedUrlRoute: Route = {
  method: 'POST',
  path: new RegExp(String.raw`^/manage/${SECRET_IN_PATH}/rotate-feed-url$`, 'i'),
  handler: async ({ req, res, params, deps }) => {
    const token = params[0]!.toLowerCase();
    const feed = await feedForManage(deps, token);
    const fields = await readFields(req);
    if (!confirmedOr400(req, res, fields, token, 'replace the feed URL')) return;
    const feedToken = await deps.stores.app.rotateFeedToken(feed.id);
    // The documents rendered for the old URL are unreachable already (looked up through the
    // feed, whose version moved on); drop them now rather than at the next eviction.
    await deps.stores.cache.deleteCachedFeed(feed.id).catch((err: unknown) => deps.log.warn({ err, feedId: feed.id }, 'web: unable to drop cached documents'));
    deps.log.info({ feedId: feed.id }, 'web: feed URL rotated');
    const { urls } = deps;
    const result = {
      feeds: { atom: urls.feed(feedToken, 'atom'), rss: urls.feed(feedToken, 'rss'), json: urls.feed(feedToken, 'json') },
      page: urls.feedPage(feedToken),
    };
    if (wantsJson(req)) return sendJson(res, 200, result);
    sendHtml(res, 200, layout('New feed URL', html`<h1>New feed URL</h1>
<p>The old feed URL, feed page and per-sender feeds now answer "not found". Put the new URL in your feed reader:</p>
${copyField('Atom feed', result.feeds.atom, 'atom')}
${copyField('RSS feed', result.feeds.rss, 'rss')}
${copyField('JSON Feed', result.feeds.json, 'json')}
<p><a href="${result.page}">Open the feed page</a> · <a href="${managePath(token)}">Back to the manage page</a></p>`));
  },
};
