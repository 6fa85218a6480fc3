import { sendHtml } from '../http.js';
import type { Route } from '../context.js';
import { html } from '../views/html.js';
import { layout } from '../views/layout.js';

export const homeRoute: Route = {
  method: 'GET',
  path: /^\/$/,
  handler: async ({ res }) => {
    sendHtml(res, 200, layout('feedmail: newsletters as feeds', html`
<h1>Read newsletters in your feed reader</h1>
<p>Press the button to get an email address and a feed. Subscribe to newsletters with the address; they arrive in the feed. No signup, no account.</p>
<form class="create" method="post" action="/feeds">
<input type="text" name="title" maxlength="200" placeholder="Name (optional), e.g. Tech newsletters" aria-label="Name of the feed">
<button type="submit" class="big">Create feed</button>
</form>
<p class="hint">You get three secret links: the address (for newsletters), the feed (for your reader) and a manage link (for you). Keep them private.</p>
<section id="my-feeds" class="my-feeds" aria-labelledby="my-feeds-title" hidden>
<h2 id="my-feeds-title">My feeds</h2>
<p class="hint">The feeds created in this browser. The list is kept in this browser only and never sent to the server.</p>
<ul class="entries"></ul>
<p><button type="button" class="export">Export OPML</button></p>
</section>
<script src="/static/my-feeds.js" defer></script>
`, { robots: true }), { 'Cache-Control': 'public, max-age=300' });
  },
};
