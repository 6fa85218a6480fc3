/**
 * /healthz (the process answers), /readyz (it can do its job), /metrics (Prometheus text).
 * /readyz and /metrics tell an attacker how much room the disk has and how busy the
 * queue is, so FEEDMAIL_OPS_ALLOW can restrict them to addresses, CIDR ranges and
 * bearer tokens; anyone else gets the same 404 as an unknown page.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import net from 'node:net';
import { NotFoundError } from '../../errors.js';
import { sendJson, sendText } from '../http.js';
import type { Route } from '../context.js';

export const healthzRoute: Route = {
  method: 'GET',
  path: /^\/healthz$/,
  handler: async ({ res }) => sendText(res, 200, 'ok'),
};

export const readyzRoute: Route = {
  method: 'GET',
  path: /^\/readyz$/,
  handler: async ({ req, res, client, deps }) => {
    if (!opsAllowed(deps.config.opsAllow, client, req)) throw new NotFoundError();
    const r = await deps.readiness();
    sendJson(res, r.ok ? 200 : 503, r);
  },
};

export const metricsRoute: Route = {
  method: 'GET',
  path: /^\/metrics$/,
  handler: async ({ req, res, client, deps }) => {
    if (!opsAllowed(deps.config.opsAllow, client, req)) throw new NotFoundError();
    // Gathered before the status line: a failure (the database unreachable) answers 503, not a cut connection.
    const body = await deps.metrics();
    res.writeHead(200, { 'Content-Type': 'text/plain; version=0.0.4; charset=utf-8', 'Cache-Control': 'no-store' });
    res.end(body);
  },
};

export interface OpsPolicy {
  addresses: net.BlockList;
  /** SHA-256 of each token, so comparisons take the same time whatever the lengths. */
  tokens: Buffer[];
}

const policies = new WeakMap<string[], OpsPolicy>();

/** The parsed FEEDMAIL_OPS_ALLOW list; throws on an entry that is not an address, a CIDR range or a token. */
export function opsPolicy(allow: string[]): OpsPolicy {
  let policy = policies.get(allow);
  if (policy) return policy;
  policy = { addresses: new net.BlockList(), tokens: [] };
  for (const item of allow) {
    if (item.startsWith('token:')) {
      policy.tokens.push(sha256(item.slice('token:'.length)));
      continue;
    }
    const [address, prefix] = item.split('/') as [string, string | undefined];
    const type = net.isIPv4(address) ? 'ipv4' : net.isIPv6(address) ? 'ipv6' : undefined;
    const bits = Number(prefix ?? (type === 'ipv4' ? 32 : 128));
    if (!type || !Number.isInteger(bits) || bits < 0 || bits > (type === 'ipv4' ? 32 : 128)) {
      throw new Error(`FEEDMAIL_OPS_ALLOW: "${item}" is not an IP address, a CIDR range or token:<secret>`);
    }
    policy.addresses.addSubnet(address, bits, type);
  }
  policies.set(allow, policy);
  return policy;
}

/**
 * True when the client may read the operational endpoints: the list is empty
 * (open, as before), the client address (after trusted proxies) is in it, or the
 * request carries `Authorization: Bearer <secret>` for one of its `token:` entries.
 */
export function opsAllowed(allow: string[], client: string, req: IncomingMessage): boolean {
  if (allow.length === 0) return true;
  const policy = opsPolicy(allow);
  const type = net.isIPv4(client) ? 'ipv4' : net.isIPv6(client) ? 'ipv6' : undefined;
  if (type && policy.addresses.check(client, type)) return true;
  const bearer = /^Bearer\s+(\S+)\s*$/i.exec(req.headers.authorization ?? '');
  if (!bearer) return false;
  const given = sha256(bearer[1]!);
  // Every token is compared, so the time taken does not tell which one came close.
  return policy.tokens.reduce((ok, token) => timingSafeEqual(token, given) || ok, false);
}

function sha256(s: string): Buffer {
  return createHash('sha256').update(s).digest();
}
