/** What every manage action shares: the feed its secret names, the confirmation rule, the way back. */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Feed } from '../../store/feeds.js';
import { foundOr404, sendHtml, sendJson, wantsJson } from '../http.js';
import type { WebDeps } from '../context.js';
import { html } from '../views/html.js';
import { layout } from '../views/layout.js';

/** A size as the manage pages show it. */
export function sizeText(bytes: number): string {
  if (bytes < 1024) return `${bytes} bytes`;
  if (bytes < 1024 ** 2) return `${(bytes / 1024).toFixed(1)} KB`;
  if (bytes < 1024 ** 3) return `${(bytes / 1024 ** 2).toFixed(1)} MB`;
  return `${(bytes / 1024 ** 3).toFixed(1)} GB`;
}

/** The feed a manage secret names, or the 404 every unknown secret gets. */
export async function feedForManage(deps: WebDeps, token: string): Promise<Feed> {
  return foundOr404(await deps.stores.app.feedByManageToken(token));
}

/** The manage page's own path (the secret lowercased, as links show it). */
export function managePath(token: string, suffix = ''): string {
  return `/manage/${token.toLowerCase()}${suffix}`;
}

/** Sends the browser back to the manage page (303, so a reload does not post again). */
export function backToManage(res: ServerResponse, token: string, query = '', anchor = ''): void {
  res.writeHead(303, { Location: `${managePath(token)}${query}${anchor}`, 'Cache-Control': 'no-store' });
  res.end();
}

/**
 * Whether a destructive action was confirmed (`confirm=yes`, the form's checkbox or a
 * script's field). When not, answers 400 saying so and returns false.
 */
export function confirmedOr400(req: IncomingMessage, res: ServerResponse, fields: Record<string, string>, token: string, what: string): boolean {
  if (fields.confirm === 'yes') return true;
  const message = `Not done: tick the box to confirm that you want to ${what} (scripts send confirm=yes).`;
  if (wantsJson(req)) sendJson(res, 400, { error: { code: 'not_confirmed', message } });
  else sendHtml(res, 400, layout('Not confirmed', html`<h1>Not confirmed</h1><p>${message}</p><p><a href="${managePath(token)}">Back</a></p>`));
  return false;
}
