/**
 * The image proxy (issue 11): what rewriting image URLs costs where entries are shown, and
 * what a proxied image costs. With the proxy on and off (two servers, same mail):
 * (a) proxiedImages alone over every HTML body of the newsletter corpus;
 * (b) GET of an entry body document (rendered on every request);
 * (c) the first GET of a feed document (rendered) and later GETs (from cache.db);
 * (d) with the proxy on, a proxied image no mail named: the first GET (fetched from a local
 *     image server) and later GETs (from cache.db).
 * Writes bench/results/image-proxy-<date>.txt.
 *
 *   node --import tsx bench/image-proxy.ts [--entries 50] [--images 30] [--reads 200]
 */
import fs from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { processMessage } from '../src/mail/process.js';
import { imageSignerFor, ImageSigner } from '../src/web/image-proxy.js';
import { proxiedImages } from '../src/web/presenters.js';
import { Urls } from '../src/web/urls.js';
import { readCorpus, solidPng } from '../test/support/fidelity.js';
import { createFeed, sendRaw, startTestServer, waitFor, waitForEntries } from '../test/support/helpers.js';
import { numberArg } from './args.js';

const entries = numberArg('entries', 50);
const imagesPerEntry = numberArg('images', 30);
const reads = numberArg('reads', 200);

const lines: string[] = [];
function out(line = ''): void {
  lines.push(line);
  process.stdout.write(`${line}\n`);
}

function stats(ms: number[]): string {
  const s = [...ms].sort((a, b) => a - b);
  const at = (q: number) => s[Math.min(s.length - 1, Math.floor(q * s.length))]!.toFixed(2);
  return `median ${at(0.5)} ms, p99 ${at(0.99)} ms, max ${s[s.length - 1]!.toFixed(2)} ms (n=${s.length})`;
}

async function timed(url: string): Promise<number> {
  const t = performance.now();
  const res = await fetch(url, { headers: { 'Accept-Encoding': 'gzip' } });
  await res.arrayBuffer();
  if (res.status !== 200) throw new Error(`${url} answered ${res.status}`);
  return performance.now() - t;
}

const png = solidPng(600, 300, [120, 140, 160]);
let imageRequests = 0;
const imageServer = http.createServer((_req, res) => {
  imageRequests++;
  res.writeHead(200, { 'Content-Type': 'image/png' });
  res.end(png);
});
await new Promise<void>((r) => imageServer.listen(0, '127.0.0.1', r));
const imageBase = `http://127.0.0.1:${(imageServer.address() as AddressInfo).port}`;

out(`image proxy bench ${new Date().toISOString()}, Node ${process.version}: ${entries} entries of ${imagesPerEntry} images each, ${reads} reads`);

// (a) The rewrite alone over real newsletters.
const urls = new Urls('https://feeds.example', new ImageSigner(Buffer.alloc(32, 1)));
const corpus = readCorpus();
let bytes = 0;
let images = 0;
const perBody: number[] = [];
for (const entry of corpus) {
  // The stored form: the message processed as at ingest (parsed, sanitized), images still the sender's.
  const html = (await processMessage(fs.readFileSync(entry.path), { maxPartBytes: 10_000_000, keepTrackingPixels: false })).html;
  bytes += html.length;
  images += (proxiedImages(html, urls).match(/\/img\//g) ?? []).length;
  for (let i = 0; i < 20; i++) {
    const t = performance.now();
    proxiedImages(html, urls);
    perBody.push(performance.now() - t);
  }
}
out(`(a) proxiedImages over ${corpus.length} corpus messages (${(bytes / 1024).toFixed(0)} KiB, sanitized as stored; ${images} remote image references), 20 passes each: ${stats(perBody)}`);

function message(to: string, n: number): string {
  const imgs = Array.from({ length: imagesPerEntry }, (_, i) => `<img src="${imageBase}/e${n}/i${i}.png" width="600" height="300" alt="">`).join('\n');
  return [
    'From: Bench <bench@images.example>', `To: ${to}`, `Subject: Entry ${n}`, `Message-ID: <bench-${n}@images.example>`,
    'MIME-Version: 1.0', 'Content-Type: text/html; charset=utf-8', '',
    `<html><body><p>Entry ${n}</p><div style="background-image:url('${imageBase}/bg${n}.png')">x</div>${imgs}</body></html>`, '',
  ].join('\r\n');
}

// Both servers run at once and are read in turns, so load from elsewhere on the machine falls on both alike.
const servers = await Promise.all(['false', 'true'].map((proxy) => startTestServer({ imageProxy: proxy, imageProxyAllowPrivate: 'true', feedEntryMaxBytes: '1m' })));
try {
  const setups = [];
  for (const server of servers) {
    const feed = await createFeed(server.base, 'bench');
    for (let n = 0; n < entries; n++) await sendRaw(server.smtpPort, feed.address, message(feed.address, n));
    // Waited for in JSON, so the Atom document is first rendered by the GET measured below.
    const items = await waitForEntries(feed.feeds.json, 'json', entries, 120_000);
    setups.push({ server, feed, items, body: [] as number[], first: 0, cached: [] as number[] });
  }
  // The proxy-on server fetches every image at processing (jobs/tasks/prefetch-images.ts): let that finish first.
  await waitFor(async () => imageRequests >= entries * (imagesPerEntry + 1), 120_000, 'the image prefetch');
  out(`images fetched at processing by the proxy-on server: ${imageRequests}`);
  for (const s of setups) s.first = await timed(s.feed.feeds.atom);
  for (let i = 0; i < reads; i++) {
    for (const s of setups) {
      s.body.push(await timed(`${s.items[i % s.items.length]!.link}/body`));
      s.cached.push(await timed(s.feed.feeds.atom));
    }
  }
  for (const [i, s] of setups.entries()) {
    out();
    out(`proxy ${i === 1 ? 'on' : 'off'}:`);
    out(`(b) entry body document: ${stats(s.body)}`);
    out(`(c) Atom document of ${entries} entries: first GET (rendered) ${s.first.toFixed(2)} ms; cached ${stats(s.cached)}`);
  }
  const { server } = setups[1]!;
  // Images no mail named, so the first GET is a fetch.
  const signer = (await imageSignerFor(server.app.stores.app, server.app.config))!;
  const proxied = Array.from({ length: reads }, (_, i) => `${server.base}/img/${signer.path(`${imageBase}/fresh/${i}.png`)}`);
  const misses: number[] = [];
  for (const u of proxied) misses.push(await timed(u));
  const hits: number[] = [];
  for (const u of proxied) hits.push(await timed(u));
  out(`(d) proxied ${png.length}-byte PNG: first GET (fetched) ${stats(misses)}; again (cache.db) ${stats(hits)}`);
} finally {
  await Promise.all(servers.map((s) => s.stop()));
}
imageServer.close();

const file = new URL(`./results/image-proxy-${new Date().toISOString().slice(0, 10)}.txt`, import.meta.url);
fs.writeFileSync(file, `${lines.join('\n')}\n`);
out(`written to ${file.pathname}`);
