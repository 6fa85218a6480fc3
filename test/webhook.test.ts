/** The signed raw-MIME webhook: authenticated, durable before 2xx, and honest about full disks. */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { signRawDelivery } from '../src/mail/webhooks/raw.js';
import { createFeed, readFeed, startTestServer, type TestServer, waitForEntries } from './helpers.js';

const SECRET = 'test-secret-that-is-long-enough-0123456789';
const message = (subject: string) => Buffer.from(`From: Relay News <news@example.com>\r\nSubject: ${subject}\r\n\r\nDelivered by webhook.\r\n`);

function deliver(base: string, to: string[], body: Buffer, options: { secret?: string; timestamp?: number } = {}) {
  const timestamp = options.timestamp ?? Math.floor(Date.now() / 1000);
  const query = to.map((t) => `to=${encodeURIComponent(t)}`).join('&');
  return fetch(`${base}/inbound/raw?${query}`, {
    method: 'POST',
    headers: {
      'Content-Type': 'message/rfc822',
      'X-Feedmail-Timestamp': String(timestamp),
      'X-Feedmail-Signature': signRawDelivery(options.secret ?? SECRET, timestamp, body),
    },
    body: new Uint8Array(body),
  });
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

  it('refuses bad signatures, stale timestamps, unknown recipients and oversized bodies with the right status', async () => {
    const feed = await createFeed(server.base);
    assert.equal((await deliver(server.base, [feed.address], message('x'), { secret: 'another-secret-that-is-long-enough-000' })).status, 401);
    assert.equal((await deliver(server.base, [feed.address], message('x'), { timestamp: Math.floor(Date.now() / 1000) - 3600 })).status, 401);
    const unknown = await deliver(server.base, ['nobody@localhost'], message('x'));
    assert.equal(unknown.status, 422);
    assert.equal(((await unknown.json()) as { error: { code: string } }).error.code, 'unknown_recipient');
    assert.equal((await deliver(server.base, [feed.address], Buffer.alloc(100_000, 'a'))).status, 413);
    assert.equal((await readFeed(feed.feeds.atom, 'atom')).length, 0, 'nothing refused was stored');
  });

  it('answers 503 with Retry-After when the database is full, and accepts again once it is not', async () => {
    const feed = await createFeed(server.base);
    const queue = server.app.stores.queue.raw;
    queue.pragma(`max_page_count = ${queue.pragma('page_count', { simple: true }) as number}`);
    try {
      const full = await deliver(server.base, [feed.address], Buffer.concat([message('while full'), Buffer.alloc(50_000, 'b')]));
      assert.equal(full.status, 503);
      assert.ok(Number(full.headers.get('retry-after')) > 0);
      assert.equal(((await full.json()) as { error: { code: string } }).error.code, 'storage_full');
    } finally {
      queue.pragma('max_page_count = 4294967294');
    }
    assert.equal((await deliver(server.base, [feed.address], message('after'))).status, 202);
  });

  it('is off (404) without a secret, and 503 below the free-space minimum', async () => {
    const off = await startTestServer();
    try {
      assert.equal((await deliver(off.base, ['a@localhost'], message('x'))).status, 404);
    } finally {
      await off.stop();
    }
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
