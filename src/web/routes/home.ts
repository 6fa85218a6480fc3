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
<p class="lead">Press the button to get an email address and a feed. Subscribe to newsletters with the address; they arrive in the feed. No signup, no account.</p>
<form class="create" method="post" action="/feeds">
<label for="feed-title" class="visually-hidden">Name of the feed (optional)</label>
<input id="feed-title" type="text" name="title" maxlength="200" placeholder="Name (optional), e.g. Tech newsletters">
<button type="submit" class="big">Create feed</button>
</form>
<ol class="steps">
<li><strong>An email address</strong> to subscribe to newsletters with.</li>
<li><strong>A feed</strong> (Atom, RSS or JSON Feed) to add to your reader.</li>
<li><strong>A manage link</strong>, for you alone, to rename or delete the feed.</li>
</ol>
<p class="hint">The three links are secret keys: keep them private.</p>
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
