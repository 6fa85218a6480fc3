/**
 * What HTTP clients can take: the webhook is decided on its headers before its body is
 * read and reads few bodies at once; connections are capped and idle ones closed; feed
 * creation refuses cross-site posts and counts IPv6 clients per /64; attachments never
 * carry a script type; no prototype lookups on URLs; /metrics and /readyz can be
 * restricted (security review F8 and F13-F16).
 */
import assert from 'node:assert/strict';
import http from 'node:http';
import net from 'node:net';
import { after, afterEach, before, describe, it } from 'node:test';
import { type ConfigOverrides, loadConfig } from '../src/config.js';
import { createCounters } from '../src/ops/metrics.js';
import { DiskSpace } from '../src/ops/storage-guard.js';
import { createLogger } from '../src/log.js';
import { signRawDelivery } from '../src/mail/webhooks/raw.js';
import { creationLimitKey } from '../src/web/routes/feed-create.js';
import { WEBHOOK_MIN_BODY_RATE } from '../src/web/routes/inbound.js';
import { WebServer, type WebServerOptions } from '../src/web/server.js';
import { createFeed, openTestStores, readFeed, sendRaw, startTestServer, tempDir, type TestServer, waitFor, waitForEntries } from './support/helpers.js';

const SECRET = 'http-limits-test-secret-0123456789abcdef';

/** A raw TCP connection that records what the server sends and when it closes. */
interface Raw {
  socket: net.Socket;
  received: () => string;
  closed: Promise<void>;
  isClosed: () => boolean;
}

/** Every raw connection a test opened, destroyed after it so a failing test cannot hold a server open. */
const opened: net.Socket[] = [];
function destroyOpened(): void {
  for (const s of opened.splice(0)) s.destroy();
}

/** `localAddress` stands in for another host: 127.0.1.x and 127.0.2.x are two /24 networks on loopback. */
async function connect(port: number, localAddress?: string): Promise<Raw> {
  const socket = net.connect({ port, host: '127.0.0.1', localAddress });
  opened.push(socket);
  let data = '';
  let isClosed = false;
  socket.setEncoding('latin1');
  socket.on('data', (chunk: string) => { data += chunk; });
  // The server may reset a connection it refuses; that is a close too.
  socket.on('error', () => undefined);
  const closed = new Promise<void>((resolve) => socket.once('close', () => { isClosed = true; resolve(); }));
  await new Promise<void>((resolve, reject) => socket.once('connect', resolve).once('error', reject));
  return { socket, received: () => data, closed, isClosed: () => isClosed };
}

function within<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  return Promise.race([promise, new Promise<T>((_, reject) => setTimeout(() => reject(new Error(`${what} did not happen within ${ms} ms`)), ms))]);
}

/** A request with exactly the headers given (fetch would add Sec-Fetch-* of its own on some runtimes). */
function request(base: string, path: string, options: { method?: string; headers?: Record<string, string>; body?: string | Buffer; localAddress?: string } = {}): Promise<{ status: number; headers: http.IncomingHttpHeaders; body: string }> {
  return new Promise((resolve, reject) => {
    const req = http.request(`${base}${path}`, { method: options.method ?? 'GET', headers: options.headers, agent: false, localAddress: options.localAddress }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => { body += c; });
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
    });
    req.on('error', reject);
    req.end(options.body);
  });
}

const message = (subject: string) => Buffer.from(`From: a@example.com\r\nSubject: ${subject}\r\n\r\n${'hello '.repeat(100)}\r\n`);

/** The request line and headers of a signed webhook delivery, for writing on a raw socket. */
function signedHead(port: number, to: string, body: Buffer): string {
  const timestamp = Math.floor(Date.now() / 1000);
  const target = `/inbound/raw?to=${encodeURIComponent(to)}`;
  return `POST ${target} HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nContent-Length: ${body.length}\r\n`
    + `X-Feedmail-Timestamp: ${timestamp}\r\nX-Feedmail-Signature: ${signRawDelivery(SECRET, { timestamp, method: 'POST', target, body })}\r\n\r\n`;
}

/** A web server alone, for the test-only options (short first-request timeout, short webhook body grace). */
async function startWeb(overrides: ConfigOverrides, options: WebServerOptions) {
  const dataDir = tempDir();
  const config = loadConfig({}, { dataDir, httpPort: '0', logLevel: 'silent', allowUnsafeStorage: 'true', minFreeBytes: '0', ...overrides });
  const stores = await openTestStores(dataDir);
  const counters = createCounters().http;
  const web = new WebServer({
    config, stores, log: createLogger('silent'), counters,
    metrics: async () => '', readiness: async () => ({ ok: true, checks: {} }), space: new DiskSpace(stores.dataDir, 0), onAccepted: () => undefined,
  }, options);
  const { port } = await web.listen(0, '127.0.0.1', () => 'http://127.0.0.1');
  return {
    counters, port, base: `http://127.0.0.1:${port}`,
    async stop() {
      destroyOpened();
      await web.close();
      await stores.close();
    },
  };
}

/** A signed delivery of `body` to `to`, as a relay sends it. */
function signedDelivery(to: string, body: Buffer) {
  const timestamp = Math.floor(Date.now() / 1000);
  const target = `/inbound/raw?to=${encodeURIComponent(to)}`;
  return { target, headers: { 'X-Feedmail-Timestamp': String(timestamp), 'X-Feedmail-Signature': signRawDelivery(SECRET, { timestamp, method: 'POST', target, body }) } };
}

/** The review's unauthenticated webhook body: 1 MB declared, a fresh timestamp, a well-formed wrong signature, one byte sent. */
function unauthenticatedHold(c: Raw, port: number): void {
  c.socket.write(`POST /inbound/raw?to=x%40feedmail.test HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nContent-Length: 1000000\r\n`
    + `X-Feedmail-Timestamp: ${Math.floor(Date.now() / 1000)}\r\nX-Feedmail-Signature: sha256=${'0'.repeat(64)}\r\n\r\nA`);
}

const statusOf = (c: Raw) => Number(/^HTTP\/1\.1 (\d{3}) /.exec(c.received())?.[1] ?? 0);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('webhook: headers first, few bodies at once', () => {
  let server: TestServer;
  let port: number;
  before(async () => {
    server = await startTestServer({ webhookSecret: SECRET, webhookMaxConcurrent: '2' });
    port = Number(new URL(server.base).port);
  });
  afterEach(destroyOpened);
  after(async () => {
    await server.stop();
  });

  it('refuses an unauthenticated 25 MB body with 401 before reading it, and closes the connection', async () => {
    for (const headers of [
      'X-Feedmail-Timestamp: 1\r\nX-Feedmail-Signature: sha256=00\r\n', // the review's request: stale and malformed
      '', // no signature headers at all
      `X-Feedmail-Timestamp: ${Math.floor(Date.now() / 1000)}\r\nX-Feedmail-Signature: sha256=00\r\n`, // fresh, malformed signature
    ]) {
      const c = await connect(port);
      c.socket.write(`POST /inbound/raw?to=x%40localhost HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 26214300\r\n${headers}\r\n`);
      c.socket.write(Buffer.alloc(4096, 'A'));
      // Only 4 KB of the declared 25 MB were sent: the answer cannot have waited for the body.
      await within(c.closed, 3000, 'closing the connection');
      assert.match(c.received(), /^HTTP\/1\.1 401 /);
      assert.match(c.received(), /"code": "bad_signature"/);
      assert.match(c.received(), /\r\nconnection: close\r\n/i);
    }
  });

  it('answers "Expect: 100-continue" with 401 instead of asking for the body when the headers fail', async () => {
    const c = await connect(port);
    c.socket.write('POST /inbound/raw?to=x%40localhost HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 26214300\r\nExpect: 100-continue\r\n\r\n');
    await within(c.closed, 3000, 'closing the connection');
    assert.match(c.received(), /^HTTP\/1\.1 401 /, 'no "100 Continue" first');
  });

  it('refuses a declared length over the message limit with 413 before reading', async () => {
    const c = await connect(port);
    const body = Buffer.alloc(10, 'x');
    c.socket.write(signedHead(port, 'x@localhost', body).replace(/Content-Length: \d+/, 'Content-Length: 26214401'));
    await within(c.closed, 3000, 'closing the connection');
    assert.match(c.received(), /^HTTP\/1\.1 413 /);
  });

  it('reads at most webhookMaxConcurrent bodies at once: the next gets 503 with Retry-After, and the held ones still land', async () => {
    const feed = await createFeed(server.base);
    const bodies = [message('slow one'), message('slow two')];
    // From two networks: one network alone may read only a quarter of the slots (at least 1).
    const slow = await Promise.all(bodies.map((_, i) => connect(port, `127.0.${i + 1}.1`)));
    // Each slow sender sends its headers and half its body, then stalls.
    slow.forEach((c, i) => {
      c.socket.write(signedHead(port, feed.address, bodies[i]!));
      c.socket.write(bodies[i]!.subarray(0, 100));
    });
    await new Promise((r) => setTimeout(r, 300));
    const third = message('third');
    const timestamp = Math.floor(Date.now() / 1000);
    const target = `/inbound/raw?to=${encodeURIComponent(feed.address)}`;
    const headers = { 'X-Feedmail-Timestamp': String(timestamp), 'X-Feedmail-Signature': signRawDelivery(SECRET, { timestamp, method: 'POST', target, body: third }) };
    const busy = await request(server.base, target, { method: 'POST', headers, body: third.toString() });
    assert.equal(busy.status, 503);
    assert.ok(Number(busy.headers['retry-after']) > 0, 'Retry-After says when to come back');
    assert.equal((JSON.parse(busy.body) as { error: { code: string } }).error.code, 'webhook_busy');

    // The rest of each body, without closing the sending side: Content-Length ends the body, and
    // a client that half-closes before its answer is ended by node:http before a slow store answers.
    slow.forEach((c, i) => c.socket.write(bodies[i]!.subarray(100)));
    await Promise.all(slow.map((c) => within(waitFor(async () => /\r\n\r\n/.test(c.received()) && c.received()), 3000, 'the slow answers')));
    for (const c of slow) assert.match(c.received(), /^HTTP\/1\.1 202 /);
    // A slot is free again: the refused delivery, retried as it was, is accepted.
    assert.equal((await request(server.base, target, { method: 'POST', headers, body: third.toString() })).status, 202);
    const items = await waitForEntries(feed.feeds.json, 'json', 3);
    assert.deepEqual(items.map((i) => i.title).sort(), ['slow one', 'slow two', 'third']);
  });
});

describe('webhook: no one client network holds the slots (review M1)', () => {
  afterEach(destroyOpened);

  it('gives one network at most a quarter of the body slots, so a signed delivery from another network is accepted', async () => {
    // The default 8 slots: one network may read 2 bodies at once.
    const server = await startWeb({ webhookSecret: SECRET, mailDomains: 'feedmail.test' }, {});
    try {
      const feed = await createFeed(server.base);
      const attack = await Promise.all(Array.from({ length: 8 }, (_, i) => connect(server.port, `127.0.1.${i + 1}`)));
      attack.forEach((c) => unauthenticatedHold(c, server.port));
      // The refused ones are answered at once; the admitted ones wait for their bodies.
      await within(waitFor(async () => attack.filter((c) => c.isClosed()).length === 6), 3000, 'refusing six of the eight');
      for (const c of attack.filter((c) => c.isClosed())) {
        assert.equal(statusOf(c), 503);
        assert.match(c.received(), /"code": "webhook_busy"/);
        assert.match(c.received(), /from your network/);
      }
      const mail = message('from the relay');
      const { target, headers } = signedDelivery(feed.address, mail);
      const res = await request(server.base, target, { method: 'POST', headers, body: mail, localAddress: '127.0.2.1' });
      assert.equal(res.status, 202, res.body);
      assert.equal(attack.filter((c) => !c.isClosed()).length, 2, 'the two admitted bodies are still being read');
    } finally {
      await server.stop();
    }
  });

  it('counts the relay behind a trusted proxy by its forwarded address, not the proxy', async () => {
    const server = await startWeb({ webhookSecret: SECRET, mailDomains: 'feedmail.test', trustedProxies: '127.0.0.1', webhookMaxConcurrent: '4' }, {});
    try {
      const feed = await createFeed(server.base);
      // Everything arrives from the proxy (127.0.0.1); the attacker is 198.51.100.7.
      const attack = await Promise.all([1, 2, 3].map(() => connect(server.port)));
      for (const c of attack) {
        c.socket.write(`POST /inbound/raw?to=x%40feedmail.test HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Forwarded-For: 198.51.100.7\r\nContent-Length: 1000000\r\n`
          + `X-Feedmail-Timestamp: ${Math.floor(Date.now() / 1000)}\r\nX-Feedmail-Signature: sha256=${'0'.repeat(64)}\r\n\r\nA`);
      }
      await within(waitFor(async () => attack.filter((c) => c.isClosed()).length === 2), 3000, 'refusing two of the three');
      assert.ok(attack.filter((c) => c.isClosed()).every((c) => statusOf(c) === 503));
      const mail = message('via the proxy');
      const { target, headers } = signedDelivery(feed.address, mail);
      const res = await request(server.base, target, { method: 'POST', headers: { ...headers, 'X-Forwarded-For': '203.0.113.5' }, body: mail });
      assert.equal(res.status, 202, res.body);
    } finally {
      await server.stop();
    }
  });

  it('closes a body that trickles below the minimum rate after the grace with 408, freeing its slot; a steady upload is kept', { timeout: 30_000 }, async () => {
    // A grace long enough that a loaded machine still finds every slot taken when the check below runs.
    const server = await startWeb({ webhookSecret: SECRET, mailDomains: 'feedmail.test', webhookMaxConcurrent: '4' }, { webhookBodyGraceMs: 1500 });
    try {
      const feed = await createFeed(server.base);
      // Four networks take every slot and send a byte every 200 ms.
      const attack = await Promise.all([1, 2, 3, 4].map((n) => connect(server.port, `127.0.${n}.1`)));
      attack.forEach((c) => unauthenticatedHold(c, server.port));
      const trickle = setInterval(() => attack.forEach((c) => c.isClosed() || c.socket.write('A')), 200);
      try {
        await sleep(200);
        const early = message('while full');
        const busy = signedDelivery(feed.address, early);
        assert.equal((await request(server.base, busy.target, { method: 'POST', headers: busy.headers, body: early, localAddress: '127.0.9.1' })).status, 503, 'every slot is taken at first');

        // Far below the 30 s a body may take in all, so only the rate check can have closed them (408 body_too_slow below).
        await within(Promise.all(attack.map((c) => c.closed)), 10_000, 'closing the trickling bodies');
        for (const c of attack) {
          assert.equal(statusOf(c), 408);
          assert.match(c.received(), /"code": "body_too_slow"/);
        }
      } finally {
        clearInterval(trickle);
      }

      // A legitimate upload at twice the minimum rate for longer than the grace is not cut.
      const mail = Buffer.concat([message('steady upload'), Buffer.alloc(4 * WEBHOOK_MIN_BODY_RATE, 'x')]);
      const { target, headers } = signedDelivery(feed.address, mail);
      const steady = await connect(server.port, '127.0.9.1');
      steady.socket.write(`POST ${target} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: ${mail.length}\r\nConnection: close\r\n`
        + `X-Feedmail-Timestamp: ${headers['X-Feedmail-Timestamp']}\r\nX-Feedmail-Signature: ${headers['X-Feedmail-Signature']}\r\n\r\n`);
      const step = Math.ceil(mail.length / 20);
      for (let i = 0; i < mail.length; i += step) {
        steady.socket.write(mail.subarray(i, i + step));
        await sleep(100); // 20 steps over 2 s: twice the minimum rate, past the 1.5 s grace
      }
      await within(steady.closed, 3000, 'the answer');
      assert.equal(statusOf(steady), 202, steady.received());
    } finally {
      await server.stop();
    }
  });
});

describe('HTTP connections', () => {
  afterEach(destroyOpened);
  it('closes connections that send no complete request within the first-request timeout, and keeps serving the others', async () => {
    const dataDir = tempDir();
    const config = loadConfig({}, { dataDir, httpPort: '0', logLevel: 'silent', allowUnsafeStorage: 'true', minFreeBytes: '0' });
    const stores = await openTestStores(dataDir);
    const web = new WebServer({
      config, stores, log: createLogger('silent'), counters: createCounters().http,
      metrics: async () => '', readiness: async () => ({ ok: true, checks: {} }), space: new DiskSpace(stores.dataDir, 0), onAccepted: () => undefined,
    }, { firstRequestTimeoutMs: 300 });
    const { port } = await web.listen(0, '127.0.0.1', () => 'http://127.0.0.1');
    try {
      // Taken before connecting: each connection's timeout runs from its own accept.
      const started = Date.now();
      const idle = await Promise.all(Array.from({ length: 20 }, () => connect(port)));
      const partial = await connect(port);
      partial.socket.write('GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n'); // headers never finished
      const served = await connect(port);
      served.socket.write('GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n');
      await within(Promise.all([...idle, partial].map((c) => c.closed)), 3000, 'closing idle connections');
      assert.ok(Date.now() - started >= 250, 'not before the timeout');
      assert.equal(idle.some((c) => c.received() !== ''), false, 'closed without an answer');
      // The connection that made a request in time is kept alive past the first-request timeout.
      await new Promise((r) => setTimeout(r, 400));
      assert.equal(served.isClosed(), false);
      served.socket.write('GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n');
      await within(served.closed, 3000, 'the second answer');
      assert.equal(served.received().match(/HTTP\/1\.1 200 /g)?.length, 2);
    } finally {
      destroyOpened();
      await web.close();
      await stores.close();
    }
  });

  it('caps connections per client network, so idle connections from two addresses leave room for everyone else (review M2)', async () => {
    // A tenth of 60 is under the floor of 8: each network may hold 8 connections.
    const server = await startWeb({ httpMaxConnections: '60' }, {});
    try {
      const attackers = ['127.0.1.1', '127.0.2.1'];
      const held = await Promise.all(attackers.flatMap((address) => Array.from({ length: 30 }, () => connect(server.port, address))));
      await within(waitFor(async () => held.filter((c) => c.isClosed()).length === 44), 3000, 'closing the connections over the per-network cap');
      for (const address of attackers) {
        assert.equal(held.filter((c) => !c.isClosed() && c.socket.localAddress === address).length, 8, `${address} keeps 8`);
      }
      assert.ok(held.every((c) => c.received() === ''), 'closed without an answer');
      assert.equal(server.counters.networkConnectionsRefused, 44);
      for (const address of ['127.0.0.1', '127.0.3.1']) {
        assert.equal((await request(server.base, '/healthz', { localAddress: address })).status, 200, `/healthz from ${address}`);
      }
      // The attacker's own network gets a slot back when it closes one.
      held.find((c) => !c.isClosed() && c.socket.localAddress === '127.0.1.1')!.socket.destroy();
      await sleep(100);
      assert.equal((await request(server.base, '/healthz', { localAddress: '127.0.1.2' })).status, 200);
    } finally {
      await server.stop();
    }
  });

  it('does not count connections from a trusted proxy against a per-network cap', async () => {
    const server = await startWeb({ httpMaxConnections: '100', trustedProxies: '127.0.0.1' }, {});
    try {
      const held = await Promise.all(Array.from({ length: 20 }, () => connect(server.port, '127.0.0.1')));
      await sleep(200);
      assert.equal(held.filter((c) => c.isClosed()).length, 0, 'all 20 proxy connections stay open');
      assert.equal((await request(server.base, '/healthz', { localAddress: '127.0.0.1' })).status, 200);
    } finally {
      await server.stop();
    }
  });

  it('gives connections opened past half of httpMaxConnections a fifth of the first-request timeout', async () => {
    const server = await startWeb({ httpMaxConnections: '20' }, { firstRequestTimeoutMs: 2000 });
    try {
      // Eight per network (the floor): 16 connections, the last 6 past half of 20.
      const held = await Promise.all(['127.0.1.1', '127.0.2.1'].flatMap((address) => Array.from({ length: 8 }, () => connect(server.port, address))));
      await sleep(1000);
      assert.equal(held.filter((c) => c.isClosed()).length, 6, 'the six past half closed after 400 ms');
      await within(Promise.all(held.map((c) => c.closed)), 3000, 'closing the others at 2 s');
    } finally {
      await server.stop();
    }
  });

  it('accepts at most httpMaxConnections connections at once', async () => {
    const server = await startTestServer({ httpMaxConnections: '3' });
    const port = Number(new URL(server.base).port);
    try {
      const held = await Promise.all([connect(port), connect(port), connect(port)]);
      await new Promise((r) => setTimeout(r, 200));
      const extra = await connect(port);
      await within(extra.closed, 2000, 'closing the connection over the cap');
      assert.equal(extra.received(), '');
      assert.equal(held.some((c) => c.isClosed()), false, 'the connections under the cap stay open');
      held[0]!.socket.destroy();
      await new Promise((r) => setTimeout(r, 200));
      assert.equal((await request(server.base, '/healthz')).status, 200, 'a freed slot takes a new connection');
    } finally {
      destroyOpened();
      await server.stop();
    }
  });
});

describe('feed creation', () => {
  let server: TestServer;
  const feedCount = async () => (await server.app.stores.app.rowCounts()).feeds;
  const form = { 'Content-Type': 'application/x-www-form-urlencoded', Accept: 'text/html' };
  before(async () => {
    server = await startTestServer();
  });
  after(async () => {
    await server.stop();
  });

  it('refuses cross-site form posts with 403, and creates nothing', async () => {
    const before = await feedCount();
    for (const headers of [
      { ...form, Origin: 'https://evil.example' },
      { ...form, 'Sec-Fetch-Site': 'cross-site', Origin: 'https://evil.example' },
      { ...form, 'Sec-Fetch-Site': 'same-site', Origin: 'https://sub.evil.example' },
      { ...form, 'Sec-Fetch-Site': 'cross-site' },
      { ...form, Origin: 'null' },
    ]) {
      const res = await request(server.base, '/feeds', { method: 'POST', headers, body: 'title=planted' });
      assert.equal(res.status, 403, JSON.stringify(headers));
      assert.match(res.body, /forms of another site cannot act here/);
    }
    assert.equal(await feedCount(), before);
  });

  it('refuses a cross-site post to every manage action, and the feed stays as it was', async () => {
    const created = await createFeed(server.base, 'kept');
    const manage = new URL(created.manage).pathname;
    for (const action of ['rename', 'delete']) {
      const res = await request(server.base, `${manage}/${action}`, {
        method: 'POST', headers: { ...form, Origin: 'https://evil.example', 'Sec-Fetch-Site': 'cross-site' }, body: 'title=planted&confirm=yes',
      });
      assert.equal(res.status, 403, action);
    }
    const page = await request(server.base, manage, { method: 'GET' });
    assert.equal(page.status, 200);
    assert.match(page.body, /Manage kept/);
  });

  it("accepts our own page's form post and JSON from scripts without Origin", async () => {
    const own = new URL(server.base).origin;
    const viaPage = await request(server.base, '/feeds', { method: 'POST', headers: { ...form, Origin: own, 'Sec-Fetch-Site': 'same-origin' }, body: 'title=mine' });
    assert.equal(viaPage.status, 201);
    assert.match(viaPage.body, /Your feed: mine is ready/);
    // An older browser sends Origin only.
    assert.equal((await request(server.base, '/feeds', { method: 'POST', headers: { ...form, Origin: own }, body: 'title=old' })).status, 201);
    const script = await request(server.base, '/feeds', { method: 'POST', headers: { 'Content-Type': 'application/json', Accept: 'application/json' }, body: '{"title":"api"}' });
    assert.equal(script.status, 201);
    assert.equal((JSON.parse(script.body) as { title: string }).title, 'api');
  });

  it('counts the creation limit per IPv6 /64 and per exact IPv4 address', async () => {
    assert.equal(creationLimitKey('2001:db8:1:2:aaaa::1'), creationLimitKey('2001:db8:1:2:bbbb:cccc:dddd:2'));
    assert.equal(creationLimitKey('2001:DB8:1:2::1'), creationLimitKey('2001:db8:0001:0002::ffff'));
    assert.notEqual(creationLimitKey('2001:db8:1:2::1'), creationLimitKey('2001:db8:1:3::1'));
    assert.equal(creationLimitKey('203.0.113.7'), '203.0.113.7');
    assert.notEqual(creationLimitKey('203.0.113.7'), creationLimitKey('203.0.113.8'));
    assert.equal(creationLimitKey('::ffff:203.0.113.7'), '203.0.113.7');

    const proxied = await startTestServer({ feedsPerHourPerClient: '1', trustedProxies: '127.0.0.1' });
    try {
      const from = async (client: string) => (await request(proxied.base, '/feeds', { method: 'POST', headers: { Accept: 'application/json', 'X-Forwarded-For': client } })).status;
      assert.equal(await from('2001:db8:1:2::1'), 201);
      assert.equal(await from('2001:db8:1:2::2'), 429, 'another address of the same /64 shares the budget');
      assert.equal(await from('2001:db8:1:2:ffff:ffff:ffff:ffff'), 429);
      assert.equal(await from('2001:db8:1:3::1'), 201, 'the next /64 has its own');
      assert.equal(await from('198.51.100.1'), 201);
      assert.equal(await from('198.51.100.2'), 201, 'IPv4 neighbours (one carrier NAT, one campus) are apart');
    } finally {
      await proxied.stop();
    }
  });
});

describe('served files', () => {
  let server: TestServer;
  before(async () => {
    server = await startTestServer();
  });
  after(async () => {
    await server.stop();
  });

  it('answers 404 for static names that are Object properties', async () => {
    for (const name of ['constructor', '__proto__', 'toString', 'hasOwnProperty', 'valueOf']) {
      assert.equal((await request(server.base, `/static/${name}`)).status, 404, name);
    }
    const css = await request(server.base, '/static/style.css');
    assert.equal(css.status, 200);
    assert.match(String(css.headers['content-type']), /^text\/css/);
  });

  it('serves a script attachment as application/octet-stream and a text one as text/plain, and not a part marked as not offered', async () => {
    const feed = await createFeed(server.base);
    const boundary = 'b0undary';
    const raw = [
      'From: a@example.com', 'Subject: attachments', 'MIME-Version: 1.0', `Content-Type: multipart/mixed; boundary="${boundary}"`, '',
      `--${boundary}`, 'Content-Type: text/plain', '', 'See attached.', '',
      `--${boundary}`, 'Content-Type: application/javascript; name="x.js"', 'Content-Disposition: attachment; filename="x.js"', '', 'alert(document.domain)', '',
      `--${boundary}`, 'Content-Type: text/javascript; name="y.js"', 'Content-Disposition: attachment; filename="y.js"', '', 'alert(1)', '',
      `--${boundary}`, 'Content-Type: application/pdf; name="z.pdf"', 'Content-Disposition: attachment; filename="z.pdf"', 'Content-Transfer-Encoding: base64', '',
      Buffer.from('%PDF-1.4 not really').toString('base64'), '',
      `--${boundary}`, 'Content-Type: application/pdf; name="w.pdf"', 'Content-Disposition: attachment; filename="w.pdf"', 'Content-Transfer-Encoding: base64', '',
      Buffer.from(`%PDF-1.4 forwarded from ${feed.address}`).toString('base64'), '',
      `--${boundary}--`, '',
    ].join('\r\n');
    await sendRaw(server.smtpPort, feed.address, raw);
    const [item] = await waitForEntries(feed.feeds.json, 'json');
    const byName = (name: string) => item!.enclosures.find((e) => e.url.endsWith(`/${name}`))?.url;
    const types: Record<string, string> = {};
    for (const name of ['x.js', 'y.js', 'z.pdf']) {
      const url = byName(name);
      assert.ok(url, `${name} is offered`);
      const res = await fetch(url);
      assert.equal(res.status, 200);
      await res.arrayBuffer();
      types[name] = res.headers.get('content-type') ?? '';
      assert.match(res.headers.get('content-disposition') ?? '', /^attachment;/);
    }
    assert.deepEqual(types, { 'x.js': 'application/octet-stream', 'y.js': 'text/plain; charset=utf-8', 'z.pdf': 'application/octet-stream' });

    // A part withheld because it holds the inbox address is not offered, and its URL
    // (the next index after z.pdf, guessable by anyone holding the share link) is 404.
    assert.equal(byName('w.pdf'), undefined, 'the withheld part is not an enclosure');
    const withheld = byName('z.pdf')!.replace(/\/parts\/(\d+)\/z\.pdf$/, (_m, idx: string) => `/parts/${Number(idx) + 1}/w.pdf`);
    assert.notEqual(withheld, byName('z.pdf'));
    assert.equal((await fetch(withheld)).status, 404);
    assert.equal((await readFeed(feed.feeds.json, 'json')).length, 1);
  });
});

describe('operational endpoints', () => {
  const TOKEN = 'ops-token-0123456789abcdef';

  it('hides /metrics and /readyz (404) from clients not in FEEDMAIL_OPS_ALLOW, and serves them with the bearer token', async () => {
    const server = await startTestServer({ opsAllow: `10.0.0.0/8,fd00::/8,token:${TOKEN}` });
    try {
      for (const path of ['/metrics', '/readyz']) {
        assert.equal((await request(server.base, path)).status, 404, `${path} from 127.0.0.1`);
        assert.equal((await request(server.base, path, { headers: { Authorization: `Bearer ${TOKEN}x` } })).status, 404, `${path} with a wrong token`);
        assert.equal((await request(server.base, path, { headers: { Authorization: TOKEN } })).status, 404, `${path} with the token but not as Bearer`);
        const ok = await request(server.base, path, { headers: { Authorization: `Bearer ${TOKEN}` } });
        assert.equal(ok.status, 200, `${path} with the token`);
      }
      assert.match((await request(server.base, '/metrics', { headers: { Authorization: `Bearer ${TOKEN}` } })).body, /feedmail_http_requests_total/);
      assert.equal((await request(server.base, '/healthz')).status, 200, '/healthz stays open');
    } finally {
      await server.stop();
    }
  });

  it('allows listed addresses and ranges, judged by the real client address behind trusted proxies', async () => {
    const direct = await startTestServer({ opsAllow: '127.0.0.0/8' });
    try {
      assert.equal((await request(direct.base, '/readyz')).status, 200);
    } finally {
      await direct.stop();
    }
    const proxied = await startTestServer({ opsAllow: '198.51.100.0/24,2001:db8::7', trustedProxies: '127.0.0.1' });
    try {
      const via = async (client: string) => (await request(proxied.base, '/metrics', { headers: { 'X-Forwarded-For': client } })).status;
      assert.equal(await via('198.51.100.7'), 200);
      assert.equal(await via('2001:db8::7'), 200);
      assert.equal(await via('203.0.113.9'), 404);
      assert.equal(await via('2001:db8::8'), 404);
      assert.equal((await request(proxied.base, '/metrics')).status, 404, 'the proxy itself is not listed');
    } finally {
      await proxied.stop();
    }
  });

  it('stays open to everyone when FEEDMAIL_OPS_ALLOW is empty', async () => {
    const server = await startTestServer();
    try {
      assert.equal((await request(server.base, '/metrics')).status, 200);
      assert.equal((await request(server.base, '/readyz')).status, 200);
    } finally {
      await server.stop();
    }
  });
});
