/** The two static files our pages use (CSS, and the copy-button script). */
import fs from 'node:fs';
import { fileURLToPath } from 'node:url';
import { NotFoundError } from '../../errors.js';
import type { Route } from '../context.js';

const STATIC_DIR = fileURLToPath(new URL('../../../static/', import.meta.url));
const FILES: Record<string, string> = { 'style.css': 'text/css; charset=utf-8', 'copy.js': 'text/javascript; charset=utf-8' };
const cache = new Map<string, Buffer>();

export const staticRoute: Route = {
  method: 'GET',
  path: /^\/static\/([a-z.-]+)$/,
  handler: async ({ res, params }) => {
    const name = params[0]!;
    const type = FILES[name];
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
