/** POST /feeds: one button, no signup. Answers an HTML page or, when asked, JSON for scripts. */
import { RateLimitedError } from '../../errors.js';
import { createFeed } from '../../store/feeds.js';
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
    const created = await createFeed(deps.stores.app.db, title, perHour > 0 ? { client, perHour } : null);
    if ('retryAt' in created) throw new RateLimitedError(Math.max(1, Math.ceil((created.retryAt - Date.now()) / 1000)));
    const { feed, manageToken } = created;
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
