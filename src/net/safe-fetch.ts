/**
 * The one way feedmail makes an outbound HTTP request to an address someone else chose
 * (WebSub subscribers' callbacks, and the image proxy's fetches: net/image-fetch.ts, which
 * follows redirects itself, one checked request per hop). The host is resolved here, every address it resolves
 * to is checked, and the connection goes to the checked address (a `lookup` that answers
 * it), so a DNS answer that changes between the check and the connect cannot reach a
 * private network. Time and response size are bounded; redirects are never followed.
 */
import { lookup as dnsLookup } from 'node:dns/promises';
import http from 'node:http';
import https from 'node:https';
import net from 'node:net';

/** A URL that names, or resolves to, an address feedmail refuses to connect to. */
export class RefusedAddressError extends Error {
  constructor(message = 'the callback resolves to a loopback, private, link-local or otherwise reserved address') {
    super(message);
    this.name = 'RefusedAddressError';
  }
}

const V4_REFUSED = new net.BlockList();
for (const [prefix, bits] of [
  ['0.0.0.0', 8], ['10.0.0.0', 8], ['100.64.0.0', 10], ['127.0.0.0', 8], ['169.254.0.0', 16], ['172.16.0.0', 12],
  ['192.0.0.0', 24], ['192.0.2.0', 24], ['192.88.99.0', 24], ['192.168.0.0', 16], ['198.18.0.0', 15], ['198.51.100.0', 24],
  ['203.0.113.0', 24], ['224.0.0.0', 4], ['240.0.0.0', 4],
] as const) V4_REFUSED.addSubnet(prefix, bits, 'ipv4');

const V6_REFUSED = new net.BlockList();
for (const [prefix, bits] of [
  // ::/8 (reserved) covers :: (unspecified), ::1 (loopback), the deprecated IPv4-compatible forms
  // and the IPv4-translated ::ffff:0:a.b.c.d (SIIT, which a translator maps to internal IPv4).
  ['::', 8], ['64:ff9b::', 96], ['64:ff9b:1::', 48], ['100::', 64], ['2001::', 23], ['2001:db8::', 32], ['2002::', 16],
  ['fc00::', 7], ['fe80::', 10], ['fec0::', 10], ['ff00::', 8],
] as const) V6_REFUSED.addSubnet(prefix, bits, 'ipv6');

/** The eight 16-bit groups of an IPv6 address (with or without an embedded dotted IPv4 tail). */
function ipv6Groups(address: string): number[] | undefined {
  let a = address.toLowerCase().replace(/%.*$/, '');
  const dotted = /(\d+\.\d+\.\d+\.\d+)$/.exec(a);
  if (dotted) {
    const o = dotted[1]!.split('.').map(Number);
    a = `${a.slice(0, -dotted[1]!.length)}${((o[0]! << 8) | o[1]!).toString(16)}:${((o[2]! << 8) | o[3]!).toString(16)}`;
  }
  const [head, tail] = a.split('::') as [string, string | undefined];
  const h = head ? head.split(':') : [];
  const t = tail === undefined ? [] : tail ? tail.split(':') : [];
  const groups = tail === undefined ? h : [...h, ...Array<string>(8 - h.length - t.length).fill('0'), ...t];
  if (groups.length !== 8) return undefined;
  return groups.map((g) => parseInt(g, 16));
}

/**
 * True for an address feedmail must not connect to on someone else's behalf: loopback,
 * private (RFC 1918, fc00::/7), link-local, multicast, unspecified, CGNAT, documentation,
 * benchmarking and other reserved ranges, and IPv4-mapped or NAT64 forms of them.
 * Anything that does not parse as an address is refused too.
 */
export function isRefusedAddress(address: string): boolean {
  const family = net.isIP(address.replace(/%.*$/, ''));
  if (family === 4) return V4_REFUSED.check(address, 'ipv4');
  if (family !== 6) return true;
  const g = ipv6Groups(address);
  if (!g) return true;
  // ::ffff:a.b.c.d (IPv4-mapped) is the IPv4 address, whichever way it is written.
  if (g.slice(0, 5).every((x) => x === 0) && g[5] === 0xffff) {
    return V4_REFUSED.check(`${g[6]! >> 8}.${g[6]! & 255}.${g[7]! >> 8}.${g[7]! & 255}`, 'ipv4');
  }
  return V6_REFUSED.check(g.map((x) => x.toString(16)).join(':'), 'ipv6');
}

export interface SafeFetchOptions {
  method: 'GET' | 'POST';
  headers?: Record<string, string>;
  body?: Buffer;
  /** Whole request, connect to last byte read. */
  timeoutMs: number;
  /** Bytes of the response body read at most; the rest is not read. */
  maxBytes: number;
  /** Connect to private and loopback addresses too (tests, or a hub for a private network). */
  allowPrivate: boolean;
}

export interface SafeResponse {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: Buffer;
  /** The body was longer than maxBytes and was cut there. */
  truncated: boolean;
}

/** Checks an http(s) URL's host and returns the address to connect to; throws RefusedAddressError. */
export async function checkedAddress(url: URL, allowPrivate: boolean): Promise<{ address: string; family: number }> {
  if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new RefusedAddressError('only http and https URLs are fetched');
  const host = url.hostname.replace(/^\[(.*)\]$/, '$1');
  const literal = net.isIP(host);
  const found = literal ? [{ address: host, family: literal }] : await dnsLookup(host, { all: true, verbatim: true });
  if (found.length === 0) throw new RefusedAddressError('the callback\'s host has no address');
  if (!allowPrivate && found.some((a) => isRefusedAddress(a.address))) throw new RefusedAddressError();
  return found[0]!;
}

/** One request to `target`, to the address checked just before it; see the module comment. */
export async function safeFetch(target: string, options: SafeFetchOptions): Promise<SafeResponse> {
  const url = new URL(target);
  const pinned = await checkedAddress(url, options.allowPrivate);
  const lookup = (_host: string, opts: { all?: boolean }, cb: (...args: unknown[]) => void): void => {
    if (opts.all) cb(null, [pinned]);
    else cb(null, pinned.address, pinned.family);
  };
  const client = url.protocol === 'https:' ? https : http;
  return new Promise<SafeResponse>((resolve, reject) => {
    const req = client.request(url, {
      method: options.method,
      headers: { 'User-Agent': 'feedmail-websub', ...options.headers, ...(options.body ? { 'Content-Length': String(options.body.length) } : {}) },
      lookup: lookup as unknown as net.LookupFunction,
      timeout: options.timeoutMs,
      signal: AbortSignal.timeout(options.timeoutMs),
      agent: false,
    }, (res) => {
      const chunks: Buffer[] = [];
      let size = 0;
      let truncated = false;
      res.on('data', (chunk: Buffer) => {
        if (truncated) return;
        const room = options.maxBytes - size;
        if (chunk.length > room) {
          chunks.push(chunk.subarray(0, room));
          size += room;
          truncated = true;
          resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks), truncated });
          res.destroy();
          return;
        }
        chunks.push(chunk);
        size += chunk.length;
      });
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks), truncated }));
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new Error(`no answer within ${options.timeoutMs} ms`)));
    req.on('error', reject);
    req.end(options.body);
  });
}
