/**
 * Group commit of the journal (issue 14): messages arriving together share one durable
 * commit, each is acknowledged only once its commit is done, and a group that cannot be
 * committed (a full disk) gives each message its own outcome, never a "250" for one that
 * was not written, and never half a group.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import { describe, it } from 'node:test';
import { isDiskFull } from '../src/errors.js';
import { openStores } from '../src/store/index.js';
import type { JournalInput } from '../src/store/journal.js';
import { createFeed, readFeed, smtpTransport, startTestServer, tempDir, waitFor } from './support/helpers.js';

function newsletter(subject: string, to = 'someone@localhost'): Buffer {
  return Buffer.from([
    'From: "Jane Writer" <jane@example.com>',
    `To: ${to}`,
    `Subject: ${subject}`,
    `Message-ID: <${subject}@example.com>`,
    'Content-Type: text/html; charset=utf-8',
    '',
    `<p>${subject}</p>`,
    `<p>${'Twenty kilobytes of newsletter. '.repeat(600)}</p>`,
    '',
  ].join('\r\n'));
}

const input = (subject: string): JournalInput => ({ source: 'smtp', mailFrom: 'jane@example.com', feedIds: [1], raw: newsletter(subject) });

describe('group commit of the journal', () => {
  it('journals messages handed over together in one commit, each with its own row and ingest job', async () => {
    const dataDir = tempDir();
    const stores = openStores(dataDir);
    try {
      const subjects = Array.from({ length: 40 }, (_, i) => `together ${i}`);
      const ids = await Promise.all(subjects.map((s) => stores.queue.journalMessage(input(s))));
      assert.equal(new Set(ids).size, 40, 'each message has its own journal row');
      const stats = stores.queue.journalCommitStats();
      assert.equal(stats.messages, 40);
      assert.ok(stats.commits < stats.messages, `40 messages handed over in one turn share commits (${stats.commits} commits)`);
      for (const [i, id] of ids.entries()) {
        const row = await stores.queue.journalById(id);
        assert.ok(row?.raw.equals(newsletter(subjects[i]!)), `journal row ${id} holds its own message`);
      }
      const jobs = await stores.queue.jobsInState('ready');
      assert.deepEqual(jobs.filter((j) => j.task === 'ingest').map((j) => (JSON.parse(j.payload) as { journalId: number }).journalId).sort((a, b) => a - b), [...ids].sort((a, b) => a - b));
    } finally {
      await stores.close();
      fs.rmSync(dataDir, { recursive: true, force: true });
    }
  });

  it('when the disk fills during a group: the messages that fit are journaled, the others fail as disk full, nothing partial is left', async () => {
    const dataDir = tempDir();
    const stores = openStores(dataDir);
    try {
      // Room for a few 20 KB messages, not for all twenty: the group's one transaction fails.
      stores.queue.capGrowth(120 * 1024);
      const outcomes = await Promise.allSettled(Array.from({ length: 20 }, (_, i) => stores.queue.journalMessage(input(`crowded ${i}`))));
      const written = outcomes.flatMap((o) => (o.status === 'fulfilled' ? [o.value] : []));
      const failed = outcomes.flatMap((o) => (o.status === 'rejected' ? [o.reason as unknown] : []));
      assert.ok(written.length > 0, 'the messages that fit are not failed with the group');
      assert.ok(failed.length > 0, 'the disk did fill');
      for (const err of failed) assert.ok(isDiskFull(err), `a failed message reports the full disk, got ${String(err)}`);

      stores.queue.capGrowth(null);
      const rows = await stores.queue.journalAfter(0, 1000);
      assert.deepEqual(rows.map((r) => r.id).sort((a, b) => a - b), [...written].sort((a, b) => a - b), 'exactly the messages reported written are in the journal');
      const jobs = (await stores.queue.jobsInState('ready')).filter((j) => j.task === 'ingest');
      assert.equal(jobs.length, written.length, 'one ingest job per journaled message, none for a failed one');
      assert.deepEqual(stores.queue.integrityCheck(), ['ok']);
    } finally {
      await stores.close();
      fs.rmSync(dataDir, { recursive: true, force: true });
    }
  });

  it('acknowledges every message of many concurrent SMTP sessions, and stores each exactly once', { timeout: 120_000 }, async () => {
    const server = await startTestServer({ feedMessagesPerDay: '0' });
    try {
      const feed = await createFeed(server.base);
      const sessions = 12;
      const perSession = 4;
      const replies: string[] = [];
      await Promise.all(Array.from({ length: sessions }, async (_, s) => {
        const transport = smtpTransport(server.smtpPort);
        try {
          for (let m = 0; m < perSession; m++) {
            const info = await transport.sendMail({ envelope: { from: 'jane@example.com', to: feed.address }, raw: newsletter(`session ${s} message ${m}`, feed.address) });
            replies.push(info.response);
          }
        } finally {
          transport.close();
        }
      }));
      const total = sessions * perSession;
      assert.equal(replies.length, total);
      const journalIds = replies.map((r) => Number(/^250 .*queued as (\d+)/.exec(r)?.[1]));
      assert.ok(journalIds.every((id) => Number.isSafeInteger(id) && id > 0), 'every message got a 250 naming its journal row');
      assert.equal(new Set(journalIds).size, total, 'each 250 names its own journal row');

      const items = await waitFor(async () => {
        const read = await readFeed(feed.feeds.json, 'json');
        return read.length >= total && read;
      }, 60_000, `${total} entries`);
      const titles = items.map((i) => i.title).sort();
      const expected = Array.from({ length: sessions }, (_, s) => Array.from({ length: perSession }, (_, m) => `session ${s} message ${m}`)).flat().sort();
      assert.deepEqual(titles, expected, 'each acknowledged message is in the feed exactly once');
      const stats = server.app.stores.queue.journalCommitStats();
      assert.equal(stats.messages, total);
      assert.ok(stats.commits <= stats.messages);
    } finally {
      await server.stop();
    }
  });
});
