/**
 * The image proxy (issue 11, acceptance 3): a newsletter's remote images reach the reader
 * from feedmail only, fetched by feedmail when the mail is processed, not when it is read.
 * A real image server on 127.0.0.1 counts every request it gets; mail goes over real SMTP;
 * the entry is opened in real Chromium, which records every request of the page and its
 * frames.
 */
import assert from 'node:assert/strict';
import http from 'node:http';
import net, { type AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import type { Browser } from 'playwright-core';
import { MAX_REDIRECTS, sniffImageType } from '../src/net/image-fetch.js';
import { isRefusedAddress } from '../src/net/safe-fetch.js';
import { imageSignerFor, ImageSigner } from '../src/web/image-proxy.js';
import { IMAGE_WRITE_IDLE_MS, MAX_CONCURRENT_FETCHES, MAX_FETCHES_PER_HOST, MAX_WAITING_PER_HOST } from '../src/web/routes/image.js';
import { proxiedImages, remoteImageUrls } from '../src/web/presenters.js';
import { Urls } from '../src/web/urls.js';
import { launchChromium } from './support/browser.js';
import { solidPng } from './support/fidelity.js';
import { TestClock } from './support/clock.js';
import { createFeed, openTestStores, readFeed, sendRaw, startTestServer, tempDir, waitFor, waitForEntries, type TestServer } from './support/helpers.js';

interface Hit {
  path: string;
  userAgent: string;
  referer?: string;
  cookie?: string;
}

/** An image server on 127.0.0.1 that answers a fixed set of paths and remembers every request. */
class ImageServer {
  readonly hits: Hit[] = [];
  readonly server: http.Server;
  base = '';

  constructor(readonly files: Record<string, { type: string; body: Buffer; status?: number; location?: string }>) {
    this.server = http.createServer((req, res) => {
      const path = (req.url ?? '/').split('?')[0]!;
      this.hits.push({ path, userAgent: String(req.headers['user-agent'] ?? ''), referer: req.headers.referer, cookie: req.headers.cookie });
      const file = this.files[path];
      if (!file) {
        res.writeHead(404).end();
        return;
      }
      res.writeHead(file.status ?? 200, { 'Content-Type': file.type, ...(file.location ? { Location: file.location } : {}) });
      res.end(file.body);
    });
  }

  async start(): Promise<void> {
    await new Promise<void>((r) => this.server.listen(0, '127.0.0.1', r));
    this.base = `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
  }

  count(path: string): number {
    return this.hits.filter((h) => h.path === path).length;
  }

  stop(): Promise<void> {
    this.server.closeAllConnections();
    return new Promise((r) => this.server.close(() => r()));
  }
}

/** `server` listening on port 0 of `host` (a loopback address: 127.0.0.x are distinct hosts to the proxy). */
async function listening(server: http.Server, host: string): Promise<{ base: string; stop: () => Promise<void> }> {
  await new Promise<void>((r) => server.listen(0, host, r));
  return {
    base: `http://${host}:${(server.address() as AddressInfo).port}`,
    stop: () => {
      server.closeAllConnections();
      return new Promise((r) => server.close(() => r()));
    },
  };
}

const PNG = solidPng(40, 30, [200, 30, 30]);
const BACKGROUND = solidPng(20, 20, [30, 30, 200]);
const AFTER_REDIRECT = solidPng(24, 18, [30, 160, 30]);
const SVG = Buffer.from('<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"><script>alert(1)</script></svg>');
const HTML_AS_PNG = Buffer.from('<!doctype html><h1>not an image</h1><script>alert(1)</script>');
/** A real PNG over the 2 KiB bound the test servers set. */
const OVERSIZE = Buffer.concat([solidPng(8, 8, [0, 0, 0]), Buffer.alloc(4096, 7)]);

function newsletter(to: string, imageBase: string): string {
  return [
    'From: Images Weekly <news@images.example>',
    `To: ${to}`,
    'Subject: Pictures inside',
    'Message-ID: <images-1@images.example>',
    'Date: Fri, 27 Nov 2026 00:00:00 +0000',
    'MIME-Version: 1.0',
    'Content-Type: text/html; charset=utf-8',
    '',
    '<html><head><style>.hero { background-image: url("' + imageBase + '/style-block.png"); width: 20px; height: 20px; }</style></head><body>',
    '<p>Our pictures this week.</p>',
    `<img id="png" src="${imageBase}/photo.png" width="40" height="30" alt="a png">`,
    `<img id="jpeg" src="${imageBase}/photo.jpg" width="5" height="4" alt="a jpeg">`,
    `<img id="moved" src="${imageBase}/moved.png" width="24" height="18" alt="moved">`,
    `<div id="bg" style="background-image: url('${imageBase}/background.png'); width: 20px; height: 20px"></div>`,
    '<div class="hero"></div>',
    `<img id="svg" src="${imageBase}/drawing.svg" width="10" height="10" alt="svg">`,
    `<img id="fake" src="${imageBase}/fake.png" width="10" height="10" alt="html as png">`,
    `<img id="big" src="${imageBase}/big.png" width="8" height="8" alt="too big">`,
    '</body></html>',
    '',
  ].join('\r\n');
}

async function status(url: string): Promise<number> {
  const res = await fetch(url);
  await res.arrayBuffer();
  return res.status;
}

/** The first proxied URL in a feed entry's HTML whose target ends with `path`. */
function proxiedUrlOf(html: string, base: string, path: string): string {
  for (const m of html.matchAll(/\/img\/([A-Za-z0-9_-]+)\/([A-Za-z0-9_-]+)/g)) {
    if (Buffer.from(m[2]!, 'base64url').toString().endsWith(path)) return `${base}${m[0]}`;
  }
  throw new Error(`no proxied URL for ${path}`);
}

describe('image proxy', () => {
  let images: ImageServer;
  let server: TestServer;
  let browser: Browser;
  let entryUrl = '';
  let feedUrls: { atom: string; rss: string; json: string };

  before(async () => {
    browser = await launchChromium();
    // The JPEG is made by the browser, so it is one a browser decodes.
    const page = await browser.newPage();
    const jpegDataUrl = await page.evaluate(() => {
      const c = document.createElement('canvas');
      c.width = 5;
      c.height = 4;
      const g = c.getContext('2d')!;
      g.fillStyle = '#c08020';
      g.fillRect(0, 0, 5, 4);
      return c.toDataURL('image/jpeg');
    });
    await page.close();
    images = new ImageServer({
      '/photo.png': { type: 'image/png', body: PNG },
      '/photo.jpg': { type: 'image/jpeg', body: Buffer.from(jpegDataUrl.split(',')[1]!, 'base64') },
      '/moved.png': { type: 'text/html', body: Buffer.alloc(0), status: 302, location: '/after-redirect.png' },
      '/after-redirect.png': { type: 'image/png', body: AFTER_REDIRECT },
      '/background.png': { type: 'image/png', body: BACKGROUND },
      '/style-block.png': { type: 'image/png', body: BACKGROUND },
      '/drawing.svg': { type: 'image/svg+xml', body: SVG },
      '/fake.png': { type: 'image/png', body: HTML_AS_PNG },
      '/big.png': { type: 'image/png', body: OVERSIZE },
      '/together.png': { type: 'image/png', body: PNG },
      '/fresh.png': { type: 'image/png', body: PNG },
      '/private.png': { type: 'image/png', body: PNG },
      '/loop.png': { type: 'text/html', body: Buffer.alloc(0), status: 302, location: '/loop.png' },
    });
    await images.start();
    server = await startTestServer({ imageProxyAllowPrivate: 'true', imageProxyMaxBytes: '2k' });
    const feed = await createFeed(server.base, 'Images');
    feedUrls = feed.feeds;
    const info = await sendRaw(server.smtpPort, feed.address, newsletter(feed.address, images.base));
    assert.match(info.response, /^250 /);
    const [entry] = await waitForEntries(feed.feeds.json, 'json', 1, 10_000);
    entryUrl = entry!.link;
  });

  after(async () => {
    await browser?.close();
    await server?.stop();
    await images?.stop();
  });

  it('fetches a stored newsletter\'s images once, at processing, before anyone views them', async () => {
    const fetched = ['/photo.png', '/photo.jpg', '/moved.png', '/after-redirect.png', '/background.png', '/style-block.png', '/drawing.svg', '/fake.png', '/big.png'];
    await waitFor(async () => fetched.every((path) => images.count(path) === 1), 10_000, 'the prefetch');
    assert.deepEqual(images.hits.map((h) => h.path).sort(), [...fetched].sort());
  });

  it('feed documents carry absolute proxied URLs, never the sender\'s', async () => {
    for (const format of ['atom', 'rss', 'json'] as const) {
      const [item] = await readFeed(feedUrls[format], format);
      assert.ok(item, format);
      assert.ok(!item.html.includes(images.base), `${format} names the image server: ${item.html.slice(0, 500)}`);
      for (const path of ['/photo.png', '/photo.jpg', '/moved.png', '/background.png']) {
        assert.match(proxiedUrlOf(item.html, server.base, path), new RegExp(`^${server.base}/img/`), `${format} ${path}`);
      }
    }
  });

  it('concurrent first requests for one image fetch it once', async () => {
    const signer = (await imageSignerFor(server.app.stores.app, server.app.config))!;
    const url = `${server.base}/img/${signer.path(`${images.base}/together.png`)}`;
    const answers = await Promise.all(Array.from({ length: 6 }, () => fetch(url).then(async (r) => ({ status: r.status, bytes: Buffer.from(await r.arrayBuffer()) }))));
    for (const a of answers) {
      assert.equal(a.status, 200);
      assert.deepEqual(a.bytes, PNG);
    }
    assert.equal(images.count('/together.png'), 1);
  });

  it('an entry opened in Chromium loads its images from feedmail only, and shows them', async () => {
    const own = new URL(server.base).origin;
    const context = await browser.newContext();
    const requested: string[] = [];
    context.on('request', (req) => requested.push(req.url()));
    // Anything not for feedmail is recorded above and goes no further.
    await context.route('**/*', (route) => (new URL(route.request().url()).origin === own ? route.continue() : route.abort('blockedbyclient')));
    const page = await context.newPage();
    await page.goto(entryUrl, { waitUntil: 'load' });
    // The body may load images from feedmail only, whatever the rewrite might have missed.
    const csp = (await fetch(`${entryUrl}/body`)).headers.get('content-security-policy') ?? '';
    assert.match(csp, /img-src 'self' data:(;|$)/);
    assert.doesNotMatch(csp, /https?:/);
    const frame = await waitFor(async () => page.frames().find((f) => f.url().endsWith('/body')), 5000, 'the body frame');
    await frame.waitForLoadState('load');
    const sizes = await frame.evaluate(() => Object.fromEntries([...document.querySelectorAll('img')].map((i) => [i.id, (i as HTMLImageElement).naturalWidth])));
    assert.equal(sizes.png, 40);
    assert.equal(sizes.jpeg, 5);
    assert.equal(sizes.moved, 24);
    assert.equal(sizes.svg, 0, 'SVG is refused');
    assert.equal(sizes.fake, 0, 'HTML served as image/png is refused');
    assert.equal(sizes.big, 0, 'an image over the size bound is refused');
    const backgrounds = await frame.evaluate(() => [getComputedStyle(document.getElementById('bg')!).backgroundImage, getComputedStyle(document.querySelector('.hero')!).backgroundImage]);
    for (const b of backgrounds) assert.ok(b.includes(`${server.base}/img/`), b);

    const foreign = requested.filter((u) => !u.startsWith(`${own}/`) && !u.startsWith('data:'));
    assert.deepEqual(foreign, [], 'requests to hosts other than feedmail');
    assert.ok(requested.some((u) => u.startsWith(`${own}/img/`)), 'the images came through the proxy');

    // The image server saw feedmail only (at processing): no browser, no cookie, no referrer.
    for (const h of images.hits) {
      assert.match(h.userAgent, /feedmail image proxy/);
      assert.equal(h.referer, undefined);
      assert.equal(h.cookie, undefined);
    }
    for (const path of ['/photo.png', '/photo.jpg', '/moved.png', '/after-redirect.png', '/background.png', '/style-block.png', '/drawing.svg', '/fake.png', '/big.png']) {
      assert.equal(images.count(path), 1, path);
    }

    // A second view is served from feedmail's cache, failures included.
    const before = images.hits.length;
    const again = await context.newPage();
    await again.goto(entryUrl, { waitUntil: 'load' });
    const frame2 = await waitFor(async () => again.frames().find((f) => f.url().endsWith('/body')), 5000, 'the body frame');
    await frame2.waitForLoadState('load');
    assert.equal(await frame2.evaluate(() => (document.getElementById('png') as HTMLImageElement).naturalWidth), 40);
    assert.equal(images.hits.length, before, 'the second view fetched nothing');
    await context.close();
  });

  it('serves images with safe headers, and refuses what is not a raster image', async () => {
    const [item] = await readFeed(feedUrls.json, 'json');
    const res = await fetch(proxiedUrlOf(item!.html, server.base, '/photo.png'));
    assert.equal(res.status, 200);
    assert.equal(res.headers.get('content-type'), 'image/png');
    assert.equal(res.headers.get('x-content-type-options'), 'nosniff');
    assert.equal(res.headers.get('cross-origin-resource-policy'), 'cross-origin');
    assert.match(res.headers.get('content-security-policy') ?? '', /sandbox/);
    assert.match(res.headers.get('cache-control') ?? '', /max-age=\d{6,}/);
    assert.deepEqual(Buffer.from(await res.arrayBuffer()), PNG);
    for (const path of ['/drawing.svg', '/fake.png', '/big.png']) {
      assert.equal(await status(proxiedUrlOf(item!.html, server.base, path)), 404, path);
    }
  });

  it('runs at most a few fetches at once, whatever a page asks for', async () => {
    // Image servers on six loopback addresses (six hosts) that hold every answer until told, and count requests open at once.
    let open = 0;
    let peak = 0;
    const held: (() => void)[] = [];
    const handler: http.RequestListener = (_req, res) => {
      open++;
      peak = Math.max(peak, open);
      held.push(() => {
        open--;
        res.writeHead(200, { 'Content-Type': 'image/png' }).end(PNG);
      });
    };
    const slow = await Promise.all([1, 2, 3, 4, 5, 6].map((i) => listening(http.createServer(handler), `127.0.0.${i}`)));
    const total = MAX_CONCURRENT_FETCHES + 4;
    try {
      const signer = (await imageSignerFor(server.app.stores.app, server.app.config))!;
      const answers = Array.from({ length: total }, (_, i) => status(`${server.base}/img/${signer.path(`${slow[i % slow.length]!.base}/slow/${i}.png`)}`));
      await waitFor(async () => held.length >= MAX_CONCURRENT_FETCHES, 5000, 'the first fetches');
      // Let them finish one by one; each frees a place for one waiting fetch.
      let served = 0;
      while (served < total) {
        await waitFor(async () => held.length > 0, 5000, 'a held fetch');
        held.shift()!();
        served++;
      }
      assert.deepEqual(await Promise.all(answers), Array(total).fill(200));
      assert.equal(peak, MAX_CONCURRENT_FETCHES);
    } finally {
      await Promise.all(slow.map((s) => s.stop()));
    }
  });

  it('a host that never answers holds only its own share of the fetches: other hosts\' images are still served', async () => {
    // A tarpit: accepts every request and never answers.
    const seen: string[] = [];
    const tarpit = await listening(http.createServer((req) => void seen.push(req.url ?? '')), '127.0.0.2');
    const signer = (await imageSignerFor(server.app.stores.app, server.app.config))!;
    const asked = MAX_CONCURRENT_FETCHES + MAX_WAITING_PER_HOST + 2;
    let settled = 0;
    const answers = Array.from({ length: asked }, (_, i) => status(`${server.base}/img/${signer.path(`${tarpit.base}/tarpit/${i}.png`)}`).finally(() => settled++));
    try {
      await waitFor(async () => seen.length >= MAX_FETCHES_PER_HOST && settled >= asked - MAX_FETCHES_PER_HOST - MAX_WAITING_PER_HOST, 5000, 'the tarpit\'s fetches and refusals');
      // A fresh image of another host is fetched and served while the tarpit's fetches hang.
      const fresh = await fetch(`${server.base}/img/${signer.path(`${images.base}/fresh.png`)}`, { signal: AbortSignal.timeout(30_000) });
      assert.equal(fresh.status, 200);
      assert.deepEqual(Buffer.from(await fresh.arrayBuffer()), PNG);
      assert.equal(images.count('/fresh.png'), 1);
      assert.equal(seen.length, MAX_FETCHES_PER_HOST, 'the tarpit got no more than its share of fetches');
      assert.equal(settled, asked - MAX_FETCHES_PER_HOST - MAX_WAITING_PER_HOST, 'the tarpit\'s fetches were still hanging');
    } finally {
      await tarpit.stop();
    }
    // The tarpit gone, its fetches fail (404); those past its queue were refused as busy (503).
    const statuses = await Promise.all(answers);
    assert.equal(statuses.filter((s) => s === 503).length, asked - MAX_FETCHES_PER_HOST - MAX_WAITING_PER_HOST);
    assert.equal(statuses.filter((s) => s === 404).length, MAX_FETCHES_PER_HOST + MAX_WAITING_PER_HOST);
  });

  it('follows a few redirects, not more', async () => {
    const signer = (await imageSignerFor(server.app.stores.app, server.app.config))!;
    assert.equal(await status(`${server.base}/img/${signer.path(`${images.base}/loop.png`)}`), 404);
    assert.equal(images.count('/loop.png'), MAX_REDIRECTS + 1);
  });

  it('refuses unsigned and altered URLs without fetching anything', async () => {
    const [item] = await readFeed(feedUrls.json, 'json');
    const good = proxiedUrlOf(item!.html, server.base, '/photo.png');
    const [, signature, encoded] = /\/img\/([^/]+)\/([^/]+)$/.exec(good)!;
    const flip = (s: string, i: number) => `${s.slice(0, i)}${s[i] === 'A' ? 'B' : 'A'}${s.slice(i + 1)}`;
    const privateTarget = Buffer.from(`${images.base}/private.png`).toString('base64url');
    const before = images.hits.length;
    const refused = [
      // No signature at all, a made-up one, and one from another key.
      `${server.base}/img/${privateTarget}`,
      `${server.base}/img/${'A'.repeat(43)}/${privateTarget}`,
      `${server.base}/img/${new ImageSigner(Buffer.alloc(32, 1)).path(`${images.base}/private.png`)}`,
      // One character changed in the signature, or in the URL.
      `${server.base}/img/${flip(signature!, 5)}/${encoded}`,
      `${server.base}/img/${signature}/${flip(encoded!, 10)}`,
      // The signature of one image on another's URL.
      `${server.base}/img/${signature}/${privateTarget}`,
    ];
    for (const url of refused) assert.equal(await status(url), 404, url);
    assert.equal(images.hits.length, before, 'no refused URL reached the image server');
    const metrics = await (await fetch(`${server.base}/metrics`)).text();
    assert.match(metrics, /feedmail_image_proxy_refused_total [1-9]/);
    assert.match(metrics, /feedmail_image_proxy_hits_total [1-9]/);
    assert.match(metrics, /feedmail_image_proxy_misses_total [1-9]/);
  });
});

describe('image proxy and a client that stops reading', () => {
  it('disconnects a client that does not read an image\'s response, so it cannot pin the image in memory', async () => {
    // Larger than the kernel's socket buffers take, so the response cannot be written out while the client does not read.
    const BIG = Buffer.concat([solidPng(8, 8, [0, 0, 0]), Buffer.alloc(24 * 1024 ** 2, 7)]);
    const images = new ImageServer({ '/big.png': { type: 'image/png', body: BIG } });
    await images.start();
    const server = await startTestServer({ imageProxyAllowPrivate: 'true', imageProxyMaxBytes: '32m' });
    try {
      const signer = (await imageSignerFor(server.app.stores.app, server.app.config))!;
      const path = `/img/${signer.path(`${images.base}/big.png`)}`;
      const first = await fetch(`${server.base}${path}`);
      assert.equal(first.status, 200);
      assert.equal((await first.arrayBuffer()).byteLength, BIG.length);
      // Asked again from the cache by a client that never reads the answer.
      const socket = net.connect(Number(new URL(server.base).port), '127.0.0.1');
      socket.pause();
      socket.write(`GET ${path} HTTP/1.1\r\nHost: ${new URL(server.base).host}\r\n\r\n`);
      // Well past the idle bound (the server checks each IMAGE_WRITE_IDLE_MS, so it ends the connection within two), the client reads what it was sent: not the whole image, and the connection ends.
      await new Promise((r) => setTimeout(r, IMAGE_WRITE_IDLE_MS * 3));
      let received = 0;
      const ended = new Promise<void>((resolve) => {
        socket.on('data', (chunk: Buffer) => void (received += chunk.length));
        socket.on('close', () => resolve());
        socket.on('error', () => undefined);
      });
      socket.resume();
      await Promise.race([ended, new Promise((r) => setTimeout(r, IMAGE_WRITE_IDLE_MS * 2))]);
      socket.destroy();
      assert.ok(received < BIG.length, `the client that stopped reading got ${received} of ${BIG.length} bytes`);
      assert.equal(images.count('/big.png'), 1);
    } finally {
      await server.stop();
      await images.stop();
    }
  });
});

describe('prefetch with an image host that never answers', () => {
  it('fetches the message\'s other images at arrival while that host\'s fetches hang', async () => {
    const seen: string[] = [];
    const tarpit = await listening(http.createServer((req) => void seen.push(req.url ?? '')), '127.0.0.3');
    const images = new ImageServer({ '/a.png': { type: 'image/png', body: PNG }, '/b.png': { type: 'image/png', body: BACKGROUND } });
    await images.start();
    // The tarpit's fetches are given longer than this test runs.
    const server = await startTestServer({ imageProxyAllowPrivate: 'true', imageProxyTimeoutMs: '120000' });
    try {
      const feed = await createFeed(server.base, 'Tarpit');
      const body = [...Array.from({ length: 6 }, (_, i) => `<img src="${tarpit.base}/t${i}.png" alt="">`), `<img src="${images.base}/a.png" alt="">`, `<img src="${images.base}/b.png" alt="">`].join('');
      const info = await sendRaw(server.smtpPort, feed.address, [
        'From: Slow Images <news@slow.example>', `To: ${feed.address}`, 'Subject: Slow pictures', 'Message-ID: <slow-1@slow.example>',
        'MIME-Version: 1.0', 'Content-Type: text/html; charset=utf-8', '', `<html><body><p>Pictures.</p>${body}</body></html>`, '',
      ].join('\r\n'));
      assert.match(info.response, /^250 /);
      await waitFor(async () => images.count('/a.png') === 1 && images.count('/b.png') === 1, 30_000, 'the other host\'s images fetched at arrival');
      assert.equal(seen.length, MAX_FETCHES_PER_HOST, 'the tarpit\'s fetches still hang, and it got no more than its share');
      // Viewed now, the other host's images come from the cache: their sender learns nothing of it.
      const [item] = await readFeed(feed.feeds.json, 'json');
      assert.equal(await status(proxiedUrlOf(item!.html, server.base, '/a.png')), 200);
      assert.equal(images.count('/a.png'), 1);
    } finally {
      await tarpit.stop();
      await server.stop();
      await images.stop();
    }
  });
});

describe('image proxy without the private-address setting', () => {
  it('refuses signed URLs that resolve to loopback or private addresses, without a request', async () => {
    const images = new ImageServer({ '/private.png': { type: 'image/png', body: PNG } });
    await images.start();
    const server = await startTestServer();
    try {
      const signer = (await imageSignerFor(server.app.stores.app, server.app.config))!;
      const port = new URL(images.base).port;
      for (const target of [`${images.base}/private.png`, `http://localhost:${port}/private.png`, `http://[::ffff:127.0.0.1]:${port}/private.png`, 'http://10.1.2.3/x.png', 'http://169.254.169.254/latest/meta-data']) {
        assert.equal(await status(`${server.base}/img/${signer.path(target)}`), 404, target);
      }
      assert.match(await (await fetch(`${server.base}/metrics`)).text(), /feedmail_image_proxy_hits_total 0\n/);
      // Remembered: asked again, it is answered from the cache without another attempt.
      assert.equal(await status(`${server.base}/img/${signer.path(`${images.base}/private.png`)}`), 404);
      assert.match(await (await fetch(`${server.base}/metrics`)).text(), /feedmail_image_proxy_hits_total 1\n/);
      assert.equal(images.hits.length, 0);
    } finally {
      await server.stop();
      await images.stop();
    }
  });
});

describe('the image fetch address check', () => {
  it('refuses IPv4-translated, NAT64 and 6to4 forms that embed an internal IPv4 address', () => {
    for (const a of ['::ffff:0:127.0.0.1', '::ffff:0:7f00:1', '::ffff:0:10.0.0.1', '1::ffff:7f00:1', '::127.0.0.1', '::ffff:127.0.0.1', '::ffff:7f00:1',
      '64:ff9b::127.0.0.1', '64:ff9b::a00:1', '64:ff9b:1::7f00:1', '2002:7f00:1::', '2002:a00:1::1']) {
      assert.equal(isRefusedAddress(a), true, a);
    }
    // A public IPv4 address written IPv4-mapped is still that public address.
    assert.equal(isRefusedAddress('::ffff:93.184.216.34'), false);
    assert.equal(isRefusedAddress('2606:4700:4700::1111'), false);
  });
});

describe('image proxy turned off', () => {
  it('keeps the sender\'s image URLs in the body and the feeds, as before', async () => {
    const images = new ImageServer({ '/photo.png': { type: 'image/png', body: PNG } });
    await images.start();
    const server = await startTestServer({ imageProxy: 'false' });
    try {
      const feed = await createFeed(server.base, 'No proxy');
      await sendRaw(server.smtpPort, feed.address, newsletter(feed.address, images.base));
      const [item] = await waitForEntries(feed.feeds.json, 'json', 1, 10_000);
      assert.ok(item!.html.includes(`src="${images.base}/photo.png"`), item!.html.slice(0, 500));
      assert.ok(!item!.html.includes('/img/'));
      const body = await fetch(`${item!.link}/body`);
      const text = await body.text();
      assert.ok(text.includes(`src="${images.base}/photo.png"`));
      assert.match(body.headers.get('content-security-policy') ?? '', /img-src 'self' https: http: data:/);
      const signer = new ImageSigner(Buffer.alloc(32, 2));
      assert.equal(await status(`${server.base}/img/${signer.path(`${images.base}/photo.png`)}`), 404);
      assert.equal(images.hits.length, 0);
    } finally {
      await server.stop();
      await images.stop();
    }
  });
});

describe('proxiedImages', () => {
  const urls = new Urls('https://feeds.example', new ImageSigner(Buffer.alloc(32, 3)));
  const img = (u: string) => urls.image(u)!;

  it('rewrites src, srcset, background, style attributes and style elements, and leaves our own URLs', () => {
    const html = [
      '<style>.a{background:url(https://s.example/a.png)} .b{background:url("http://s.example/b.png")}</style>',
      '<img src="https://s.example/c.png?x=1&amp;y=2" srcset="https://s.example/c1.png 1x, https://s.example/c2.png 2x">',
      '<td background="https://s.example/d.png">',
      '<div style="background-image: url(&quot;https://s.example/e.png&quot;)">',
      '<p style="background-image: -webkit-image-set(&quot;https://s.example/f.png&quot; 1x, url(https://s.example/g.png) 2x)">',
      '<img src="https://feeds.example/e/abc/parts/1/x.png">',
      '<img src="data:image/png;base64,AAAA">',
      '<a href="https://s.example/page">link</a>',
    ].join('');
    const out = proxiedImages(html, urls);
    for (const u of ['https://s.example/a.png', 'http://s.example/b.png', 'https://s.example/c.png?x=1&y=2', 'https://s.example/c1.png', 'https://s.example/c2.png', 'https://s.example/d.png', 'https://s.example/e.png', 'https://s.example/f.png', 'https://s.example/g.png']) {
      assert.ok(out.includes(img(u)), u);
    }
    assert.ok(out.includes(` 1x, ${img('https://s.example/c2.png')} 2x"`));
    assert.ok(out.includes('src="https://feeds.example/e/abc/parts/1/x.png"'));
    assert.ok(out.includes('src="data:image/png;base64,AAAA"'));
    assert.ok(out.includes('href="https://s.example/page"'));
    assert.ok(!/\/\/s\.example\/[a-g]/.test(out.replace(/href="[^"]*"/g, '')), out);
  });

  it('reads image URLs as a browser does: backslashes, a scheme without slashes, tabs and newlines inside', () => {
    const html = [
      '<img src="http:\\\\s.example/backslash.png">',
      '<img src="https:s.example/no-slashes.png">',
      '<img src="h&#x09;ttp://s.example/tab.png">',
      '<img src="ht\ttps://s.example/new\nline.png">',
      '<img src=" HTTPS://S.EXAMPLE/upper.png ">',
      '<div style="background-image: url(&quot;https:\\\\s.example/style.png&quot;)">',
      '<img src="javascript:alert(1)">',
      '<img src="/relative.png">',
    ].join('');
    const out = proxiedImages(html, urls);
    for (const u of ['http://s.example/backslash.png', 'https://s.example/no-slashes.png', 'http://s.example/tab.png', 'https://s.example/newline.png', 'https://s.example/upper.png', 'https://s.example/style.png']) {
      assert.ok(out.includes(img(u)), u);
    }
    assert.ok(!/[^d]s\.example/i.test(out), `the sender's host is left in: ${out}`);
    assert.ok(out.includes('src="javascript:alert(1)"') && out.includes('src="/relative.png"'), 'what is not an http(s) URL is left to the sanitizer');
    assert.deepEqual(remoteImageUrls('<img src="http:\\\\s.example/a.png"><img src="https:s.example/b.png">'), ['http://s.example/a.png', 'https://s.example/b.png']);
  });

  it('changes nothing with the proxy off', () => {
    const html = '<img src="https://s.example/c.png">';
    assert.equal(proxiedImages(html, new Urls('https://feeds.example')), html);
  });

  it('verifies only the URLs it signed', () => {
    const signer = new ImageSigner(Buffer.alloc(32, 4));
    const [sig, enc] = signer.path('https://s.example/a.png').split('/') as [string, string];
    assert.equal(signer.verify(sig, enc), 'https://s.example/a.png');
    assert.equal(new ImageSigner(Buffer.alloc(32, 5)).verify(sig, enc), undefined);
    assert.equal(signer.verify(sig, Buffer.from('https://s.example/b.png').toString('base64url')), undefined);
  });

  it('sniffs raster types by their bytes only', () => {
    assert.equal(sniffImageType(PNG), 'image/png');
    assert.equal(sniffImageType(Buffer.from('GIF89a\x01\x00\x01\x00', 'latin1')), 'image/gif');
    assert.equal(sniffImageType(Buffer.from([0xff, 0xd8, 0xff, 0xe0])), 'image/jpeg');
    assert.equal(sniffImageType(Buffer.from('RIFF\x10\x00\x00\x00WEBPVP8 ', 'latin1')), 'image/webp');
    assert.equal(sniffImageType(Buffer.from('\x00\x00\x00\x1cftypavif\x00\x00\x00\x00avifmif1miaf', 'latin1')), 'image/avif');
    assert.equal(sniffImageType(Buffer.from('\x00\x00\x00\x18ftypmp42\x00\x00\x00\x00mp42isom', 'latin1')), undefined);
    assert.equal(sniffImageType(SVG), undefined);
    assert.equal(sniffImageType(HTML_AS_PNG), undefined);
  });
});

describe('the image cache', () => {
  it('keeps within its bound, least recently used out first, and forgets failures when they expire', async () => {
    const clock = new TestClock();
    const stores = await openTestStores(tempDir(), { clock });
    try {
      const { cache } = stores;
      const image = (n: number) => Buffer.alloc(1000, n);
      await clock.at(-300_000, () => cache.storeImage('a', 'image/png', image(1), 2500));
      await clock.at(-200_000, () => cache.storeImage('b', 'image/png', image(2), 2500));
      // Read two minutes after it was stored: 'a' is now more recent than 'b'.
      await clock.at(-100_000, async () => assert.ok(await cache.cachedImage('a')));
      await cache.storeImage('c', 'image/png', image(3), 2500);
      assert.ok(await cache.cachedImage('a'));
      assert.equal(await cache.cachedImage('b'), undefined, 'the least recently used went');
      assert.deepEqual((await cache.cachedImage('c'))?.body, image(3));
      assert.ok(await cache.imageCacheBytes() <= 2500);
      await cache.storeImage('huge', 'image/png', Buffer.alloc(3000), 2500);
      assert.equal(await cache.cachedImage('huge'), undefined, 'larger than the whole bound: not kept');

      await cache.storeImageFailure('dead', 60_000, 2500);
      const failure = await cache.cachedImage('dead');
      assert.equal(failure?.body, null);
      await clock.at(61_000, async () => assert.equal(await cache.cachedImage('dead'), undefined, 'an expired failure is tried again'));
    } finally {
      await stores.close();
    }
  });
});
