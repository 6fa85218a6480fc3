/**
 * A small keep-alive HTTP/1.1 load generator over raw sockets: C connections, each sending
 * one request at a time (no pipelining) for D seconds, requests taken in turn from a list.
 * Responses are read by their Content-Length (a 304, 204 or HEAD answer has no body); a
 * chunked response counts as an error (feedmail and the bare server always send a length).
 * Far cheaper per request than node:http's client, so the ceiling it measures is the
 * server's rather than its own; `bench/run.ts` still reports it against a bare server with
 * the same generator, so whatever the generator costs is in both figures.
 *
 * In-process: `runLoad(options)`. As a separate process (what `bench/run.ts` does):
 *   node --import tsx bench/lib/http-load.ts '<LoadOptions as JSON>' | @<file of it>   → prints a LoadResult as JSON
 */
import fs from 'node:fs';
import net from 'node:net';
import { pathToFileURL } from 'node:url';

export interface LoadRequest {
  method?: string;
  path: string;
  headers?: Record<string, string>;
}

export interface LoadOptions {
  port: number;
  host?: string;
  requests: LoadRequest[];
  connections: number;
  seconds: number;
  /** Seconds of load whose responses are not counted, after the connections are open. */
  warmupSeconds?: number;
}

export interface LoadResult {
  requests: number;
  errors: number;
  seconds: number;
  perSecond: number;
  p50: number;
  p90: number;
  p99: number;
  max: number;
  /** Response body bytes per request, on average. */
  bodyBytes: number;
  statuses: Record<string, number>;
}

export function percentile(sorted: ArrayLike<number>, p: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
}

/** The median (the mean of the two middle values for an even count). */
export function median(values: number[]): number {
  const s = [...values].sort((a, b) => a - b);
  if (s.length === 0) return NaN;
  const mid = s.length >> 1;
  return s.length % 2 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
}

function encode(r: LoadRequest, host: string): Buffer {
  const lines = [`${r.method ?? 'GET'} ${r.path} HTTP/1.1`, `Host: ${host}`, 'Connection: keep-alive'];
  for (const [k, v] of Object.entries(r.headers ?? {})) lines.push(`${k}: ${v}`);
  return Buffer.from(`${lines.join('\r\n')}\r\n\r\n`, 'latin1');
}

const HEADER_END = Buffer.from('\r\n\r\n');

export async function runLoad(o: LoadOptions): Promise<LoadResult> {
  const host = o.host ?? '127.0.0.1';
  const encoded = o.requests.map((r) => encode(r, `${host}:${o.port}`));
  const heads = o.requests.map((r) => (r.method ?? 'GET') === 'HEAD');
  let latencies = new Float64Array(1 << 16);
  let count = 0;
  let errors = 0;
  let bodyBytes = 0;
  const statuses: Record<string, number> = {};
  let next = 0;
  let counting = false;
  let stopped = false;
  const record = (ms: number) => {
    if (count === latencies.length) {
      const bigger = new Float64Array(latencies.length * 2);
      bigger.set(latencies);
      latencies = bigger;
    }
    latencies[count++] = ms;
  };

  const sockets = new Set<net.Socket>();
  const connection = () => new Promise<void>((resolve) => {
    const socket = net.connect(o.port, host);
    sockets.add(socket);
    socket.setNoDelay(true);
    let head: Buffer | null = null;
    let remaining = -1;
    let started = 0;
    let isHead = false;
    const send = () => {
      if (stopped) {
        socket.end();
        return;
      }
      const i = next++ % encoded.length;
      isHead = heads[i]!;
      head = null;
      remaining = -1;
      started = performance.now();
      socket.write(encoded[i]!);
    };
    const done = (status: number, bytes: number) => {
      if (counting) {
        record(performance.now() - started);
        statuses[status] = (statuses[status] ?? 0) + 1;
        bodyBytes += bytes;
        if (status >= 400) errors++;
      }
      send();
    };
    let status = 0;
    let length = 0;
    socket.on('data', (chunk: Buffer) => {
      if (remaining < 0) {
        head = head ? Buffer.concat([head, chunk]) : chunk;
        const end = head.indexOf(HEADER_END);
        if (end < 0) return;
        const text = head.subarray(0, end).toString('latin1');
        status = Number(text.slice(9, 12));
        const m = /\r\ncontent-length:\s*(\d+)/i.exec(text);
        if (!m && !(status === 304 || status === 204 || isHead)) {
          errors++;
          socket.destroy();
          return;
        }
        length = status === 304 || status === 204 || isHead ? 0 : Number(m![1]);
        remaining = length - (head.length - end - 4);
        head = null;
      } else {
        remaining -= chunk.length;
      }
      if (remaining <= 0) done(status, length);
    });
    socket.on('error', () => undefined);
    // A connection the server closed while the load runs is counted as an error and opened again.
    socket.on('close', () => {
      sockets.delete(socket);
      if (stopped) return resolve();
      errors++;
      setTimeout(() => connection().then(resolve), 10);
    });
    socket.on('connect', send);
  });

  const all = Array.from({ length: o.connections }, connection);
  await new Promise((r) => setTimeout(r, (o.warmupSeconds ?? 0) * 1000));
  counting = true;
  const t0 = performance.now();
  await new Promise((r) => setTimeout(r, o.seconds * 1000));
  counting = false;
  const seconds = (performance.now() - t0) / 1000;
  stopped = true;
  // A response still outstanding after 10 s is not waited for.
  const giveUp = setTimeout(() => { for (const s of sockets) s.destroy(); }, 10_000);
  await Promise.all(all);
  clearTimeout(giveUp);
  const sorted = latencies.subarray(0, count).sort();
  return {
    requests: count, errors, seconds, perSecond: count / seconds,
    p50: percentile(sorted, 50), p90: percentile(sorted, 90), p99: percentile(sorted, 99), max: count ? sorted[count - 1]! : NaN,
    bodyBytes: count ? bodyBytes / count : 0, statuses,
  };
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  // `@file`: the options in a file, for request lists too long for a command line.
  const arg = process.argv[2]!;
  const result = await runLoad(JSON.parse(arg.startsWith('@') ? fs.readFileSync(arg.slice(1), 'utf8') : arg) as LoadOptions);
  process.stdout.write(`${JSON.stringify(result)}\n`);
}
