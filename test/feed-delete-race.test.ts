/**
 * Mail journaled for a feed just after it was deleted (another instance passed the recipient
 * check before the delete; issue 15): the ingest job drops its raw mail instead of leaving it
 * in the journal until retention.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { createFeed, sendRaw, startTestServer, waitFor, waitForEntries } from './support/helpers.js';

describe('mail journaled for a feed deleted a moment before', { timeout: 60_000 }, () => {
  it('is dropped from the journal by its ingest job', async () => {
    const server = await startTestServer();
    try {
      const feed = await createFeed(server.base, 'deleted');
      await sendRaw(server.smtpPort, feed.address, `From: News <news@example.com>\r\nTo: ${feed.address}\r\nSubject: first\r\n\r\nBody.\r\n`);
      await waitForEntries(feed.feeds.json, 'json', 1);
      const [entry] = await server.app.stores.app.entriesAfter(0, 1);
      const feedId = entry!.feed_id;
      const deleted = await fetch(`${feed.manage.replace(/\/$/, '')}/delete`, {
        method: 'POST', headers: { 'Content-Type': 'application/x-www-form-urlencoded', Accept: 'application/json', Origin: server.base }, body: 'confirm=yes',
      });
      assert.equal(deleted.status, 200);
      // What the other instance commits after the delete's cleanup ran.
      const late = await server.app.stores.queue.journalMessage({
        source: 'smtp', mailFrom: 'news@example.com', feedIds: [feedId], raw: Buffer.from('From: News <news@example.com>\r\nSubject: late\r\n\r\nLate.\r\n'),
      });
      await waitFor(async () => !(await server.app.stores.queue.journalAfter(late - 1, 1)).some((r) => r.id === late), 15_000, 'the late raw mail dropped');
    } finally {
      await server.stop();
    }
  });
});
