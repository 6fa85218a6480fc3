/**
 * SQLite gives a deleted feed's id to the next new feed (feeds.id has no AUTOINCREMENT). Mail
 * journaled for the deleted feed before its deletion must not become an entry of the new one.
 * (Review of issue 14, F2. The rendered-document keys carry a digest of the feed's secret for
 * the same reason: F1.)
 */
import assert from 'node:assert/strict';
import { it } from 'node:test';
import { createFeed, readFeed, sendRaw, startTestServer, waitForEntries } from './support/helpers.js';

it('does not store a deleted feed\'s pending mail into a new feed that reuses its id', async () => {
  // Mail is received and journaled while no job runs, so it is still pending when the feed goes.
  const web = await startTestServer({}, { web: true, smtp: true, jobs: false });
  try {
    const other = await createFeed(web.base, 'Other recipient');
    const deleted = await createFeed(web.base, 'Deleted feed'); // the highest id: SQLite hands it out again
    const raw = `From: Sender <sender@example.com>\r\nTo: ${deleted.address}, ${other.address}\r\nSubject: sent to the deleted feed\r\nMessage-ID: <reuse-${Date.now()}@example.com>\r\n\r\nhello\r\n`;
    await sendRaw(web.smtpPort, [deleted.address, other.address], raw);
    const removed = await fetch(`${deleted.manage}/delete`, { method: 'POST', headers: { 'Content-Type': 'application/x-www-form-urlencoded', Accept: 'application/json' }, body: 'confirm=yes' });
    assert.equal(removed.status, 200);
    const next = await createFeed(web.base, 'Brand new feed');
    const jobs = await startTestServer({ dataDir: web.dataDir }, { web: false, smtp: false, jobs: true });
    try {
      // The other recipient gets it: the job ran.
      await waitForEntries(other.feeds.atom, 'atom', 1, 15_000);
      assert.deepEqual((await readFeed(next.feeds.atom, 'atom')).map((i) => i.title), [], 'the new feed received nothing');
    } finally {
      await jobs.stop();
    }
  } finally {
    await web.stop();
  }
});
