/**
 * `feedmail serve --processes 2`: SIGHUP to the primary replaces the workers one at a time
 * while feeds are read and mail is sent without pause, and nothing is lost or refused:
 * every HTTP read answers 200, every SMTP transaction gets 250, and every acknowledged
 * message becomes exactly one entry. A worker killed with SIGKILL is replaced; SIGTERM
 * drains everything and the primary exits 0.
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { createFeed, sendRaw, waitFor, type CreatedFeed } from './support/helpers.js';
import { startServeProcess, type ServeProcess } from './support/serve-process.js';

let server: ServeProcess;

before(async () => {
  server = await startServeProcess({
    processes: 2,
    // Every message of the test stays visible in its feed's document.
    env: { FEEDMAIL_FEED_MAX_ENTRIES: '1000', FEEDMAIL_FEED_KEEP_ENTRIES: '1000', FEEDMAIL_FEED_MESSAGES_PER_DAY: '0' },
  });
});

after(async () => {
  if (server.child.exitCode === null) server.child.kill('SIGKILL');
  await server.exited;
});

interface Load {
  reads: number;
  readFailures: string[];
  sent: Map<string, number>;
  sendFailures: string[];
}

/** Reads feed documents and sends mail in several loops until `stop` is set. */
function runLoad(feeds: CreatedFeed[], stop: { now: boolean }): { load: Load; done: Promise<unknown> } {
  const load: Load = { reads: 0, readFailures: [], sent: new Map(), sendFailures: [] };
  let n = 0;
  const reader = async (i: number) => {
    while (!stop.now) {
      const feed = feeds[i % feeds.length]!;
      try {
        const res = await fetch(feed.feeds.json);
        await res.arrayBuffer();
        if (res.status === 200) load.reads++;
        else load.readFailures.push(`status ${res.status}`);
      } catch (err) {
        load.readFailures.push(String((err as Error).cause ?? err));
      }
    }
  };
  const sender = async (i: number) => {
    while (!stop.now) {
      const feedIndex = n % feeds.length;
      const subject = `rolling ${i} ${n++}`;
      try {
        const info = await sendRaw(server.smtpPort, feeds[feedIndex]!.address, `From: a@example.com\r\nSubject: ${subject}\r\n\r\nHello.\r\n`);
        if (/^250 /.test(info.response)) load.sent.set(subject, feedIndex);
        else load.sendFailures.push(info.response);
      } catch (err) {
        load.sendFailures.push(String(err));
      }
    }
  };
  const done = Promise.all([...[0, 1, 2, 3].map(reader), ...[0, 1].map(sender)]);
  return { load, done };
}

async function hangUp(): Promise<void> {
  const from = server.logs.length;
  process.kill(server.pid, 'SIGHUP');
  await server.waitForLog((l) => l.msg === 'cluster: rolling restart done', 120_000, from);
}

test('SIGHUP twice under continuous reads and sends: no failed request, no refused message, each message stored once', async (t) => {
  const feeds = await Promise.all([createFeed(server.base, 'one'), createFeed(server.base, 'two'), createFeed(server.base, 'three')]);
  const readyBefore = server.logs.filter((l) => l.msg === 'cluster: worker ready').map((l) => l.workerPid);
  const stop = { now: false };
  const { load, done } = runLoad(feeds, stop);
  await waitFor(async () => load.sent.size >= 10 && load.reads >= 20, 30_000, 'load to get going');
  await hangUp();
  const sentAfterFirst = load.sent.size;
  await hangUp();
  // Some more traffic on the last workers.
  await waitFor(async () => load.sent.size >= sentAfterFirst + 10, 30_000, 'sends after the restarts');
  stop.now = true;
  await done;
  t.diagnostic(`${load.reads} feed reads and ${load.sent.size} messages acknowledged across two rolling restarts`);

  assert.deepEqual(load.readFailures, [], 'every feed read answered 200');
  assert.deepEqual(load.sendFailures, [], 'every message was acknowledged with 250');
  assert.ok(load.reads > 50, `reads went on (${load.reads})`);
  // Four workers were replaced: none of the first ones is left.
  const drained = server.logs.filter((l) => l.msg === 'cluster: worker draining').map((l) => l.pid);
  for (const pid of readyBefore) assert.ok(drained.includes(pid), `worker ${pid} was replaced`);

  // Each acknowledged message is one entry of its feed, once.
  const expected = feeds.map((_, i) => [...load.sent].filter(([, f]) => f === i).map(([s]) => s).sort());
  for (const [i, feed] of feeds.entries()) {
    const titles = await waitFor(async () => {
      const doc = (await (await fetch(feed.feeds.json)).json()) as { items: { title: string }[] };
      const t = doc.items.map((item) => item.title);
      return t.length >= expected[i]!.length ? t : undefined;
    }, 60_000, `the entries of feed ${i}`);
    assert.deepEqual([...titles].sort(), expected[i], `feed ${i} has each acknowledged message exactly once`);
  }
});

test('a worker killed with SIGKILL is replaced, and SIGTERM drains and exits 0', async () => {
  const live = new Set<number>();
  for (const l of server.logs) {
    if (l.msg === 'cluster: worker ready' && typeof l.workerPid === 'number') live.add(l.workerPid);
    if (l.msg === 'cluster: worker draining' && typeof l.pid === 'number') live.delete(l.pid);
  }
  // The primary logs "worker ready" with the worker's pid (workerPid); a worker logs "draining" under its own pid.
  const victim = [...live].at(-1)!;
  const from = server.logs.length;
  process.kill(victim, 'SIGKILL');
  const died = await server.waitForLog((l) => l.msg === 'cluster: worker died; starting another', 30_000, from);
  assert.equal(died.signal, 'SIGKILL');
  const replacement = await server.waitForLog((l) => l.msg === 'cluster: worker ready', 60_000, from);
  assert.notEqual(replacement.workerPid, victim);
  for (let i = 0; i < 20; i++) assert.equal((await fetch(`${server.base}/healthz`)).status, 200);

  assert.equal(await server.stop(), 0);
});
