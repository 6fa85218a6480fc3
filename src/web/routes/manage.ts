/**
 * The owner's page, reached only with the manage secret: see all links, rename, delete.
 * The page is a list of sections; the actions beyond rename and delete live in their own
 * modules (manage-entries.ts, manage-secrets.ts, manage-settings.ts), each with its section.
 */
import { inboxAddress } from '../../mail/ingest.js';
import { SECRET_IN_PATH } from '../../secrets.js';
import type { Feed } from '../../store/feeds.js';
import type { FailedIngest } from '../../store/journal.js';
import { cleanTitle, readFields, sendHtml, sendJson, wantsJson } from '../http.js';
import type { Route, WebDeps } from '../context.js';
import { intakeParts } from './manage-intake.js';
import { html, type SafeHtml } from '../views/html.js';
import { confirmNotice, copyField, layout } from '../views/layout.js';
import { feedForManage as feedFor, sizeText } from './manage-common.js';
import { entriesSection } from './manage-entries.js';
import { rotateSection } from './manage-secrets.js';
import { entryLimitsSection, iconSection } from './manage-settings.js';

/**
 * Mail that was accepted but never became an entry: the owner would otherwise
 * only notice a newsletter missing. The raw message stays in the journal while
 * its job is failed, so the operator can run it again once the cause is fixed.
 */
function failedSection(failed: FailedIngest[]): SafeHtml | string {
  if (failed.length === 0) return '';
  const n = failed.length;
  const ids = failed.map((f) => f.jobId).join(' ');
  return html`<section class="notice failed" id="failed">
<h2>${n} message${n === 1 ? '' : 's'} could not be processed</h2>
<p>${n === 1 ? 'This message was' : 'These messages were'} received for this feed but ${n === 1 ? 'is' : 'are'} not in it: processing failed on every attempt. The raw mail is kept on the server.</p>
<ul>
${failed.map((f) => html`<li>Received ${new Date(f.receivedAt).toUTCString()} · ${sizeText(f.size)} · ${f.attempts} attempt${f.attempts === 1 ? '' : 's'} · job ${f.jobId}
<br><span class="meta">Error: ${f.lastError.slice(0, 300) || '(none recorded)'}</span></li>`)}
</ul>
<p class="meta">What you can do: whoever runs this feedmail can try again with <code>feedmail jobs retry ${ids}</code> (for example after an upgrade fixes the cause), so send them the job number${n === 1 ? '' : 's'}. You can also ask the sender to send the newsletter again, or read it in its web archive if it has one.</p>
</section>`;
}

/** The feed's secret links (the manage link itself is never shown again). */
function linksSection(deps: WebDeps, feed: Feed): SafeHtml {
  const { urls, config } = deps;
  return html`${copyField('Email address', inboxAddress(feed, config.mailDomains), 'address')}
${copyField('Atom feed', urls.feed(feed.feed_token, 'atom'), 'atom')}
${copyField('RSS feed', urls.feed(feed.feed_token, 'rss'), 'rss')}
${copyField('JSON Feed', urls.feed(feed.feed_token, 'json'), 'json')}
<p><a href="${urls.feedPage(feed.feed_token)}">Open the feed page</a> (it lists each sender's own feed)</p>`;
}

function renameSection(feed: Feed, token: string): SafeHtml {
  return html`<h2>Rename</h2>
<form class="create" method="post" action="/manage/${token}/rename">
<input type="text" name="title" maxlength="200" value="${feed.title}" aria-label="New name">
<button type="submit" class="secondary">Rename</button>
</form>`;
}

function deleteSection(token: string): SafeHtml {
  return html`<h2>Delete</h2>
<form method="post" action="/manage/${token}/delete">
<p><label><input type="checkbox" name="confirm" value="yes" required> Delete this feed and all its entries for good</label></p>
<button type="submit" class="danger">Delete feed</button>
</form>`;
}

export const managePageRoute: Route = {
  method: 'GET',
  path: new RegExp(String.raw`^/manage/${SECRET_IN_PATH}/?$`, 'i'),
  handler: async ({ res, url, params, deps }) => {
    const token = params[0]!.toLowerCase();
    const feed = await feedFor(deps, token);
    const count = await deps.stores.app.countEntries(feed.id);
    const recent = await deps.stores.app.entrySummariesOfFeed(feed.id, 20);
    const failed = await deps.stores.queue.failedIngestsOfFeed(feed.id);
    const icon = await deps.stores.app.feedIconTag(feed.id);
    const confirmations = recent.filter((e) => e.confirm_url);
    const intake = await intakeParts(deps, feed, token);
    sendHtml(res, 200, layout(`Manage ${feed.title || 'feed'}`, html`
<h1>Manage ${feed.title || 'your feed'}</h1>
<p class="meta">${count} entr${count === 1 ? 'y' : 'ies'} · created ${new Date(feed.created_at).toUTCString()}${feed.last_fetched_at ? html` · last fetched ${new Date(feed.last_fetched_at).toUTCString()}` : ''}</p>
${confirmations.map((e) => confirmNotice(e.confirm_url ?? '', e.subject))}
${failedSection(failed)}
${intake.notice}
${linksSection(deps, feed)}
${await entriesSection(deps, feed, token, url)}
${intake.sections}
${renameSection(feed, token)}
${entryLimitsSection(deps, feed, token)}
${iconSection(deps, feed, token, icon)}
${rotateSection(token)}
${deleteSection(token)}
`));
  },
};

export const manageRenameRoute: Route = {
  method: 'POST',
  path: new RegExp(String.raw`^/manage/${SECRET_IN_PATH}/rename$`, 'i'),
  handler: async ({ req, res, params, deps }) => {
    const feed = await feedFor(deps, params[0]!);
    const fields = await readFields(req);
    const title = cleanTitle(fields.title);
    await deps.stores.app.renameFeed(feed.id, title);
    if (wantsJson(req)) return sendJson(res, 200, { title });
    res.writeHead(303, { Location: `/manage/${params[0]!.toLowerCase()}`, 'Cache-Control': 'no-store' });
    res.end();
  },
};

export const manageDeleteRoute: Route = {
  method: 'POST',
  path: new RegExp(String.raw`^/manage/${SECRET_IN_PATH}/delete$`, 'i'),
  handler: async ({ req, res, params, deps }) => {
    const feed = await feedFor(deps, params[0]!);
    const fields = await readFields(req);
    if (fields.confirm !== 'yes') {
      return sendHtml(res, 400, layout('Not deleted', html`<h1>Not deleted</h1><p>Tick the box to confirm the deletion.</p><p><a href="/manage/${params[0]!.toLowerCase()}">Back</a></p>`));
    }
    await deps.stores.removeFeed(feed.id);
    // Give the space back to the filesystem now rather than at the next maintenance run:
    // new mail needs it as disk space (an abusive feed may have filled the disk).
    void deps.stores.reclaimSpace().catch((err: unknown) => deps.log.warn({ err, feedId: feed.id }, 'web: unable to reclaim space after deleting a feed'));
    deps.log.info({ feedId: feed.id }, 'web: feed deleted');
    if (wantsJson(req)) return sendJson(res, 200, { deleted: true });
    sendHtml(res, 200, layout('Feed deleted', html`<h1>Feed deleted</h1><p>The feed and its entries are gone. Mail to its address is now refused.</p><p><a href="/">Create a new feed</a></p>`));
  },
};
