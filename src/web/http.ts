/** Small HTTP helpers shared by the routes: security headers, bodies, client address. */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { BadRequestError, BodyTooLargeError, NotFoundError } from '../errors.js';

/** Our own pages: no inline script or style anywhere, nothing from other origins. */
export const PAGE_CSP = [
  "default-src 'none'",
  "script-src 'self'",
  "style-src 'self'",
  "img-src 'self'",
  "frame-src 'self'",
  // The feed page's live updates (static/live.js) read /feeds/<secret>/events.
  "connect-src 'self'",
  "form-action 'self'",
  "base-uri 'none'",
  "frame-ancestors 'none'",
].join('; ');

/**
 * The message body document, shown only inside a sandboxed iframe: no script
 * at all, inline styles and remote images allowed because newsletters need them.
 * The sandbox keeps the document's origin (allow-same-origin, never allow-scripts) so
 * that the entry page's own script (static/frame.js) can read its height and size the frame.
 */
export const BODY_CSP = [
  "default-src 'none'",
  "img-src 'self' https: http: data:",
  "style-src 'unsafe-inline' https:",
  "font-src https: data:",
  "form-action 'none'",
  "base-uri 'none'",
  "frame-ancestors 'self'",
  'sandbox allow-same-origin allow-popups allow-popups-to-escape-sandbox',
].join('; ');

/**
 * BODY_CSP with the image proxy on (see web/image-proxy.ts): images only from feedmail (and
 * data:), fonts only inline and styles only from the document, so nothing in the body can
 * reach the sender, even a URL the proxy's rewrite missed.
 */
const PROXIED_DIRECTIVES: Record<string, string> = {
  'img-src': "img-src 'self' data:",
  'style-src': "style-src 'unsafe-inline'",
  'font-src': 'font-src data:',
};
export const BODY_CSP_PROXIED = BODY_CSP.split('; ').map((d) => PROXIED_DIRECTIVES[d.split(' ')[0]!] ?? d).join('; ');

export function setSecurityHeaders(res: ServerResponse, csp = PAGE_CSP): void {
  res.setHeader('Content-Security-Policy', csp);
  res.setHeader('X-Content-Type-Options', 'nosniff');
  res.setHeader('Referrer-Policy', 'no-referrer');
  res.setHeader('Cross-Origin-Opener-Policy', 'same-origin');
  res.setHeader('Cross-Origin-Resource-Policy', 'same-origin');
  res.setHeader('Permissions-Policy', 'interest-cohort=()');
  if (csp === PAGE_CSP) res.setHeader('X-Frame-Options', 'DENY');
}

export function sendHtml(res: ServerResponse, status: number, body: string, headers: Record<string, string> = {}): void {
  res.writeHead(status, { 'Content-Type': 'text/html; charset=utf-8', 'Cache-Control': 'no-store', ...headers });
  res.end(body);
}

export function sendJson(res: ServerResponse, status: number, value: unknown, headers: Record<string, string> = {}): void {
  res.writeHead(status, { 'Content-Type': 'application/json; charset=utf-8', 'Cache-Control': 'no-store', ...headers });
  res.end(`${JSON.stringify(value, null, 2)}\n`);
}

export function sendText(res: ServerResponse, status: number, body: string, headers: Record<string, string> = {}): void {
  res.writeHead(status, { 'Content-Type': 'text/plain; charset=utf-8', 'Cache-Control': 'no-store', ...headers });
  res.end(body.endsWith('\n') ? body : `${body}\n`);
}

export function wantsJson(req: IncomingMessage): boolean {
  const accept = req.headers.accept ?? '';
  return /application\/json/i.test(accept) && !/text\/html/i.test(accept);
}

/** Reads a small request body (forms, JSON); larger bodies are refused. */
export async function readBody(req: IncomingMessage, limit = 64 * 1024): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req) {
    size += (chunk as Buffer).length;
    if (size > limit) throw new BodyTooLargeError(limit);
    chunks.push(chunk as Buffer);
  }
  return Buffer.concat(chunks);
}

/**
 * Parses a form or JSON body into string fields. The result has no prototype,
 * so a field the sender did not send is undefined even when it is named like
 * an Object method (`constructor`, `toString`).
 */
export async function readFields(req: IncomingMessage): Promise<Record<string, string>> {
  const body = (await readBody(req)).toString('utf8');
  const type = req.headers['content-type'] ?? '';
  if (body.trim() === '') return fieldsOf([]);
  if (/application\/json/i.test(type)) {
    let parsed: unknown;
    try {
      parsed = JSON.parse(body);
    } catch {
      throw new BadRequestError('The request body is not valid JSON');
    }
    if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) throw new BadRequestError('Expected a JSON object');
    // Numbers and booleans as a form would send them ({"keep_entries": 5} is "5"); objects and arrays are no field.
    return fieldsOf(Object.entries(parsed).flatMap(([k, v]): [string, string][] =>
      (typeof v === 'string' ? [[k, v]] : typeof v === 'number' || typeof v === 'boolean' ? [[k, String(v)]] : [])));
  }
  return fieldsOf(new URLSearchParams(body));
}

function fieldsOf(entries: Iterable<[string, string]>): Record<string, string> {
  return Object.assign(Object.create(null) as Record<string, string>, Object.fromEntries(entries));
}

/** A feed title as typed: one line, no control characters, at most 200 characters. */
export function cleanTitle(raw: string | undefined): string {
  return (raw ?? '').replace(/[\u0000-\u001f\u007f]/g, ' ').trim().slice(0, 200);
}

/**
 * The client's address: the socket peer, or the last address in
 * X-Forwarded-For that is not one of our trusted proxies, when the peer is one.
 */
export function clientAddress(req: IncomingMessage, trustedProxies: string[]): string {
  const peer = normalizeIp(req.socket.remoteAddress ?? 'unknown');
  const trusted = new Set(trustedProxies.map(normalizeIp));
  if (!trusted.has(peer)) return peer;
  const forwarded = String(req.headers['x-forwarded-for'] ?? '').split(',').map((s) => normalizeIp(s.trim())).filter(Boolean);
  for (let i = forwarded.length - 1; i >= 0; i--) {
    if (!trusted.has(forwarded[i]!)) return forwarded[i]!;
  }
  return peer;
}

/** An IPv4 peer as Node reports it on a dual-stack socket (::ffff:a.b.c.d), as the plain address. */
export function normalizeIp(ip: string): string {
  return ip.startsWith('::ffff:') ? ip.slice(7) : ip;
}

/**
 * What a secret link found, or the 404 every unknown, malformed or wrong-kind secret
 * gets alike (the store's lookups return nothing for anything not secret-shaped).
 */
export function foundOr404<T>(found: T | undefined): T {
  if (found === undefined) throw new NotFoundError();
  return found;
}

/**
 * Why a request must be refused as cross-site, or null. Browsers that send
 * Sec-Fetch-Site are believed (only same-origin, or none for a user's own
 * navigation, pass); older ones are judged by Origin, which must be our base
 * URL's. Requests with neither header are not from a browser page (curl, scripts).
 */
export function crossSiteRefusal(req: IncomingMessage, ownOrigin: string): string | null {
  const site = req.headers['sec-fetch-site'];
  if (site !== undefined) return site === 'same-origin' || site === 'none' ? null : `Sec-Fetch-Site: ${site}`;
  const origin = req.headers.origin;
  if (origin !== undefined && origin !== ownOrigin) return `Origin ${origin} is not ${ownOrigin}`;
  return null;
}
