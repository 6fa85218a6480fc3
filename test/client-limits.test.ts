/** What one client may take: SMTP connections per address, recipients per message, idle sessions, feeds created per hour. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { createFeed, startTestServer } from './support/helpers.js';
import { SMTPClient } from './support/smtp-client.js';

describe('limits per client', () => {
  it('limits SMTP connections per client address with 421', async () => {
    const server = await startTestServer({ smtpMaxClientsPerAddress: '2' });
    try {
      const a = await SMTPClient.connect(server.smtpPort);
      const b = await SMTPClient.connect(server.smtpPort);
      // Both connections within the limit are served, so an off-by-one refusing the last one fails here.
      assert.match(a.greeting, /^220 /, 'the first connection is greeted');
      assert.match(b.greeting, /^220 /, 'the second connection, at the limit, is greeted');
      const c = await SMTPClient.connect(server.smtpPort);
      assert.match(c.greeting, /^421 /, 'the third connection is refused in its greeting');
      await c.close();
      await a.close();
      await b.close();
      // Once a connection closes, the address may connect again.
      const d = await SMTPClient.connect(server.smtpPort);
      assert.match(d.greeting, /^220 /);
      await d.close();
    } finally {
      await server.stop();
    }
  });

  it('limits recipients per message with 452', async () => {
    const server = await startTestServer({ smtpMaxRecipients: '2' });
    try {
      const feeds = [await createFeed(server.base), await createFeed(server.base), await createFeed(server.base)];
      const c = await SMTPClient.connect(server.smtpPort);
      await c.command('EHLO test', 250);
      await c.command('MAIL FROM:<a@example.com>', 250);
      await c.command(`RCPT TO:<${feeds[0]!.address}>`, 250);
      await c.command(`RCPT TO:<${feeds[1]!.address}>`, 250);
      assert.match(await c.command(`RCPT TO:<${feeds[2]!.address}>`), /^452 /);
      await c.close();
    } finally {
      await server.stop();
    }
  });

  it('closes idle SMTP sessions after the session timeout', async () => {
    const server = await startTestServer({ smtpSessionTimeoutMs: '1000' });
    try {
      const c = await SMTPClient.connect(server.smtpPort);
      const started = Date.now();
      // Bounded, so a server that falls back to smtp-server's 60 s default (or never closes) fails instead of hanging;
      // generous, so a busy machine cannot make a 1 s timeout look missed.
      const reply = await Promise.race([c.reply(), new Promise<string>((r) => setTimeout(() => r('(no reply within 10 s)'), 10_000).unref())]);
      const waited = Date.now() - started;
      c.socket.destroy();
      assert.match(reply, /^421 /);
      assert.ok(waited >= 900, `closed after ${waited} ms, before the 1000 ms timeout`);
    } finally {
      await server.stop();
    }
  });

  it('rate-limits feed creation per client with 429 and Retry-After, trusting X-Forwarded-For only from trusted proxies', async () => {
    const server = await startTestServer({ feedsPerHourPerClient: '2' });
    const post = (headers: Record<string, string> = {}) => fetch(`${server.base}/feeds`, { method: 'POST', headers: { Accept: 'application/json', ...headers } });
    try {
      assert.equal((await post()).status, 201);
      assert.equal((await post()).status, 201);
      const limited = await post();
      assert.equal(limited.status, 429);
      // The window is an hour and both feeds were just created: the next slot frees in about an hour.
      const retryAfter = Number(limited.headers.get('retry-after'));
      assert.ok(retryAfter > 3500 && retryAfter <= 3600, `Retry-After is ${retryAfter} s`);
      assert.equal(((await limited.json()) as { error: { code: string } }).error.code, 'rate_limited');
      // Without a trusted proxy, a forged X-Forwarded-For changes nothing.
      assert.equal((await post({ 'X-Forwarded-For': '203.0.113.9' })).status, 429);
    } finally {
      await server.stop();
    }
    const proxied = await startTestServer({ feedsPerHourPerClient: '1', trustedProxies: '127.0.0.1' });
    try {
      const viaProxy = (client: string) => fetch(`${proxied.base}/feeds`, { method: 'POST', headers: { Accept: 'application/json', 'X-Forwarded-For': client } });
      assert.equal((await viaProxy('203.0.113.1')).status, 201);
      assert.equal((await viaProxy('203.0.113.1')).status, 429);
      assert.equal((await viaProxy('203.0.113.2')).status, 201, 'another client behind the proxy has its own budget');
      // Two hops: the client may write anything at the left; only the address our proxy appended (the right end) counts.
      assert.equal((await viaProxy('198.51.100.7, 203.0.113.1')).status, 429, 'a spoofed first hop does not escape the limit');
      assert.equal((await viaProxy('203.0.113.1, 198.51.100.8')).status, 201, 'the right-most untrusted hop is the client');
    } finally {
      await proxied.stop();
    }
    const unlimited = await startTestServer({ feedsPerHourPerClient: '0' });
    try {
      for (let i = 0; i < 5; i++) await createFeed(unlimited.base);
    } finally {
      await unlimited.stop();
    }
  });
});
