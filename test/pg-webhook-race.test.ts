/**
 * The same signed webhook delivery posted to two instances on one PostgreSQL database at the
 * same moment (issue 15; the PostgreSQL pass only): accepted once (202), the other refused as
 * a replay (409), and the message journaled once.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { signRawDelivery } from '../src/mail/webhooks/raw.js';
import { createFeed, postgresOnly, startTestServer, tempDir, testDatabaseUrl } from './support/helpers.js';

const SECRET = 'test-secret-that-is-long-enough-0123456789';
const PAIRS = 20;

describe('a signed webhook delivery raced to two instances', { timeout: 120_000 }, () => {
  it('is accepted once and journaled once', async (t) => {
    if (postgresOnly(t, 'two instances share one PostgreSQL database')) return;
    const databaseUrl = (await testDatabaseUrl(tempDir()))!;
    const a = await startTestServer({ webhookSecret: SECRET, databaseUrl }, { web: true, smtp: false, jobs: false });
    const b = await startTestServer({ webhookSecret: SECRET, databaseUrl }, { web: true, smtp: false, jobs: false });
    try {
      const feed = await createFeed(a.base, 'raced');
      const target = `/inbound/raw?to=${encodeURIComponent(feed.address)}`;
      for (let i = 0; i < PAIRS; i++) {
        const body = Buffer.from(`From: Relay <news@example.com>\r\nSubject: raced ${i}\r\n\r\nDelivered twice at once.\r\n`);
        const timestamp = Math.floor(Date.now() / 1000);
        const signature = signRawDelivery(SECRET, { timestamp, method: 'POST', target, body });
        const post = (base: string) => fetch(`${base}${target}`, {
          method: 'POST',
          headers: { 'Content-Type': 'message/rfc822', 'X-Feedmail-Timestamp': String(timestamp), 'X-Feedmail-Signature': signature },
          body: new Uint8Array(body),
        }).then((r) => r.status);
        const statuses = (await Promise.all([post(a.base), post(b.base)])).sort();
        assert.deepEqual(statuses, [202, 409], `delivery ${i}`);
      }
      const journaled = await a.app.stores.queue.journalAfter(0, 10 * PAIRS);
      assert.equal(journaled.length, PAIRS, 'each delivery journaled once');
    } finally {
      await Promise.all([a.stop(), b.stop()]);
    }
  });
});
