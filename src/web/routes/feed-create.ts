/** POST /feeds: one button, no signup. Answers an HTML page or, when asked, JSON for scripts. */
import { RateLimitedError } from '../../errors.js';
import { createFeed, feedCreationsSince } from '../../store/feeds.js';
import { readFields, sendHtml, sendJson, wantsJson } from '../http.js';
import type { Route } from '../context.js';
import { html } from '../views/html.js';
import { copyField, layout } from '../views/layout.js';

const HOUR = 3600_000;

export const feedCreateRoute: Route = {
  method: 'POST',
  path: /^\/feeds\/?$/,
  handler: async ({ req, res, client, deps }) => {
    const fields = await readFields(req);
    const title = (fields.title ?? '').replace(/[\u0000-\u001f\u007f]/g, ' ').trim().slice(0, 200);
    const limit = deps.config.feedsPerHourPerClient;
    if (limit > 0) {
      const now = Date.now();
      const recent = await feedCreationsSince(deps.stores.app.db, client, now - HOUR);
      if (recent.count >= limit) {
        throw new RateLimitedError(Math.max(1, Math.ceil(((recent.oldest ?? now) + HOUR - now) / 1000)));
      }
    }
    const { feed, manageToken } = await createFeed(deps.stores.app.db, title, limit > 0 ? client : null);
    const { urls, config } = deps;
    const address = `${feed.inbox_token}@${config.mailDomains[0]}`;
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
<p>Subscribe to newsletters with this address:</p>
${copyField('Email address', address, 'address')}
<p>Add this feed to your feed reader:</p>
${copyField('Atom feed', result.feeds.atom, 'atom')}
<details><summary>RSS and JSON Feed</summary>
${copyField('RSS feed', result.feeds.rss, 'rss')}
${copyField('JSON Feed', result.feeds.json, 'json')}
</details>
<p>Bookmark the manage link: it is the only way to rename or delete this feed, and it is shown only now.</p>
${copyField('Manage link', result.manage, 'manage')}
<p><a href="${result.page}">Open the feed page</a></p>
`));
  },
};
