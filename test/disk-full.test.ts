/** A full disk defers mail with 4xx, keeps serving reads, and recovers without a restart. */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { describe, it } from 'node:test';
import { signRawDelivery } from '../src/mail/webhooks/raw.js';
import { createFeed, mountSmallFilesystem, readFeed, sendRaw, startTestServer, waitFor, waitForEntries, sqliteOnly } from './support/helpers.js';

const SECRET = 'disk-full-test-secret-0123456789abcdef';

function postRaw(base: string, to: string, raw: string) {
  const body = Buffer.from(raw);
  const timestamp = Math.floor(Date.now() / 1000);
  const target = `/inbound/raw?to=${encodeURIComponent(to)}`;
  return fetch(`${base}${target}`, {
    method: 'POST',
    headers: { 'X-Feedmail-Timestamp': String(timestamp), 'X-Feedmail-Signature': signRawDelivery(SECRET, { timestamp, method: 'POST', target, body }) },
    body: new Uint8Array(body),
  });
}

const message = (subject: string) => `From: a@example.com\r\nSubject: ${subject}\r\n\r\n${'body '.repeat(200)}\r\n`;

function fillDisk(dir: string): string {
  const filler = path.join(dir, 'filler');
  const fd = fs.openSync(filler, 'w');
  const chunk = Buffer.alloc(64 * 1024, 1);
  try {
    for (;;) fs.writeSync(fd, chunk);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOSPC') throw err;
  } finally {
    fs.closeSync(fd);
  }
  // Small writes can still find a few free blocks; fill those too.
  const fd2 = fs.openSync(filler, 'a');
  try {
    for (;;) fs.writeSync(fd2, Buffer.alloc(512, 1));
  } catch {
    // full now
  } finally {
    fs.closeSync(fd2);
  }
  return filler;
}

describe('disk full', () => {
  it('on a really full filesystem: 4xx to senders, feeds still served, accepted again once space returns', async (t) => {
    if (sqliteOnly(t, 'the databases are files on the full filesystem only with SQLite')) return;
    const mount = mountSmallFilesystem(24);
    if (!mount) {
      t.skip('cannot mount a loop filesystem here (needs root and /dev/loop*); the injected SQLITE_FULL test below still runs');
      return;
    }
    const server = await startTestServer({ dataDir: path.join(mount.dir, 'data'), minFreeBytes: '0', webhookSecret: SECRET });
    try {
      const feed = await createFeed(server.base);
      await sendRaw(server.smtpPort, feed.address, message('before'));
      await waitFor(async () => (await readFeed(feed.feeds.atom, 'atom')).length === 1);
      const filler = fillDisk(mount.dir);

      await assert.rejects(sendRaw(server.smtpPort, feed.address, message('while full')), (err: Error & { responseCode?: number }) => {
        assert.ok(err.responseCode && err.responseCode >= 400 && err.responseCode < 500, `got ${err.responseCode}`);
        return true;
      });
      const hook = await postRaw(server.base, feed.address, message('webhook while full'));
      assert.equal(hook.status, 503, 'the webhook asks the provider to retry');
      assert.ok(Number(hook.headers.get('retry-after')) > 0);
      const items = await readFeed(feed.feeds.atom, 'atom');
      assert.deepEqual(items.map((i) => i.title), ['before'], 'reads keep working');
      // The free-space reading is cached for a second.
      await waitFor(async () => (await fetch(`${server.base}/readyz`)).status === 503, 3000, '/readyz to report the full disk');

      fs.rmSync(filler);
      await waitFor(async () => (await fetch(`${server.base}/readyz`)).status === 200, 3000, '/readyz to recover');
      const info = await sendRaw(server.smtpPort, feed.address, message('after'));
      assert.match(info.response, /^250 /);
      await waitFor(async () => (await readFeed(feed.feeds.atom, 'atom')).length === 2, 10_000, 'the entry after recovery');
      assert.deepEqual(server.app.stores.app.integrityCheck(), ['ok']);
    } finally {
      await server.stop();
      mount.unmount();
    }
  });

  it('below the free-space minimum: 452 4.3.1 at MAIL FROM, reads still served', async (t) => {
    if (sqliteOnly(t, 'the free-space guard watches the data directory\'s disk, which holds the databases only with SQLite')) return;
    // A minimum larger than any test disk puts the server in the "disk full" state from the start.
    const server = await startTestServer({ minFreeBytes: '1000g' });
    try {
      const feed = await createFeed(server.base);
      await assert.rejects(sendRaw(server.smtpPort, feed.address, message('no room')), (err: Error & { responseCode?: number; response?: string }) => {
        assert.equal(err.responseCode, 452);
        assert.match(err.response ?? '', /4\.3\.1/);
        return true;
      });
      assert.equal((await fetch(feed.feeds.atom)).status, 200);
      const ready = await fetch(`${server.base}/readyz`);
      assert.equal(ready.status, 503);
      assert.match(await ready.text(), /below the .* minimum/);
    } finally {
      await server.stop();
    }
  });

  it('when SQLite reports the database full: 452 4.3.1, nothing lost, and recovery without a restart', async (t) => {
    if (sqliteOnly(t, 'a capped SQLite file (capGrowth) stands for the full disk')) return;
    const server = await startTestServer();
    try {
      const feed = await createFeed(server.base);
      const queue = server.app.stores.queue;
      // A capped file makes SQLite answer SQLITE_FULL exactly as a full disk does.
      queue.capGrowth(0);
      await assert.rejects(sendRaw(server.smtpPort, feed.address, `Subject: big\r\n\r\n${'x'.repeat(200_000)}\r\n`), (err: Error & { responseCode?: number; response?: string }) => {
        assert.equal(err.responseCode, 452);
        assert.match(err.response ?? '', /4\.3\.1/);
        return true;
      });
      assert.equal((await fetch(feed.feeds.atom)).status, 200);
      queue.capGrowth(null);
      const info = await sendRaw(server.smtpPort, feed.address, 'Subject: recovered\r\n\r\nhello\r\n');
      assert.match(info.response, /^250 /);
      const items = await waitForEntries(feed.feeds.atom, 'atom');
      assert.deepEqual(items.map((i) => i.title), ['recovered']);
    } finally {
      await server.stop();
    }
  });
});
