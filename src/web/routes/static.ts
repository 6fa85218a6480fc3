/** The static files our pages use (CSS, the copy-button script, the feed page's live updates, the home page's list of this browser's feeds, and the entry page's frame sizing). */
import fs from 'node:fs';
import { fileURLToPath } from 'node:url';
import { NotFoundError } from '../../errors.js';
import type { Route } from '../context.js';

const STATIC_DIR = fileURLToPath(new URL('../../../static/', import.meta.url));
// A Map, not an object literal: a name from the URL must never find an inherited property (`constructor`, `__proto__`).
const FILES = new Map([['style.css', 'text/css; charset=utf-8'], ['copy.js', 'text/javascript; charset=utf-8'], ['live.js', 'text/javascript; charset=utf-8'], ['my-feeds.js', 'text/javascript; charset=utf-8'], ['frame.js', 'text/javascript; charset=utf-8']]);
const cache = new Map<string, Buffer>();

export const staticRoute: Route = {
  method: 'GET',
  path: /^\/static\/([a-z.-]+)$/,
  handler: async ({ res, params }) => {
    const name = params[0]!;
    const type = FILES.get(name);
    if (!type) throw new NotFoundError();
    let body = cache.get(name);
    if (!body) {
      body = fs.readFileSync(`${STATIC_DIR}${name}`);
      cache.set(name, body);
    }
    res.writeHead(200, { 'Content-Type': type, 'Cache-Control': 'public, max-age=3600', 'Content-Length': String(body.length) });
    res.end(body);
  },
};
