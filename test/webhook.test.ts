/** The signed raw-MIME webhook: authenticated, durable before 2xx, and honest about full disks. */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { signRawDelivery } from '../src/mail/webhooks/raw.js';
import { createFeed, readFeed, startTestServer, type TestServer, waitForEntries, sqliteOnly } from './support/helpers.js';

const SECRET = 'test-secret-that-is-long-enough-0123456789';
const message = (subject: string) => Buffer.from(`From: Relay News <news@example.com>\r\nSubject: ${subject}\r\n\r\nDelivered by webhook.\r\n`);

const target = (to: string[]) => `/inbound/raw?${to.map((t) => `to=${encodeURIComponent(t)}`).join('&')}`;

interface Delivery {
  timestamp: number;
  signature: string;
  body: Buffer;
}

/** Signs a delivery the way a relay does: timestamp, method, request target and body. */
function sign(to: string[], body: Buffer, options: { secret?: string; timestamp?: number } = {}): Delivery {
  const timestamp = options.timestamp ?? Math.floor(Date.now() / 1000);
  return { timestamp, body, signature: signRawDelivery(options.secret ?? SECRET, { timestamp, method: 'POST', target: target(to), body }) };
}

/** Posts a signed delivery to the given recipients (which need not be the ones it was signed for). */
function post(base: string, to: string[], d: Delivery) {
  return fetch(`${base}${target(to)}`, {
    method: 'POST',
    headers: { 'Content-Type': 'message/rfc822', 'X-Feedmail-Timestamp': String(d.timestamp), 'X-Feedmail-Signature': d.signature },
    body: new Uint8Array(d.body),
  });
}

function deliver(base: string, to: string[], body: Buffer, options: { secret?: string; timestamp?: number } = {}) {
  return post(base, to, sign(to, body, options));
}

describe('raw MIME webhook', () => {
  let server: TestServer;
  before(async () => {
    server = await startTestServer({ webhookSecret: SECRET, maxMessageBytes: '64k' });
  });
  after(async () => {
    await server.stop();
  });

  it('accepts a signed message with 202 and it becomes an entry', async () => {
    const feed = await createFeed(server.base);
    const res = await deliver(server.base, [feed.address, 'nobody@localhost'], message('via webhook'));
    assert.equal(res.status, 202);
    const body = (await res.json()) as { accepted: boolean; id: number; rejected: string[] };
    assert.deepEqual(body.rejected, ['nobody@localhost']);
    const items = await waitForEntries(feed.feeds.json, 'json');
    assert.equal(items[0]!.title, 'via webhook');
  });

  it('journals a message once for a feed named by several of its addresses', async () => {
    const feed = await createFeed(server.base);
    const [local, domain] = feed.address.split('@') as [string, string];
    const res = await deliver(server.base, [feed.address, `${local}+news@${domain}`, feed.address.toUpperCase()], message('three ways'));
    assert.equal(res.status, 202);
    const body = (await res.json()) as { id: number; rejected: string[]; deferred: string[] };
    assert.deepEqual([body.rejected, body.deferred], [[], []]);
    const row = await server.app.stores.queue.journalById(body.id);
    assert.equal(row?.source, 'webhook:raw');
    assert.equal(JSON.parse(row?.feed_ids ?? '[]').length, 1, 'the one feed, once');
  });

  it('refuses bad signatures, stale timestamps, unknown recipients and oversized bodies with the right status', async () => {
    const feed = await createFeed(server.base);
    const journalId = async (subject: string) => {
      const res = await deliver(server.base, [feed.address], message(subject));
      assert.equal(res.status, 202);
      return ((await res.json()) as { id: number }).id;
    };
    const before = await journalId('before the refusals');
    assert.equal((await deliver(server.base, [feed.address], message('x'), { secret: 'another-secret-that-is-long-enough-000' })).status, 401);
    assert.equal((await deliver(server.base, [feed.address], message('x'), { timestamp: Math.floor(Date.now() / 1000) - 3600 })).status, 401);
    const unknown = await deliver(server.base, ['nobody@localhost'], message('x'));
    assert.equal(unknown.status, 422);
    assert.equal(((await unknown.json()) as { error: { code: string } }).error.code, 'unknown_recipient');
    assert.equal((await deliver(server.base, [feed.address], Buffer.alloc(100_000, 'a'))).status, 413);
    // The feed alone would not show a refused message that was journaled but not yet stored: the journal would.
    assert.equal(await journalId('after the refusals'), before + 1, 'nothing refused was journaled');
    const items = await waitForEntries(feed.feeds.atom, 'atom', 2, 5000, 'the two accepted messages');
    assert.deepEqual(items.map((i) => i.title).sort(), ['after the refusals', 'before the refusals'], 'nothing refused was stored');
  });

  it('answers 503 with Retry-After when the database is full, and accepts the same request again once it is not', async (t) => {
    if (sqliteOnly(t, 'a capped SQLite file (capGrowth) stands for the full disk')) return;
    const feed = await createFeed(server.base);
    const queue = server.app.stores.queue;
    const delivery = sign([feed.address], Buffer.concat([message('while full'), Buffer.alloc(50_000, 'b')]));
    queue.capGrowth(0);
    try {
      const full = await post(server.base, [feed.address], delivery);
      assert.equal(full.status, 503);
      assert.ok(Number(full.headers.get('retry-after')) > 0);
      assert.equal(((await full.json()) as { error: { code: string } }).error.code, 'storage_full');
    } finally {
      queue.capGrowth(null);
    }
    // Nothing was journaled, so the relay's retry of the very same request is not a replay.
    assert.equal((await post(server.base, [feed.address], delivery)).status, 202);
    const items = await waitForEntries(feed.feeds.json, 'json');
    assert.equal(items[0]!.title, 'while full');
  });

  it('refuses a delivery re-addressed to another feed (401): the signature covers ?to=', async () => {
    const victim = await createFeed(server.base, 'victim');
    const attacker = await createFeed(server.base, 'attacker');
    const captured = sign([victim.address], message(`secret newsletter for ${victim.address}`));
    const readdressed = await post(server.base, [attacker.address], captured);
    assert.equal(readdressed.status, 401);
    assert.equal(((await readdressed.json()) as { error: { code: string } }).error.code, 'bad_signature');
    // Adding a recipient is re-addressing too.
    assert.equal((await post(server.base, [victim.address, attacker.address], captured)).status, 401);
    assert.equal((await post(server.base, [victim.address], captured)).status, 202, 'the delivery as signed is accepted');
    await waitForEntries(victim.feeds.json, 'json');
    assert.equal((await readFeed(attacker.feeds.json, 'json')).length, 0, "the attacker's feed got nothing");
  });

  it('accepts a signed delivery once: the exact replay gets 409 and stores nothing more', async () => {
    const feed = await createFeed(server.base);
    const delivery = sign([feed.address], message('only once'));
    const first = await post(server.base, [feed.address], delivery);
    assert.equal(first.status, 202);
    await waitForEntries(feed.feeds.json, 'json');
    const again = await post(server.base, [feed.address], delivery);
    assert.equal(again.status, 409);
    const error = ((await again.json()) as { error: { code: string; message: string } }).error;
    assert.equal(error.code, 'replayed_delivery');
    assert.match(error.message, /already accepted/);
    // The replay is refused by every process: it is remembered in queue.db, not in memory.
    assert.equal(await server.app.stores.queue.deliveryAccepted(delivery.signature.slice('sha256='.length)), true);
    await new Promise((r) => setTimeout(r, 300));
    assert.equal((await readFeed(feed.feeds.json, 'json')).length, 1);
  });

  it('is off (404) without a secret', async () => {
    const off = await startTestServer();
    try {
      assert.equal((await deliver(off.base, ['a@localhost'], message('x'))).status, 404);
    } finally {
      await off.stop();
    }
  });

  it('answers 503 below the free-space minimum', async (t) => {
    if (sqliteOnly(t, 'the free-space guard watches the data directory\'s disk, which holds the databases only with SQLite')) return;
    const full = await startTestServer({ webhookSecret: SECRET, minFreeBytes: '1000g' });
    try {
      const feed = await createFeed(full.base);
      const res = await deliver(full.base, [feed.address], message('x'));
      assert.equal(res.status, 503);
      assert.ok(res.headers.get('retry-after'));
    } finally {
      await full.stop();
    }
  });
});
