/**
 * The shareable entry view. GET /e/<share-secret> is our page (strict CSP, no
 * inline anything); the message itself is GET /e/<share-secret>/body, a
 * separate document with its own CSP, shown only in a sandboxed iframe; parts
 * are GET /e/<share-secret>/parts/<n>/<name>. The frame keeps its origin but runs no
 * script; our static/frame.js sizes it to the message, so the page scrolls as one.
 */
import { SECRET_IN_PATH } from '../../secrets.js';
import { NotFoundError } from '../../errors.js';
import type { Entry } from '../../store/entries.js';
import { BODY_CSP, BODY_CSP_PROXIED, foundOr404, sendHtml, setSecurityHeaders } from '../http.js';
import type { Route, WebDeps } from '../context.js';
import { bodyDocument, proxiedImages, publishedAt, resolveCids, shownConfirmUrl } from '../presenters.js';
import { html } from '../views/html.js';
import { confirmNotice, copyField, layout } from '../views/layout.js';

async function entryFor(deps: WebDeps, token: string): Promise<Entry> {
  return foundOr404(await deps.stores.app.entryByShareToken(token));
}

export const entryPageRoute: Route = {
  method: 'GET',
  path: new RegExp(String.raw`^/e/${SECRET_IN_PATH}/?$`, 'i'),
  handler: async ({ res, params, deps }) => {
    const entry = await entryFor(deps, params[0]!);
    const feed = await deps.stores.app.feedById(entry.feed_id);
    if (!feed) throw new NotFoundError();
    const parts = await deps.stores.app.partsOfEntry(entry.id);
    const attachments = parts.filter((p) => !p.inline);
    const confirm = shownConfirmUrl(entry, feed);
    const { urls } = deps;
    const when = new Date(publishedAt(entry));
    sendHtml(res, 200, layout(entry.subject || '(no subject)', html`
<article class="entry">
<header class="entry-head">
<h1>${entry.subject || '(no subject)'}</h1>
<p class="meta"><span class="from">From ${entry.from_name ? html`<strong>${entry.from_name}</strong> ` : ''}${entry.from_address ? html`&lt;${entry.from_address}&gt;` : ''}</span>
<span class="sep" aria-hidden="true">·</span> <time datetime="${when.toISOString()}">${when.toUTCString()}</time></p>
</header>
${confirm ? confirmNotice(confirm) : ''}
${entry.note ? html`<p class="notice">${entry.note}</p>` : ''}
<iframe class="message" title="Message: ${entry.subject || '(no subject)'}" src="${urls.entryBody(entry.share_token)}" sandbox="allow-same-origin allow-popups allow-popups-to-escape-sandbox" referrerpolicy="no-referrer" loading="eager"></iframe>
<p class="meta"><a href="${urls.entryBody(entry.share_token)}" target="_blank" rel="noopener noreferrer">Open the message on its own</a></p>
${attachments.length ? html`<section class="attachments" aria-labelledby="attachments-title"><h2 id="attachments-title">Attachments</h2><ul class="attachments">${attachments.map((p) => p.note
    ? html`<li>${p.filename} <span class="meta">${p.content_type}, ${p.size} bytes. ${p.note}</span></li>`
    : p.blob_hash
      ? html`<li><a href="${urls.part(entry.share_token, p.idx, p.filename)}" download>${p.filename}</a> <span class="meta">${p.content_type}, ${p.size} bytes</span></li>`
      : html`<li>${p.filename} <span class="meta">${p.size} bytes, too large to keep</span></li>`)}</ul></section>` : ''}
<section class="share" aria-label="Share">
${copyField('Link to this entry', urls.entry(entry.share_token), 'share-link', 'Copy link')}
<p class="hint">Anyone with this link can read this entry, and only this entry.</p>
</section>
</article>
<script src="/static/frame.js" defer></script>
`), { 'Cache-Control': 'private, no-cache' });
  },
};

export const entryBodyRoute: Route = {
  method: 'GET',
  path: new RegExp(String.raw`^/e/${SECRET_IN_PATH}/body$`, 'i'),
  handler: async ({ res, params, deps }) => {
    const entry = await entryFor(deps, params[0]!);
    const parts = await deps.stores.app.partsOfEntry(entry.id);
    // With the image proxy on, images come from feedmail only: one the rewrite missed is not loaded at all.
    setSecurityHeaders(res, deps.urls.images ? BODY_CSP_PROXIED : BODY_CSP);
    res.removeHeader('X-Frame-Options');
    const body = resolveCids(entry.html, entry, parts, deps.urls);
    sendHtml(res, 200, proxiedImages(bodyDocument(body), deps.urls), { 'Cache-Control': 'private, no-cache' });
  },
};

export const entryPartRoute: Route = {
  method: 'GET',
  path: new RegExp(String.raw`^/e/${SECRET_IN_PATH}/parts/(\d+)(?:/[^/]*)?$`, 'i'),
  handler: async ({ res, params, deps }) => {
    const entry = await entryFor(deps, params[0]!);
    const part = await deps.stores.app.partOfEntry(entry.id, Number(params[1]));
    // A part with a note is one whose bytes are not offered (e.g. it contains the inbox address).
    if (!part?.blob_hash || part.note) throw new NotFoundError();
    const data = await deps.stores.app.blobByHash(part.blob_hash);
    if (!data) throw new NotFoundError();
    // Only raster images are shown inline; everything else (SVG and HTML included) is a download.
    const showInline = /^image\/(png|gif|jpeg|webp|avif|bmp)$/.test(part.content_type);
    const ascii = part.filename.replace(/[^\x20-\x7e]|["\\]/g, '_');
    res.setHeader('Content-Security-Policy', "default-src 'none'; sandbox");
    res.writeHead(200, {
      // Never the declared type otherwise: a script type served from our origin would pass `script-src 'self'`.
      'Content-Type': showInline ? part.content_type : (part.content_type.startsWith('text/') ? 'text/plain; charset=utf-8' : 'application/octet-stream'),
      'Content-Length': String(data.length),
      'Content-Disposition': `${showInline ? 'inline' : 'attachment'}; filename="${ascii}"; filename*=UTF-8''${encodeURIComponent(part.filename)}`,
      'Cache-Control': 'private, max-age=86400',
      // Readers and the sandboxed body (an opaque origin) load these from elsewhere.
      'Cross-Origin-Resource-Policy': 'cross-origin',
    });
    res.end(data);
  },
};
