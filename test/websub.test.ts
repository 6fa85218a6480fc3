/**
 * The WebSub hub end to end: a subscriber server on 127.0.0.1 (FEEDMAIL_WEBSUB_ALLOW_PRIVATE=true)
 * subscribes to a feed's topic, is verified with hub.challenge, and receives the feed document
 * with the mailed entry, signed with its hub.secret; a wrong challenge subscribes nothing;
 * unsubscribing stops deliveries; with the setting off a loopback callback is refused and
 * receives no request; topics, leases and the per-feed cap are checked; subscriptions go
 * with their feed; the three formats advertise the hub; the address checker refuses
 * private ranges.
 */
import assert from 'node:assert/strict';
import { createHmac } from 'node:crypto';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { senderKey } from '../src/feeds/senders.js';
import { isRefusedAddress } from '../src/net/safe-fetch.js';
import { createFeed, startTestServer, waitFor, type TestServer } from './support/helpers.js';
import { feedIdOf, message, sendOne } from './support/intake.js';

interface Received {
  method: string;
  url: URL;
  headers: http.IncomingHttpHeaders;
  body: Buffer;
}

/** A WebSub subscriber: answers verification GETs (echoing the challenge, or not) and records every request. */
async function startSubscriber(opts: { echo?: 'right' | 'wrong'; failPosts?: number } = {}) {
  const requests: Received[] = [];
  let failPosts = opts.failPosts ?? 0;
  const srv = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const url = new URL(req.url ?? '/', 'http://127.0.0.1');
      requests.push({ method: req.method ?? '', url, headers: req.headers, body: Buffer.concat(chunks) });
      if (req.method === 'GET') {
        const challenge = url.searchParams.get('hub.challenge') ?? '';
        res.writeHead(200, { 'Content-Type': 'text/plain' });
        res.end(opts.echo !== 'wrong' ? challenge : `${challenge}x`);
      } else if (failPosts > 0) {
        failPosts--;
        res.writeHead(503);
        res.end();
      } else {
        res.writeHead(204);
        res.end();
      }
    });
  });
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  const port = (srv.address() as AddressInfo).port;
  return {
    requests,
    callback: (path = '/cb') => `http://127.0.0.1:${port}${path}`,
    close: () => new Promise<void>((r) => { srv.closeAllConnections(); srv.close(() => r()); }),
  };
}

async function hubRequest(base: string, fields: Record<string, string>): Promise<{ status: number; body: string }> {
  const res = await fetch(`${base}/websub`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams(fields).toString(),
  });
  return { status: res.status, body: await res.text() };
}

/** True once no job of `task` waits or runs. */
async function noJobsOf(server: TestServer, task: string): Promise<boolean> {
  const q = server.app.stores.queue;
  return ![...await q.jobsInState('ready'), ...await q.jobsInState('claimed')].some((j) => j.task === task);
}

const mail = (subject: string) => message({ From: 'Letters <letters@news.example>', Subject: subject }, `Body of ${subject}.`);

describe('WebSub hub', () => {
  let server: TestServer;
  before(async () => {
    server = await startTestServer({ websubAllowPrivate: 'true', websubMaxSubscriptionsPerFeed: '3' });
  });
  after(async () => {
    await server.stop();
  });

  it('verifies a subscriber with the challenge and delivers a signed document with the new entry', async () => {
    const sub = await startSubscriber();
    try {
      const feed = await createFeed(server.base, 'pushed');
      const secret = 'a subscriber secret';
      const asked = await hubRequest(server.base, {
        'hub.mode': 'subscribe', 'hub.topic': feed.feeds.atom, 'hub.callback': sub.callback('/atom?x=1'), 'hub.secret': secret, 'hub.lease_seconds': '7200',
      });
      assert.equal(asked.status, 202);
      const id = await feedIdOf(server, feed.address);
      await waitFor(async () => (await server.app.stores.app.websubSubscriptionsOfFeed(id)).length === 1, 5000, 'subscription stored');
      const verify = sub.requests.find((r) => r.method === 'GET')!;
      assert.equal(verify.url.pathname, '/atom');
      assert.equal(verify.url.searchParams.get('x'), '1');
      assert.equal(verify.url.searchParams.get('hub.mode'), 'subscribe');
      assert.equal(verify.url.searchParams.get('hub.topic'), feed.feeds.atom);
      assert.equal(verify.url.searchParams.get('hub.lease_seconds'), '7200');

      const sent = await sendOne(server.smtpPort, 'letters@news.example', feed.address, mail('Pushed news'));
      assert.match(sent.data!, /^250 /);
      const delivery = await waitFor(async () => sub.requests.find((r) => r.method === 'POST'), 10000, 'a delivery');
      assert.match(String(delivery.headers['content-type']), /^application\/atom\+xml/);
      assert.ok(delivery.body.toString().includes('Pushed news'));
      const expected = `sha256=${createHmac('sha256', secret).update(delivery.body).digest('hex')}`;
      assert.equal(delivery.headers['x-hub-signature'], expected);
      const link = String(delivery.headers.link);
      assert.ok(link.includes(`<${server.base}/websub>; rel="hub"`));
      assert.ok(link.includes(`<${feed.feeds.atom}>; rel="self"`));
    } finally {
      await sub.close();
    }
  });

  it('does not subscribe a callback that echoes a wrong challenge', async () => {
    const sub = await startSubscriber({ echo: 'wrong' });
    try {
      const feed = await createFeed(server.base, 'wrong echo');
      const id = await feedIdOf(server, feed.address);
      assert.equal((await hubRequest(server.base, { 'hub.mode': 'subscribe', 'hub.topic': feed.feeds.rss, 'hub.callback': sub.callback() })).status, 202);
      await waitFor(async () => sub.requests.some((r) => r.method === 'GET'), 5000, 'verification request');
      // The verification job has finished once the queue has no websub job left to run.
      await waitFor(() => noJobsOf(server, 'websub-verify'), 5000, 'verification finished');
      assert.equal((await server.app.stores.app.websubSubscriptionsOfFeed(id)).length, 0);
    } finally {
      await sub.close();
    }
  });

  it('stops deliveries after an unsubscribe', async () => {
    const sub = await startSubscriber();
    try {
      const feed = await createFeed(server.base, 'unsubscribed');
      const id = await feedIdOf(server, feed.address);
      await hubRequest(server.base, { 'hub.mode': 'subscribe', 'hub.topic': feed.feeds.json, 'hub.callback': sub.callback() });
      await waitFor(async () => (await server.app.stores.app.websubSubscriptionsOfFeed(id)).length === 1, 5000, 'subscribed');
      await sendOne(server.smtpPort, 'letters@news.example', feed.address, mail('First'));
      const first = await waitFor(async () => sub.requests.find((r) => r.method === 'POST'), 10000, 'first delivery');
      assert.match(String(first.headers['content-type']), /^application\/feed\+json/);
      assert.equal(first.headers['x-hub-signature'], undefined, 'no secret, no signature');

      assert.equal((await hubRequest(server.base, { 'hub.mode': 'unsubscribe', 'hub.topic': feed.feeds.json, 'hub.callback': sub.callback() })).status, 202);
      await waitFor(async () => (await server.app.stores.app.websubSubscriptionsOfFeed(id)).length === 0, 5000, 'unsubscribed');
      const unsubscribeCheck = sub.requests.filter((r) => r.method === 'GET').at(-1)!;
      assert.equal(unsubscribeCheck.url.searchParams.get('hub.mode'), 'unsubscribe');
      const before = sub.requests.length;
      await sendOne(server.smtpPort, 'letters@news.example', feed.address, mail('Second'));
      await waitFor(async () => (await server.app.stores.app.countEntries(id)) === 2, 5000, 'second entry stored');
      // Deliveries are enqueued by the ingest job as it stores the entry: once it is done, none was.
      await waitFor(() => noJobsOf(server, 'ingest'), 5000, 'ingest finished');
      await waitFor(() => noJobsOf(server, 'websub-deliver'), 10000, 'deliveries finished');
      assert.equal(sub.requests.length, before);
    } finally {
      await sub.close();
    }
  });

  it('delivers a per-sender topic only that sender\'s entries', async () => {
    const sub = await startSubscriber();
    try {
      const feed = await createFeed(server.base, 'senders');
      const id = await feedIdOf(server, feed.address);
      await sendOne(server.smtpPort, 'letters@news.example', feed.address, mail('From letters'));
      await waitFor(async () => (await server.app.stores.app.countEntries(id)) === 1, 5000, 'first entry');
      const topic = `${feed.feeds.atom.slice(0, -'.atom'.length)}/senders/${senderKey(id, 'letters@news.example')}.rss`;
      assert.equal((await fetch(topic)).status, 200);
      assert.equal((await hubRequest(server.base, { 'hub.mode': 'subscribe', 'hub.topic': topic, 'hub.callback': sub.callback() })).status, 202);
      await waitFor(async () => (await server.app.stores.app.websubSubscriptionsOfFeed(id)).length === 1, 5000, 'subscribed');
      await sendOne(server.smtpPort, 'other@else.example', feed.address, message({ From: 'other@else.example', Subject: 'From someone else' }));
      await waitFor(async () => (await server.app.stores.app.countEntries(id)) === 2, 5000, 'second entry');
      await waitFor(() => noJobsOf(server, 'ingest'), 5000, 'ingest finished');
      assert.equal(sub.requests.filter((r) => r.method === 'POST').length, 0);
      await sendOne(server.smtpPort, 'letters@news.example', feed.address, mail('Letters again'));
      const delivery = await waitFor(async () => sub.requests.find((r) => r.method === 'POST'), 10000, 'a delivery');
      assert.match(String(delivery.headers['content-type']), /^application\/rss\+xml/);
      assert.ok(delivery.body.toString().includes('Letters again'));
      assert.ok(!delivery.body.toString().includes('From someone else'));
      assert.ok(String(delivery.headers.link).includes(`<${topic}>; rel="self"`));
    } finally {
      await sub.close();
    }
  });

  it('ends subscriptions when the feed URL is rotated, without sending the new URL', async () => {
    const sub = await startSubscriber();
    try {
      const feed = await createFeed(server.base, 'rotated');
      const id = await feedIdOf(server, feed.address);
      await hubRequest(server.base, { 'hub.mode': 'subscribe', 'hub.topic': feed.feeds.atom, 'hub.callback': sub.callback() });
      await waitFor(async () => (await server.app.stores.app.websubSubscriptionsOfFeed(id)).length === 1, 5000, 'subscribed');
      await server.app.stores.app.rotateFeedToken(id);
      await sendOne(server.smtpPort, 'letters@news.example', feed.address, mail('After rotation'));
      await waitFor(async () => (await server.app.stores.app.websubSubscriptionsOfFeed(id)).length === 0, 10000, 'subscription ended');
      assert.equal(sub.requests.filter((r) => r.method === 'POST').length, 0);
    } finally {
      await sub.close();
    }
  });

  it('checks the callback\'s address again on every delivery', async () => {
    const sub = await startSubscriber();
    const config = server.app.config;
    try {
      const feed = await createFeed(server.base, 'rechecked');
      const id = await feedIdOf(server, feed.address);
      await hubRequest(server.base, { 'hub.mode': 'subscribe', 'hub.topic': feed.feeds.atom, 'hub.callback': sub.callback() });
      await waitFor(async () => (await server.app.stores.app.websubSubscriptionsOfFeed(id)).length === 1, 5000, 'subscribed');
      // As if the callback's host now resolved to a private address: the delivery must not be made.
      config.websubAllowPrivate = false;
      await sendOne(server.smtpPort, 'letters@news.example', feed.address, mail('Not for loopback'));
      await waitFor(async () => (await server.app.stores.app.countEntries(id)) === 1, 5000, 'entry stored');
      await waitFor(() => noJobsOf(server, 'ingest'), 5000, 'ingest finished');
      await waitFor(() => noJobsOf(server, 'websub-deliver'), 10000, 'delivery job finished');
      assert.equal(sub.requests.filter((r) => r.method === 'POST').length, 0);
    } finally {
      config.websubAllowPrivate = true;
      await sub.close();
    }
  });

  it('retries a delivery the callback failed', async () => {
    const sub = await startSubscriber({ failPosts: 1 });
    try {
      const feed = await createFeed(server.base, 'retried');
      const id = await feedIdOf(server, feed.address);
      await hubRequest(server.base, { 'hub.mode': 'subscribe', 'hub.topic': feed.feeds.atom, 'hub.callback': sub.callback(), 'hub.secret': 's' });
      await waitFor(async () => (await server.app.stores.app.websubSubscriptionsOfFeed(id)).length === 1, 5000, 'subscribed');
      await sendOne(server.smtpPort, 'letters@news.example', feed.address, mail('Retried'));
      await waitFor(async () => sub.requests.filter((r) => r.method === 'POST').length === 2, 20000, 'a second attempt');
      const [first, second] = sub.requests.filter((r) => r.method === 'POST');
      assert.deepEqual(second!.body, first!.body);
      assert.equal(second!.headers['x-hub-signature'], `sha256=${createHmac('sha256', 's').update(second!.body).digest('hex')}`);
    } finally {
      await sub.close();
    }
  });

  it('refuses unknown topics, bad callbacks, long secrets and bad modes with 4xx', async () => {
    const feed = await createFeed(server.base, 'checks');
    const unknown = feed.feeds.atom.replace(/\/feeds\/[^.]+/, '/feeds/aaaaaaaaaaaaaaaaaaaaaaaaaa');
    assert.equal((await hubRequest(server.base, { 'hub.mode': 'subscribe', 'hub.topic': unknown, 'hub.callback': 'http://127.0.0.1:9/' })).status, 404);
    assert.equal((await hubRequest(server.base, { 'hub.mode': 'subscribe', 'hub.topic': feed.page, 'hub.callback': 'http://127.0.0.1:9/' })).status, 404);
    assert.equal((await hubRequest(server.base, { 'hub.mode': 'subscribe', 'hub.topic': feed.feeds.atom, 'hub.callback': 'ftp://127.0.0.1/' })).status, 400);
    assert.equal((await hubRequest(server.base, { 'hub.mode': 'publish', 'hub.topic': feed.feeds.atom, 'hub.callback': 'http://127.0.0.1:9/' })).status, 400);
    assert.equal((await hubRequest(server.base, { 'hub.mode': 'subscribe', 'hub.topic': feed.feeds.atom, 'hub.callback': 'http://127.0.0.1:9/', 'hub.secret': 'x'.repeat(200) })).status, 400);
    assert.equal((await hubRequest(server.base, { 'hub.mode': 'subscribe', 'hub.topic': feed.feeds.atom, 'hub.callback': 'http://127.0.0.1:9/', 'hub.lease_seconds': '-5' })).status, 400);
  });

  it('keeps leases within the configured bounds', async () => {
    const sub = await startSubscriber();
    try {
      const feed = await createFeed(server.base, 'leases');
      const leases: string[] = [];
      for (const [path, asked] of [['/short', '1'], ['/long', '999999999'], ['/none', '']] as const) {
        await hubRequest(server.base, { 'hub.mode': 'subscribe', 'hub.topic': feed.feeds.atom, 'hub.callback': sub.callback(path), 'hub.lease_seconds': asked });
        const check = await waitFor(async () => sub.requests.find((r) => r.method === 'GET' && r.url.pathname === path), 5000, `verification of ${path}`);
        leases.push(check.url.searchParams.get('hub.lease_seconds')!);
      }
      const c = server.app.config;
      assert.deepEqual(leases, [String(c.websubLeaseMinSeconds), String(c.websubLeaseMaxSeconds), String(c.websubLeaseDefaultSeconds)]);
    } finally {
      await sub.close();
    }
  });

  it('caps the subscriptions of one feed', async () => {
    const sub = await startSubscriber();
    try {
      const feed = await createFeed(server.base, 'capped');
      const id = await feedIdOf(server, feed.address);
      for (const n of [1, 2, 3]) {
        assert.equal((await hubRequest(server.base, { 'hub.mode': 'subscribe', 'hub.topic': feed.feeds.atom, 'hub.callback': sub.callback(`/c${n}`) })).status, 202);
      }
      await waitFor(async () => (await server.app.stores.app.websubSubscriptionsOfFeed(id)).length === 3, 5000, 'three subscriptions');
      const fourth = await hubRequest(server.base, { 'hub.mode': 'subscribe', 'hub.topic': feed.feeds.rss, 'hub.callback': sub.callback('/c4') });
      assert.equal(fourth.status, 403);
      // A renewal of an existing subscription is not a new one.
      assert.equal((await hubRequest(server.base, { 'hub.mode': 'subscribe', 'hub.topic': feed.feeds.atom, 'hub.callback': sub.callback('/c1') })).status, 202);
    } finally {
      await sub.close();
    }
  });

  it('deletes a feed\'s subscriptions with the feed', async () => {
    const sub = await startSubscriber();
    try {
      const feed = await createFeed(server.base, 'deleted');
      const id = await feedIdOf(server, feed.address);
      await hubRequest(server.base, { 'hub.mode': 'subscribe', 'hub.topic': feed.feeds.atom, 'hub.callback': sub.callback() });
      await waitFor(async () => (await server.app.stores.app.websubSubscriptionsOfFeed(id)).length === 1, 5000, 'subscribed');
      await server.app.stores.removeFeed(id);
      assert.equal((await server.app.stores.app.websubSubscriptionsOfFeed(id)).length, 0);
    } finally {
      await sub.close();
    }
  });

  it('advertises the hub and the document itself in Atom, RSS and JSON Feed', async () => {
    const feed = await createFeed(server.base, 'advertised');
    const hub = `${server.base}/websub`;
    const atom = await (await fetch(feed.feeds.atom)).text();
    assert.ok(atom.includes(`<link rel="hub" href="${hub}"/>`));
    assert.ok(atom.includes(`<link rel="self" type="application/atom+xml" href="${feed.feeds.atom}"/>`));
    const rss = await (await fetch(feed.feeds.rss)).text();
    assert.ok(rss.includes('xmlns:atom="http://www.w3.org/2005/Atom"'));
    assert.ok(rss.includes(`<atom:link rel="hub" href="${hub}"/>`));
    assert.ok(rss.includes(`<atom:link rel="self" type="application/rss+xml" href="${feed.feeds.rss}"/>`));
    const json = await (await fetch(feed.feeds.json, { headers: { Accept: 'application/feed+json' } })).json() as { hubs?: { type: string; url: string }[]; feed_url?: string };
    assert.deepEqual(json.hubs, [{ type: 'WebSub', url: hub }]);
    assert.equal(json.feed_url, feed.feeds.json);
  });
});

describe('WebSub hub without private callbacks', () => {
  let server: TestServer;
  before(async () => {
    server = await startTestServer({});
  });
  after(async () => {
    await server.stop();
  });

  it('refuses a loopback callback and makes no request to it', async () => {
    const sub = await startSubscriber();
    try {
      const feed = await createFeed(server.base, 'private');
      for (const callback of [sub.callback(), sub.callback().replace('127.0.0.1', 'localhost'), sub.callback().replace('127.0.0.1', '[::ffff:127.0.0.1]')]) {
        const r = await hubRequest(server.base, { 'hub.mode': 'subscribe', 'hub.topic': feed.feeds.atom, 'hub.callback': callback });
        assert.equal(r.status, 400, callback);
      }
      assert.equal((await server.app.stores.queue.jobsInState('ready')).filter((j) => j.task === 'websub-verify').length, 0);
      assert.equal(sub.requests.length, 0);
    } finally {
      await sub.close();
    }
  });
});

describe('the callback address checker', () => {
  it('refuses loopback, private, link-local, multicast, unspecified, CGNAT and mapped forms', () => {
    for (const a of ['127.0.0.1', '127.255.0.9', '::1', '10.1.2.3', '172.16.0.1', '172.31.255.255', '192.168.1.1', '169.254.169.254', 'fe80::1', 'fc00::1', 'fd12:3456::1',
      '::ffff:127.0.0.1', '::ffff:7f00:1', '::ffff:10.0.0.1', '::ffff:a9fe:a9fe', '0.0.0.0', '::', '100.64.0.1', '100.127.255.254', '224.0.0.1', 'ff02::1',
      '255.255.255.255', '64:ff9b::7f00:1', 'not an address']) {
      assert.equal(isRefusedAddress(a), true, a);
    }
  });
  it('lets public addresses through', () => {
    for (const a of ['93.184.216.34', '8.8.8.8', '100.63.255.255', '100.128.0.1', '172.32.0.1', '2606:4700:4700::1111', '::ffff:93.184.216.34']) {
      assert.equal(isRefusedAddress(a), false, a);
    }
  });
});
