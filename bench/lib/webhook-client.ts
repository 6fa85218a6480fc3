/**
 * The webhook load client: POSTs every message file of a directory to `/inbound/raw?to=<address>`,
 * signed as a relay would (X-Feedmail-Timestamp, X-Feedmail-Signature), over C keep-alive
 * connections (message i on connection i % C), and times each request to its response.
 * Against the bare server (bench/lib/bare-http.ts) the signature is sent and ignored.
 *
 *   node --import tsx bench/lib/webhook-client.ts '{"port":N,"secret":"…","dir":"…","connections":8,"to":"…"}'
 */
import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { signRawDelivery } from '../../src/mail/webhooks/raw.js';
import { percentile } from './http-load.js';

const o = JSON.parse(process.argv[2]!) as { port: number; secret: string; dir: string; connections: number; to: string };
const bodies = fs.readdirSync(o.dir).sort().map((n) => fs.readFileSync(path.join(o.dir, n)));
const target = `/inbound/raw?to=${encodeURIComponent(o.to)}`;
const agent = new http.Agent({ keepAlive: true, maxSockets: o.connections });

function post(body: Buffer): Promise<number> {
  const timestamp = Math.floor(Date.now() / 1000);
  const signature = signRawDelivery(o.secret, { timestamp, method: 'POST', target, body });
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port: o.port, method: 'POST', path: target, agent, headers: {
      'Content-Type': 'message/rfc822', 'Content-Length': String(body.length), 'X-Feedmail-Timestamp': String(timestamp), 'X-Feedmail-Signature': signature,
    } }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode ?? 0));
    });
    req.on('error', reject);
    req.end(body);
  });
}

const latencies: number[] = [];
let errors = 0;
const errorSamples: string[] = [];
let lastAck = 0;
const t0 = performance.now();
await Promise.all(Array.from({ length: o.connections }, async (_, c) => {
  for (let i = c; i < bodies.length; i += o.connections) {
    const s = performance.now();
    try {
      const status = await post(bodies[i]!);
      if (status >= 300) {
        errors++;
        if (errorSamples.length < 3) errorSamples.push(`HTTP ${status}`);
        continue;
      }
    } catch (err) {
      errors++;
      if (errorSamples.length < 3) errorSamples.push(String(err).slice(0, 200));
      continue;
    }
    latencies.push(performance.now() - s);
    lastAck = Date.now();
  }
}));
const seconds = (performance.now() - t0) / 1000;
agent.destroy();
latencies.sort((a, b) => a - b);
process.stdout.write(`${JSON.stringify({
  sent: bodies.length, acknowledged: latencies.length, errors, errorSamples, seconds, perSecond: latencies.length / seconds,
  p50: percentile(latencies, 50), p99: percentile(latencies, 99), max: latencies.at(-1) ?? null, lastAckEpochMs: lastAck,
})}\n`);
