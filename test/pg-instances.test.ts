/**
 * Two `feedmail serve` instances (different ports, as on two hosts) against one PostgreSQL
 * database (issue 15; the PostgreSQL pass only): a live feed page on one sees mail the
 * other received; mail spread over both SMTP ports appears exactly once; SIGKILL of one
 * instance mid-way loses no acknowledged message (the other finishes its jobs).
 * FEEDMAIL_PG_INSTANCES_MESSAGES sets how many messages (default 300; 2,000 by hand,
 * see the README's PostgreSQL notes).
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { createFeed, postgresOnly, readFeed, sendRaw, tempDir, testDatabaseUrl, waitFor, type CreatedFeed } from './support/helpers.js';
import { startServeProcess, type ServeProcess } from './support/serve-process.js';
import { openStream } from './support/sse.js';

const MESSAGES = Number(process.env.FEEDMAIL_PG_INSTANCES_MESSAGES || 300);
/** Each feed document shows at most 1,000 entries: the messages are spread over feeds of this many. */
const PER_FEED = 400;

function message(to: string, subject: string): string {
  return [`From: Shared News <news@shared.example>`, `To: ${to}`, `Subject: ${subject}`, `Message-ID: <${subject.replace(/\s+/g, '-')}@shared.example>`,
    'MIME-Version: 1.0', 'Content-Type: text/plain; charset=utf-8', '', `Body of ${subject}`, ''].join('\r\n');
}

/** The same URL on another instance (both answer for every feed). */
const at = (instance: ServeProcess, url: string) => url.replace(/^http:\/\/127\.0\.0\.1:\d+/, instance.base);

describe('two instances on one PostgreSQL', { timeout: 600_000 }, () => {
  it('share feeds, live updates and the work, and lose no acknowledged message when one is killed', async (t) => {
    if (postgresOnly(t, 'two instances share one PostgreSQL database')) return;
    const url = (await testDatabaseUrl(tempDir()))!;
    const env = {
      FEEDMAIL_DATABASE_URL: url, FEEDMAIL_FEED_MAX_ENTRIES: '1000', FEEDMAIL_FEED_KEEP_ENTRIES: '5000',
      FEEDMAIL_FEED_MESSAGES_PER_DAY: '0', FEEDMAIL_LOG_LEVEL: 'warn',
    };
    // Started one after the other: both migrate the same schemas, the second finds them done.
    const a = await startServeProcess({ processes: 1, env: { ...env, FEEDMAIL_LOG_LEVEL: 'info' } });
    const b = await startServeProcess({ processes: 1, env: { ...env, FEEDMAIL_LOG_LEVEL: 'info' } });
    const instances = [a, b];
    try {
      // A feed made on one instance is served by the other.
      const feeds: CreatedFeed[] = [];
      for (let i = 0; i < Math.ceil(MESSAGES / PER_FEED); i++) feeds.push(await createFeed(i % 2 ? b.base : a.base, `shared ${i}`));
      assert.equal((await fetch(at(b, feeds[0]!.feeds.json))).status, 200);

      // A live page open on b hears of mail that a received and stored.
      const stream = openStream(`${at(b, feeds[0]!.page).replace(/\/$/, '')}/events`);
      await stream.ready;
      assert.equal(stream.status, 200);
      const sentAt = Date.now();
      await sendRaw(a.smtpPort, feeds[0]!.address, message(feeds[0]!.address, 'live across instances'));
      await waitFor(async () => stream.events.some((e) => e.event === 'entry' && e.data?.includes('live across instances')), 15_000, 'the event on the other instance');
      t.diagnostic(`live event on instance b ${Date.now() - sentAt} ms after instance a acknowledged the message`);
      stream.close();

      // Mail over both SMTP ports, four senders at once; a is killed halfway.
      const acknowledged = new Set<string>(['live across instances']);
      const refused = new Set<string>();
      let next = 0;
      let killedAt = -1;
      const lane = async () => {
        for (let i = next++; i < MESSAGES; i = next++) {
          if (i === Math.floor(MESSAGES / 2) && killedAt < 0) {
            killedAt = i;
            a.child.kill('SIGKILL');
          }
          const feed = feeds[i % feeds.length]!;
          const subject = `shared message ${i}`;
          const to = killedAt < 0 && i % 2 === 0 ? a : b;
          try {
            await sendRaw(to.smtpPort, feed.address, message(feed.address, subject));
            acknowledged.add(subject);
          } catch {
            // Only a message sent to the killed instance may go unacknowledged.
            assert.equal(to, a, `${subject} refused by the surviving instance`);
            refused.add(subject);
          }
        }
      };
      await Promise.all([lane(), lane(), lane(), lane()]);
      assert.ok(killedAt > 0, 'instance a was killed mid-way');
      assert.equal(await a.exited, null, 'a died of SIGKILL');
      t.diagnostic(`${acknowledged.size} acknowledged, ${refused.size} refused while a was being killed`);

      // b takes over what a had claimed once its leases run out, and stores everything acknowledged.
      const seen = async () => (await Promise.all(feeds.map((f) => readFeed(at(b, f.feeds.json), 'json')))).flat().map((i) => i.title);
      const titles = await waitFor(async () => {
        const all = await seen();
        return [...acknowledged].every((s) => all.includes(s)) ? all : undefined;
      }, 180_000, 'every acknowledged message on the surviving instance');
      const counts = new Map<string, number>();
      for (const title of titles) counts.set(title, (counts.get(title) ?? 0) + 1);
      assert.deepEqual([...counts].filter(([, n]) => n > 1), [], 'no message appears twice');
      for (const title of titles) assert.ok(acknowledged.has(title) || refused.has(title), `${title} was sent`);
      const failed = await fetch(`${b.base}/metrics`).then((r) => r.text());
      assert.doesNotMatch(failed, /^feedmail_jobs\{state="failed"\} [1-9]/m, 'no job failed');
    } finally {
      await Promise.all(instances.map((i) => i.stop()));
    }
  });
});
