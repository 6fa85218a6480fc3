/** Journal, then acknowledge: nothing acknowledged is lost or doubled by kill -9, and jobs in flight run again. */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import { describe, it } from 'node:test';
import { formatSummary, runKillRestart, type KillRestartResult } from '../bench/kill-restart.js';
import { openStores } from '../src/store/index.js';
import { createFeed, readFeed, sendRaw, startTestServer, tempDir, waitFor, waitForEntries, openTestStores, sqliteOnly } from './support/helpers.js';
import { TestClock } from './support/clock.js';

function newsletter(subject: string): Buffer {
  return Buffer.from([
    'From: "Jane Writer" <jane@example.com>',
    'To: someone@localhost',
    `Subject: ${subject}`,
    'Date: Tue, 24 Nov 2026 10:00:00 +0000',
    `Message-ID: <${subject}@example.com>`,
    'Content-Type: text/html; charset=utf-8',
    '',
    `<p>${subject}</p>`,
    '',
  ].join('\r\n'));
}

describe('durability under kill -9', () => {
  let result: KillRestartResult | undefined;

  // Eight senders at once, so concurrent messages share journal commits (group commit): the
  // kills land in the middle of grouped commits too.
  it('keeps every acknowledged message exactly once across kill -9 and restarts (real server, real SMTP)', { timeout: 110_000 }, async (t) => {
    if (sqliteOnly(t, 'kill -9 of the SQLite files\' owner mid-commit (the PostgreSQL pass kills an instance in pg-instances.test.ts)')) return;
    result = await runKillRestart({ messages: 300, kills: 3, connections: 8, log: (line) => t.diagnostic(line) });
    for (const line of formatSummary(result).split('\n')) t.diagnostic(line);
    assert.equal(result.kills, 3);
    assert.ok(result.acknowledged > 0);
    assert.equal(result.rejected, 0, 'no message is refused for good');
    assert.equal(result.missingAcknowledged, 0, 'every acknowledged message has an entry');
    assert.equal(result.found + result.missingUnacknowledged, result.sent);
    assert.deepEqual(result.leftoverJobs, { ready: 0, claimed: 0, failed: 0 });
    assert.equal(result.feedMismatches, 0, 'the JSON feed shows what app.db holds');
    assert.deepEqual(result.violations, []);
    assert.ok(result.journalMessages > result.journalCommits, `messages of concurrent sessions shared commits (${result.journalCommits} commits seen for ${result.journalMessages} messages)`);
  });

  // When the server commits a message and dies before "250" reaches the client, the client
  // sends the same bytes again: two journal rows, which must still make one entry.
  it('shows a message re-sent after a lost acknowledgement only once', async (t) => {
    if (sqliteOnly(t, 'reads the result of the SQLite kill -9 run above')) return;
    assert.ok(result, 'the kill -9 run above must have completed');
    assert.equal(result.duplicates, 0, result.resendViolations.join('\n'));
  });

  // The kill -9 run above finds this only when a kill lands between the commit and the "250";
  // a sender retrying the same bytes in a second transaction is the same case without the luck.
  it('stores the same bytes sent in two SMTP transactions as one entry', async () => {
    const server = await startTestServer();
    try {
      const feed = await createFeed(server.base);
      const raw = newsletter('sent twice');
      await sendRaw(server.smtpPort, feed.address, raw);
      await sendRaw(server.smtpPort, feed.address, raw);
      await waitForEntries(feed.feeds.json, 'json', 1, 5000, 'the entry');
      const queue = server.app.stores.queue;
      await waitFor(async () => {
        const pending = [...await queue.jobsInState('ready'), ...await queue.jobsInState('claimed')];
        return !pending.some((j) => j.task === 'ingest');
      }, 10_000, 'both ingest jobs to finish');
      assert.equal((await queue.jobsInState('failed')).length, 0);
      assert.deepEqual((await readFeed(feed.feeds.json, 'json')).map((i) => i.title), ['sent twice']);
    } finally {
      await server.stop();
    }
  });

  // kill -9 keeps the OS page cache, so only the setting itself shows that a commit survives power loss.
  it('commits app.db and queue.db with synchronous=FULL', async (t) => {
    if (sqliteOnly(t, 'SQLite\'s synchronous pragma and WAL journal mode')) return;
    const server = await startTestServer();
    try {
      const { app, queue } = server.app.stores;
      assert.equal(queue.durability().synchronous, 'FULL', 'queue.db: FULL, the journal behind every "250"');
      assert.equal(app.durability().synchronous, 'FULL', 'app.db: FULL');
      assert.equal(app.durability().journalMode, 'wal');
    } finally {
      await server.stop();
    }
    const dataDir = tempDir();
    const stores = openStores(dataDir);
    try {
      assert.equal(stores.queue.durability().synchronous, 'FULL');
      assert.equal(stores.app.durability().synchronous, 'FULL');
    } finally {
      await stores.close();
      fs.rmSync(dataDir, { recursive: true, force: true });
    }
  });

  it('runs a job whose owner died (lease held by a dead process) again instead of failing it', { timeout: 60_000 }, async () => {
    const dataDir = tempDir();
    try {
      // The state kill -9 leaves behind: a journaled message whose ingest job is
      // claimed by a process that no longer exists, plus one whose lease is still running.
      const clock = new TestClock();
      const stores = await openTestStores(dataDir, { clock });
      const created = await stores.app.createFeed('durable', null);
      assert.ok('feed' in created);
      const { feed } = created;
      const journal = (subject: string) => stores.queue.journalMessage({ source: 'smtp', mailFrom: 'jane@example.com', feedIds: [feed.id], raw: newsletter(subject) });
      // Claimed by that process just before it died: its lease still runs for 1.5 s.
      await journal('lease still running');
      assert.equal((await stores.queue.claimJobs('dead:1', 10, 1_500, { tasks: ['ingest'] })).length, 1);
      // Claimed by it a minute and a half ago: its 30 s lease ran out.
      await clock.at(-90_000, async () => {
        const expired = await journal('in flight when killed');
        // A job row added through enqueueJob too, so both ways of creating jobs are covered.
        assert.ok(await stores.queue.enqueueJob({ task: 'ingest', payload: { journalId: expired }, priority: 0 }));
        assert.equal((await stores.queue.claimJobs('dead:1', 10, 30_000, { tasks: ['ingest'] })).length, 2);
      });
      const jobIds = (await stores.queue.jobsInState('claimed')).map((j) => j.id);
      assert.equal(jobIds.length, 3);
      await stores.close();

      const server = await startTestServer({ dataDir });
      try {
        const seenStates = new Set<string>();
        const queue = server.app.stores.queue;
        const watch = setInterval(() => {
          void Promise.all((['ready', 'claimed', 'failed'] as const).map((state) => queue.jobsInState(state))).then((lists) => {
            for (const r of lists.flat()) {
              seenStates.add(r.state);
              if (r.last_error) seenStates.add(`error: ${r.last_error.split('\n')[0]}`);
            }
          });
        }, 20);
        const feedUrl = `${server.base}/feeds/${feed.feed_token}.json`;
        try {
          const items = await waitForEntries(feedUrl, 'json', 2, 20_000, 'both entries');
          assert.deepEqual(items.map((i) => i.title).sort(), ['in flight when killed', 'lease still running']);
          await waitFor(async () => {
            for (const id of jobIds) if (await queue.jobById(id)) return false;
            return true;
          }, 10_000, 'every job row to be finished');
        } finally {
          clearInterval(watch);
        }
        assert.ok(![...seenStates].some((s) => s === 'failed' || s.startsWith('error: ')), `no job failed or recorded an error: ${[...seenStates].join(', ')}`);
        assert.ok(server.app.runner, 'this server runs jobs');
        assert.equal(server.app.counters.jobs.failed, 0);
        assert.equal(server.app.counters.jobs.retried, 0);
        assert.ok(server.app.counters.jobs.succeeded >= 3, 'the three ingest jobs (and the recurring ones) succeeded');
        // Two jobs for one journal row still make one entry.
        assert.equal((await readFeed(feedUrl, 'json')).length, 2);
      } finally {
        await server.stop();
      }
    } finally {
      fs.rmSync(dataDir, { recursive: true, force: true });
    }
  });
});
