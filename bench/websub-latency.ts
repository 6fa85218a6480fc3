/**
 * WebSub delivery latency through the real servers: a subscriber on 127.0.0.1 subscribes to
 * a feed (FEEDMAIL_WEBSUB_ALLOW_PRIVATE=true), then messages are mailed over SMTP one at a
 * time and the time from the start of each SMTP session (an upper bound on "from the 250")
 * to the signed delivery reaching the subscriber is measured. Issue 11's target: within 5 s.
 * Each delivery's X-Hub-Signature is checked. Writes bench/results/websub-latency-<date>.txt.
 *
 *   node --import tsx bench/websub-latency.ts [--messages 30] [--subscribers 3]
 */
import { createHmac } from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import { fileURLToPath } from 'node:url';
import { createFeed, startTestServer } from '../test/support/helpers.js';
import { message, sendOne } from '../test/support/intake.js';
import { numberArg } from './args.js';

const messages = numberArg('messages', 30);
const subscribers = numberArg('subscribers', 3);
const SECRET = 'bench secret';

const lines: string[] = [];
function out(line = ''): void {
  lines.push(line);
  process.stdout.write(`${line}\n`);
}

const arrivals: { at: number; subject: string; signed: boolean }[] = [];
const srv = http.createServer((req, res) => {
  const chunks: Buffer[] = [];
  req.on('data', (c: Buffer) => chunks.push(c));
  req.on('end', () => {
    const url = new URL(req.url ?? '/', 'http://x');
    if (req.method === 'GET') {
      res.end(url.searchParams.get('hub.challenge') ?? '');
      return;
    }
    const body = Buffer.concat(chunks);
    const signed = req.headers['x-hub-signature'] === `sha256=${createHmac('sha256', SECRET).update(body).digest('hex')}`;
    const subject = /<title type="text">(Bench message \d+)<\/title>/.exec(body.toString())?.[1] ?? '';
    arrivals.push({ at: performance.now(), subject: `${url.pathname} ${subject}`, signed });
    res.writeHead(204);
    res.end();
  });
});
await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
const port = (srv.address() as AddressInfo).port;

const server = await startTestServer({ websubAllowPrivate: 'true' });
try {
  const feed = await createFeed(server.base, 'bench');
  for (let s = 0; s < subscribers; s++) {
    const r = await fetch(`${server.base}/websub`, {
      method: 'POST', headers: { 'Content-Type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({ 'hub.mode': 'subscribe', 'hub.topic': feed.feeds.atom, 'hub.callback': `http://127.0.0.1:${port}/s${s}`, 'hub.secret': SECRET }),
    });
    if (r.status !== 202) throw new Error(`subscribe answered ${r.status}`);
  }
  const id = (await server.app.stores.app.feedByFeedToken(feed.feeds.atom.split('/feeds/')[1]!.split('.')[0]!))!.id;
  while ((await server.app.stores.app.websubSubscriptionsOfFeed(id)).length < subscribers) await new Promise((r) => setTimeout(r, 20));

  const latencies: number[] = [];
  let unsigned = 0;
  for (let i = 0; i < messages; i++) {
    const subject = `Bench message ${i}`;
    const started = performance.now();
    await sendOne(server.smtpPort, 'letters@news.example', feed.address, message({ From: 'letters@news.example', Subject: subject }, `Body ${i}.`));
    for (let s = 0; s < subscribers; s++) {
      const key = `/s${s} ${subject}`;
      let hit;
      while (!(hit = arrivals.find((a) => a.subject === key))) {
        if (performance.now() - started > 30_000) throw new Error(`no delivery of ${key} within 30 s`);
        await new Promise((r) => setTimeout(r, 5));
      }
      if (!hit.signed) unsigned++;
      latencies.push(hit.at - started);
    }
  }
  latencies.sort((a, b) => a - b);
  const pct = (p: number) => latencies[Math.min(latencies.length - 1, Math.floor(p * latencies.length))]!.toFixed(0);
  out(`websub-latency ${new Date().toISOString()} node ${process.version} ${os.cpus().length} cpus`);
  out(`${messages} messages, ${subscribers} subscribers, ${latencies.length} deliveries, ${unsigned} with a wrong signature`);
  out(`SMTP session start to delivery received, ms: p50 ${pct(0.5)}  p95 ${pct(0.95)}  max ${latencies.at(-1)!.toFixed(0)}  (target: 5000)`);
} finally {
  await server.stop();
  srv.closeAllConnections();
  srv.close();
}
const dir = fileURLToPath(new URL('./results/', import.meta.url));
fs.writeFileSync(`${dir}websub-latency-${new Date().toISOString().slice(0, 10)}.txt`, `${lines.join('\n')}\n`);
