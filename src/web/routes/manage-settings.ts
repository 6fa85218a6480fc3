/**
 * A feed's own settings, from the manage page:
 *   POST /manage/<secret>/settings     how many entries the feed documents carry and how
 *        many are kept (`document_entries`, `keep_entries`; empty for the instance's
 *        number), each from 1 to the instance's setting; fewer kept trims the feed at once;
 *   POST /manage/<secret>/icon         the feed's icon: a PNG, GIF, JPEG or ICO of at most
 *        64 KB (a multipart form field `icon`, or the bytes as the body), checked by its
 *        first bytes; served by feedmail (routes/icons.ts);
 *   POST /manage/<secret>/icon/delete  back to the icon generated from the title.
 */
import type { IncomingMessage } from 'node:http';
import { BadRequestError, BodyTooLargeError, UploadTooLargeError } from '../../errors.js';
import { entryLimits } from '../../feeds/entry-limits.js';
import { SECRET_IN_PATH } from '../../secrets.js';
import type { Feed } from '../../store/feeds.js';
import type { FeedIconTag } from '../../store/icons.js';
import { readBody, readFields, sendJson, wantsJson } from '../http.js';
import type { Route, WebDeps } from '../context.js';
import { multipartBoundary, readMultipart } from '../multipart.js';
import { html, type SafeHtml } from '../views/html.js';
import { backToManage, feedForManage, managePath } from './manage-common.js';
import { feedIconRef } from './icons.js';

/** Largest icon taken. */
export const ICON_MAX_BYTES = 64 * 1024;
/** Room for the form's boundaries and part headers around the icon. */
const UPLOAD_OVERHEAD_BYTES = 16 * 1024;

/** The manage page's section: both numbers as they are, their bounds, and the form. */
export function entryLimitsSection(deps: WebDeps, feed: Feed, token: string): SafeHtml {
  const { config } = deps;
  const now = entryLimits(feed, config);
  return html`<section id="settings">
<h2>How many entries</h2>
<p class="meta">The feed documents carry the newest ${now.documentEntries} entr${now.documentEntries === 1 ? 'y' : 'ies'}; the newest ${now.keepEntries} ${now.keepEntries === 1 ? 'is' : 'are'} kept, older ones are deleted (at once when you lower the number). Leave a field empty for this server's number.</p>
<form method="post" action="${managePath(token, '/settings')}">
<p><label for="document_entries">Entries in the feed documents (1 to ${config.feedMaxEntries}; this server's number: ${config.feedMaxEntries})</label><br>
<input type="number" id="document_entries" name="document_entries" min="1" max="${config.feedMaxEntries}" value="${feed.document_entries ?? ''}" placeholder="${config.feedMaxEntries}"></p>
<p><label for="keep_entries">Entries kept (1 to ${config.feedKeepEntries}; this server's number: ${config.feedKeepEntries})</label><br>
<input type="number" id="keep_entries" name="keep_entries" min="1" max="${config.feedKeepEntries}" value="${feed.keep_entries ?? ''}" placeholder="${config.feedKeepEntries}"></p>
<button type="submit" class="secondary">Save</button>
</form>
</section>`;
}

/** A number field: empty for null (the instance's), else a whole number within 1..max, else 400 saying so. */
function limitField(raw: string | undefined, label: string, max: number): number | null {
  const v = (raw ?? '').trim();
  if (v === '') return null;
  if (!/^\d{1,9}$/.test(v) || Number(v) < 1 || Number(v) > max) {
    throw new BadRequestError(`${label} must be a whole number from 1 to ${max} (this server's limit), or empty for this server's number; got "${v.slice(0, 20)}"`);
  }
  return Number(v);
}

export const manageSettingsRoute: Route = {
  method: 'POST',
  path: new RegExp(String.raw`^/manage/${SECRET_IN_PATH}/settings$`, 'i'),
  handler: async ({ req, res, params, deps }) => {
    const token = params[0]!.toLowerCase();
    const feed = await feedForManage(deps, token);
    const { config } = deps;
    const fields = await readFields(req);
    const documentEntries = limitField(fields.document_entries, 'Entries in the feed documents', config.feedMaxEntries);
    const keepEntries = limitField(fields.keep_entries, 'Entries kept', config.feedKeepEntries);
    const keep = keepEntries ?? config.feedKeepEntries;
    if (documentEntries !== null && documentEntries > keep) {
      throw new BadRequestError(`Entries in the feed documents (${documentEntries}) cannot be more than entries kept (${keep}): a document cannot carry entries that are no longer kept`);
    }
    await deps.stores.app.setEntryLimits(feed.id, { documentEntries, keepEntries });
    const effective = entryLimits({ document_entries: documentEntries, keep_entries: keepEntries }, config);
    // Fewer kept: the owner expects the older entries gone now, not at the next hourly trim.
    const trimmed = await deps.stores.app.trimFeed(feed.id, effective.keepEntries);
    deps.log.info({ feedId: feed.id, documentEntries, keepEntries, trimmed }, 'web: feed entry limits set');
    if (wantsJson(req)) return sendJson(res, 200, { documentEntries, keepEntries, effective, trimmed });
    backToManage(res, token, '', '#settings');
  },
};

/** The type an icon's first bytes show, when it is one taken: PNG, GIF, JPEG or ICO. */
export function iconTypeOf(data: Buffer): string | undefined {
  if (data.length >= 24 && data.subarray(0, 8).equals(Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]))
    && data.subarray(12, 16).toString('latin1') === 'IHDR') return 'image/png';
  if (data.length >= 13 && /^GIF8[79]a$/.test(data.subarray(0, 6).toString('latin1'))) return 'image/gif';
  if (data.length >= 4 && data[0] === 0xff && data[1] === 0xd8 && data[2] === 0xff) return 'image/jpeg';
  // ICONDIR: reserved 0, type 1 (icon), at least one image and room for its directory entries.
  if (data.length >= 22 && data.readUInt16LE(0) === 0 && data.readUInt16LE(2) === 1) {
    const count = data.readUInt16LE(4);
    if (count >= 1 && data.length >= 6 + 16 * count) return 'image/x-icon';
  }
  return undefined;
}

/** The uploaded bytes: the `icon` field of a multipart form, or the whole body for scripts. */
async function uploadedIcon(req: IncomingMessage): Promise<Buffer> {
  try {
    if (multipartBoundary(req.headers['content-type'])) {
      const part = (await readMultipart(req, ICON_MAX_BYTES + UPLOAD_OVERHEAD_BYTES)).find((p) => p.name === 'icon');
      if (!part) throw new BadRequestError('The form has no "icon" file field');
      return part.data;
    }
    return await readBody(req, ICON_MAX_BYTES);
  } catch (err) {
    if (err instanceof BodyTooLargeError) throw new UploadTooLargeError('The icon', ICON_MAX_BYTES);
    throw err;
  }
}

/** The manage page's icon section: the icon as readers see it, the upload form and the way back to the generated one. */
export function iconSection(deps: WebDeps, feed: Feed, token: string, tag: FeedIconTag | undefined): SafeHtml {
  const icon = feedIconRef(feed, tag, deps.urls);
  return html`<section id="icon">
<h2>Feed icon</h2>
<p><img class="icon" src="${icon.url}" alt="The feed's icon" width="48" height="48"> <span class="meta">${tag ? 'Your icon.' : 'Made from the feed\'s name.'} Feed readers show it next to the feed; it is served by this server.</span></p>
<form method="post" action="${managePath(token, '/icon')}" enctype="multipart/form-data">
<p><label for="icon-file">A PNG, GIF, JPEG or ICO file of at most ${ICON_MAX_BYTES / 1024} KB, square at best</label><br>
<input type="file" id="icon-file" name="icon" accept="image/png,image/gif,image/jpeg,image/x-icon,image/vnd.microsoft.icon,.ico" required></p>
<button type="submit" class="secondary">Upload icon</button>
</form>
${tag ? html`<form method="post" action="${managePath(token, '/icon/delete')}"><button type="submit" class="secondary">Use the generated icon again</button></form>` : ''}
</section>`;
}

export const manageIconRoute: Route = {
  method: 'POST',
  path: new RegExp(String.raw`^/manage/${SECRET_IN_PATH}/icon$`, 'i'),
  handler: async ({ req, res, params, deps }) => {
    const token = params[0]!.toLowerCase();
    const feed = await feedForManage(deps, token);
    const data = await uploadedIcon(req);
    if (data.length === 0) throw new BadRequestError('Choose an image file to upload as the icon');
    if (data.length > ICON_MAX_BYTES) throw new UploadTooLargeError('The icon', ICON_MAX_BYTES);
    const type = iconTypeOf(data);
    if (!type) throw new BadRequestError('The icon must be a PNG, GIF, JPEG or ICO image (the file\'s contents are not one of these)');
    const tag = await deps.stores.app.setFeedIcon(feed.id, type, data);
    deps.log.info({ feedId: feed.id, type, bytes: data.length }, 'web: feed icon set');
    if (wantsJson(req)) return sendJson(res, 200, { icon: feedIconRef(feed, tag, deps.urls).url, type, bytes: data.length });
    backToManage(res, token, '', '#icon');
  },
};

export const manageIconDeleteRoute: Route = {
  method: 'POST',
  path: new RegExp(String.raw`^/manage/${SECRET_IN_PATH}/icon/delete$`, 'i'),
  handler: async ({ req, res, params, deps }) => {
    const token = params[0]!.toLowerCase();
    const feed = await feedForManage(deps, token);
    // A form post has an empty body; read it so the connection stays usable.
    await readFields(req);
    const removed = await deps.stores.app.deleteFeedIcon(feed.id);
    if (removed) deps.log.info({ feedId: feed.id }, 'web: feed icon removed');
    if (wantsJson(req)) return sendJson(res, 200, { removed, icon: feedIconRef(feed, undefined, deps.urls).url });
    backToManage(res, token, '', '#icon');
  },
};
