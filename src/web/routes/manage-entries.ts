/**
 * The manage page's list of recent entries, 50 a page, each with a link to delete it:
 *   GET  /manage/<secret>/entries/<id>/delete  asks for confirmation (changes nothing);
 *   POST /manage/<secret>/entries/<id>/delete  with confirm=yes deletes the entry, its
 *        parts, what no other entry shares, and its raw mail sent to this feed alone; the
 *        feed documents change at once and the entry's links answer 404.
 */
import { NotFoundError } from '../../errors.js';
import { SECRET_IN_PATH } from '../../secrets.js';
import type { EntrySummary } from '../../store/entries.js';
import type { Feed } from '../../store/feeds.js';
import { foundOr404, readFields, sendHtml, sendJson, wantsJson } from '../http.js';
import type { Route, WebDeps } from '../context.js';
import { html, type SafeHtml } from '../views/html.js';
import { layout } from '../views/layout.js';
import { backToManage, confirmedOr400, feedForManage, managePath } from './manage-common.js';

/** Entries listed per page of the manage page. */
export const ENTRIES_PER_PAGE = 50;

/** `?before=<id>` of the manage page: where its list of entries starts. */
export function entriesBefore(url: URL): number | undefined {
  const raw = url.searchParams.get('before');
  return raw !== null && /^\d{1,15}$/.test(raw) ? Number(raw) : undefined;
}

/** The entries section of the manage page: one page of entries, newest first. */
export async function entriesSection(deps: WebDeps, feed: Feed, token: string, url: URL): Promise<SafeHtml> {
  const before = entriesBefore(url);
  const page = await deps.stores.app.entrySummariesOfFeed(feed.id, ENTRIES_PER_PAGE + 1, before);
  const shown = page.slice(0, ENTRIES_PER_PAGE);
  const more = page.length > ENTRIES_PER_PAGE ? shown[shown.length - 1]!.id : undefined;
  const deleted = url.searchParams.get('deleted') === '1';
  return html`<section id="entries">
<h2>Entries</h2>
${deleted ? html`<p class="notice">The entry was deleted.</p>` : ''}
${shown.length === 0 ? html`<p class="meta">${before === undefined ? 'No entries yet.' : 'No older entries.'}</p>` : html`
<ul class="entries">
${shown.map((e) => entryRow(deps, token, e))}
</ul>`}
<p class="meta">${before !== undefined ? html`<a href="${managePath(token)}#entries">Newest entries</a>` : ''}${before !== undefined && more !== undefined ? ' · ' : ''}${more !== undefined ? html`<a href="${managePath(token)}?before=${more}#entries">Older entries</a>` : ''}</p>
</section>`;
}

function entryRow(deps: WebDeps, token: string, e: EntrySummary): SafeHtml {
  return html`<li><a class="subject" href="${deps.urls.entry(e.share_token)}">${e.subject || '(no subject)'}</a>
<span class="meta">${e.from_name ? html`${e.from_name} ` : ''}${e.from_address ? html`&lt;${e.from_address}&gt;` : ''} · ${new Date(e.received_at).toUTCString()} ·
<a href="${managePath(token, `/entries/${e.id}/delete`)}">Delete…</a></span></li>`;
}

async function entryOf(deps: WebDeps, feed: Feed, id: number): Promise<EntrySummary> {
  // Found among this feed's entries only: an id of another feed's entry is as unknown as any.
  return foundOr404(await deps.stores.app.entrySummaryOfFeed(feed.id, id));
}

const ENTRY_DELETE_PATH = new RegExp(String.raw`^/manage/${SECRET_IN_PATH}/entries/(\d{1,15})/delete$`, 'i');

export const manageEntryDeleteConfirmRoute: Route = {
  method: 'GET',
  path: ENTRY_DELETE_PATH,
  handler: async ({ res, params, deps }) => {
    const token = params[0]!.toLowerCase();
    const feed = await feedForManage(deps, token);
    const entry = await entryOf(deps, feed, Number(params[1]));
    sendHtml(res, 200, layout('Delete an entry', html`<h1>Delete this entry?</h1>
<p><strong>${entry.subject || '(no subject)'}</strong><br>
<span class="meta">${entry.from_name || entry.from_address} · ${new Date(entry.received_at).toUTCString()}</span></p>
<p>The entry leaves the feed at once; its page, its attachments and its share link stop working. This cannot be undone.</p>
<form method="post" action="${managePath(token, `/entries/${entry.id}/delete`)}">
<p><label><input type="checkbox" name="confirm" value="yes" required> Delete this entry for good</label></p>
<button type="submit" class="danger">Delete entry</button>
</form>
<p><a href="${managePath(token)}#entries">Back</a></p>`));
  },
};

export const manageEntryDeleteRoute: Route = {
  method: 'POST',
  path: ENTRY_DELETE_PATH,
  handler: async ({ req, res, params, deps }) => {
    const token = params[0]!.toLowerCase();
    const feed = await feedForManage(deps, token);
    const fields = await readFields(req);
    if (!confirmedOr400(req, res, fields, token, 'delete this entry')) return;
    if (!await deps.stores.removeEntry(feed.id, Number(params[1]))) throw new NotFoundError();
    deps.log.info({ feedId: feed.id, entryId: Number(params[1]) }, 'web: entry deleted');
    if (wantsJson(req)) return sendJson(res, 200, { deleted: true });
    backToManage(res, token, '?deleted=1', '#entries');
  },
};
