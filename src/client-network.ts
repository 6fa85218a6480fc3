/**
 * The network a client address belongs to, for limits: one host rarely owns a
 * single IPv4 address only, and an IPv6 host is handed a whole /64, so limits
 * keyed on the exact address would be as many limits as the sender likes.
 */
import net from 'node:net';

/** `a.b.c.0/24` for IPv4 (and IPv4-mapped IPv6), the first four groups `/64` for IPv6, else the input. */
export function clientNetwork(address: string): string {
  const ip = address.startsWith('::ffff:') && net.isIPv4(address.slice(7)) ? address.slice(7) : address;
  if (net.isIPv4(ip)) return `${ip.split('.').slice(0, 3).join('.')}.0/24`;
  if (!net.isIPv6(ip)) return ip;
  return `${expandIPv6(ip).slice(0, 4).join(':')}::/64`;
}

/** The eight groups of an IPv6 address, lowercase and without leading zeros. */
function expandIPv6(ip: string): string[] {
  const [head, tail] = ip.split('%')[0]!.split('::') as [string, string | undefined];
  const left = head ? head.split(':') : [];
  const right = tail ? tail.split(':') : [];
  // An embedded IPv4 tail (::ffff:1.2.3.4 forms other than the mapped one) counts as two groups.
  const last = right.length ? right : left;
  if (last.length && net.isIPv4(last[last.length - 1]!)) {
    const [a, b, c, d] = last.pop()!.split('.').map(Number) as [number, number, number, number];
    last.push(((a << 8) | b).toString(16), ((c << 8) | d).toString(16));
  }
  const missing = tail === undefined ? 0 : 8 - left.length - right.length;
  return [...left, ...Array<string>(missing).fill('0'), ...right].map((g) => parseInt(g || '0', 16).toString(16));
}
