/**
 * PostgreSQL unreachable while feedmail runs (issue 15; the PostgreSQL pass only). The
 * server reaches the database through a TCP relay the test closes: pages, documents, search
 * and POST /feeds answer 503 with Retry-After (not 500), /readyz 503 with its JSON, /metrics
 * answers (never a cut connection), the outage is logged once rather than a stack trace
 * every poll, and everything works again when the relay reopens.
 */
import assert from 'node:assert/strict';
import net from 'node:net';
import { describe, it } from 'node:test';
import { createFeed, postgresOnly, tempDir, testDatabaseUrl, waitFor } from './support/helpers.js';
import { startServeProcess } from './support/serve-process.js';

/** A relay to the real PostgreSQL that can be cut (every connection dropped, new ones refused) and reopened. */
async function relay(target: URL) {
  const sockets = new Set<net.Socket>();
  let server: net.Server | undefined;
  let port = 0;
  const open = () => new Promise<void>((resolve) => {
    server = net.createServer((client) => {
      const upstream = net.connect(Number(target.port), target.hostname);
      for (const s of [client, upstream]) {
        sockets.add(s);
        s.on('error', () => undefined);
        s.on('close', () => sockets.delete(s));
      }
      client.pipe(upstream).pipe(client);
      client.on('close', () => upstream.destroy());
      upstream.on('close', () => client.destroy());
    });
    server.listen(port, '127.0.0.1', () => {
      port = (server!.address() as net.AddressInfo).port;
      resolve();
    });
  });
  await open();
  return {
    get port() { return port; },
    open,
    cut: () => new Promise<void>((resolve) => {
      server!.close(() => resolve());
      for (const s of sockets) s.destroy();
    }),
  };
}

describe('PostgreSQL unreachable', { timeout: 120_000 }, () => {
  it('answers 503 with Retry-After, says not ready, logs the outage once, and recovers', async (t) => {
    if (postgresOnly(t, 'the database server goes away')) return;
    const real = new URL((await testDatabaseUrl(tempDir()))!);
    const r = await relay(real);
    const viaRelay = new URL(real);
    viaRelay.port = String(r.port);
    const server = await startServeProcess({ processes: 1, env: { FEEDMAIL_DATABASE_URL: viaRelay.toString() } });
    try {
      const feed = await createFeed(server.base, 'outage');
      assert.equal((await fetch(feed.feeds.atom)).status, 200);
      const before = server.logs.length;
      await r.cut();

      for (const url of [feed.page, feed.feeds.atom, `${feed.page.replace(/\/$/, '')}/search?q=news`]) {
        const res = await fetch(url);
        assert.equal(res.status, 503, `${url} while the database is down`);
        assert.ok(Number(res.headers.get('retry-after')) > 0, 'Retry-After');
      }
      const created = await fetch(`${server.base}/feeds`, {
        method: 'POST', headers: { 'Content-Type': 'application/x-www-form-urlencoded', Accept: 'application/json', Origin: server.base }, body: 'title=x',
      });
      assert.equal(created.status, 503);
      assert.equal(((await created.json()) as { error: { code: string } }).error.code, 'temporary_failure');

      const ready = await fetch(`${server.base}/readyz`);
      assert.equal(ready.status, 503);
      assert.equal(((await ready.json()) as { ok: boolean }).ok, false);
      // /metrics answers (a status and a body) rather than dropping the connection.
      const metrics = await fetch(`${server.base}/metrics`);
      assert.ok([200, 503].includes(metrics.status), `metrics answered ${metrics.status}`);
      await metrics.text();

      // Let the job runner poll for a while (it polls every 500 ms): the outage is logged once per part, no stacks.
      await new Promise((resolve) => setTimeout(resolve, 3_000));
      const during = server.logs.slice(before);
      assert.equal(during.filter((l) => l.msg === 'jobs: unable to claim jobs' || l.msg === 'web: request failed').length, 0, 'no stack trace per poll or request');
      assert.equal(during.filter((l) => /the database is unreachable/.test(l.msg) && l.msg.startsWith('jobs')).length, 1, 'the jobs outage logged once');
      assert.equal(during.filter((l) => /the database is unreachable/.test(l.msg) && l.msg.startsWith('web')).length, 1, 'the web outage logged once');

      await r.open();
      await waitFor(async () => (await fetch(feed.feeds.atom)).status === 200, 30_000, 'the feed served again');
      assert.equal((await fetch(`${server.base}/readyz`)).status, 200);
      await server.waitForLog((l) => l.msg === 'jobs: the database answers again', 30_000, before);
    } finally {
      await server.stop();
      await r.cut().catch(() => undefined);
    }
  });
});
