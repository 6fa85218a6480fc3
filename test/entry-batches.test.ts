/**
 * Entries stored in groups (store/group-commit.ts, insertEntries): one transaction for the
 * entries of several messages, each in a savepoint of its own, so one message that fails
 * costs only itself; the kill -9 storm of durability.test.ts covers crashes with groups on.
 */
import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import type { EntryContent, NewEntry } from '../src/store/entries.js';
import { openStores, type Stores } from '../src/store/index.js';
import { createFeed, readFeed, sendRaw, startTestServer, tempDir, waitForEntries } from './support/helpers.js';

function content(subject: string): EntryContent {
  return {
    fromName: 'Jane Writer', fromAddress: 'jane@example.com', subject, sentAt: null,
    html: `<p>${subject}</p>`, text: subject, confirmUrl: null, note: null, parts: [],
  };
}

function entry(feedId: number, n: number, subject = `issue ${n}`): NewEntry {
  return { feedId, journalUid: `uid-${n}`, receivedAt: 1_800_000_000_000 + n, raw: Buffer.from(`raw message ${n}`), content: content(subject) };
}

/** An entry the database refuses (a subject is required): stands for any message whose storing fails. */
function failing(feedId: number, n: number): NewEntry {
  return { ...entry(feedId, n), content: { ...content(''), subject: null as unknown as string } };
}

async function subjects(stores: Stores, feedId: number): Promise<string[]> {
  return (await stores.app.entriesOfFeed(feedId, 100)).map((e) => e.subject).sort();
}

describe('entries stored in groups', () => {
  const stores = openStores(tempDir());
  after(() => stores.close());

  it('stores the other entries of a group when one fails, and the failed one when it is retried, each once', async () => {
    const created = await stores.app.createFeed('groups', null);
    assert.ok('feed' in created);
    const feedId = created.feed.id;
    const outcomes = await stores.app.insertEntries([entry(feedId, 1), failing(feedId, 2), entry(feedId, 3)]);
    assert.ok('value' in outcomes[0]! && outcomes[0].value !== undefined);
    assert.ok('error' in outcomes[1]!, 'the refused entry is reported as failed');
    assert.ok('value' in outcomes[2]! && outcomes[2].value !== undefined);
    assert.deepEqual(await subjects(stores, feedId), ['issue 1', 'issue 3']);

    // The job of the failed message runs again; the others may run again too (a retry after a crash).
    const again = await stores.app.insertEntries([entry(feedId, 1), entry(feedId, 2), entry(feedId, 3)]);
    assert.deepEqual(again.map((o) => 'value' in o && o.value !== undefined), [false, true, false], 'only the failed entry is stored by the retry');
    assert.deepEqual(await subjects(stores, feedId), ['issue 1', 'issue 2', 'issue 3']);
    assert.equal(await stores.app.countEntries(feedId), 3);
  });

  it('groups calls made together, and tells each caller its own outcome', async () => {
    const created = await stores.app.createFeed('grouped calls', null);
    assert.ok('feed' in created);
    const feedId = created.feed.id;
    const settled = await Promise.allSettled([10, 11, 12, 13].map((n) => stores.app.storeEntry(n === 12 ? failing(feedId, n) : entry(feedId, n))));
    assert.deepEqual(settled.map((s) => s.status), ['fulfilled', 'fulfilled', 'rejected', 'fulfilled']);
    assert.deepEqual(await subjects(stores, feedId), ['issue 10', 'issue 11', 'issue 13']);
    assert.ok(await stores.app.storeEntry(entry(feedId, 12)), 'the retry stores it');
    assert.equal(await stores.app.storeEntry(entry(feedId, 10)), undefined, 'a stored entry is not stored twice');
    assert.equal(await stores.app.countEntries(feedId), 4);
  });

  it('stores a full queue of messages exactly once (real server, real SMTP, many jobs at a time)', { timeout: 90_000 }, async () => {
    // The queue fills while no jobs run, then a server with jobs finds all of them at once.
    const filler = await startTestServer({}, { web: true, smtp: true, jobs: false });
    const subjectsSent = Array.from({ length: 40 }, (_, i) => `batch message ${i}`);
    let feed;
    try {
      feed = await createFeed(filler.base, 'many at once');
      for (let i = 0; i < subjectsSent.length; i += 4) {
        await Promise.all(subjectsSent.slice(i, i + 4).map((subject) => sendRaw(filler.smtpPort, feed!.address, [
          'From: "Jane Writer" <jane@example.com>', `To: ${feed!.address}`, `Subject: ${subject}`,
          `Message-ID: <${subject.replace(/ /g, '.')}@example.com>`, 'Content-Type: text/html; charset=utf-8', '', `<p>${subject}</p>`, '',
        ].join('\r\n'))));
      }
    } finally {
      await filler.stop();
    }
    const server = await startTestServer({ dataDir: filler.dataDir, workerConcurrency: '8' });
    try {
      const url = feed.feeds.json.replace(filler.base, server.base);
      await waitForEntries(url, 'json', 40, 60_000);
      const items = await readFeed(url, 'json');
      assert.deepEqual(items.map((i) => i.title).sort(), [...subjectsSent].sort());
    } finally {
      await server.stop();
    }
  });
});
