/**
 * Commands on PostgreSQL (issue 15; the PostgreSQL pass only): `feedmail replay` works
 * (the data directory holds no database there), `litestream-config` is refused with the
 * PostgreSQL backup advice, and `serve` against a database that cannot be used says why in
 * one line, without the password or a stack trace.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { describe, it } from 'node:test';
import { createFeed, postgresOnly, sendRaw, startTestServer, tempDir, testDatabaseUrl, waitForEntries } from './support/helpers.js';

function feedmail(args: string[], env: Record<string, string>) {
  const r = spawnSync(process.execPath, ['--import', 'tsx', 'src/cli.ts', ...args], {
    env: { ...process.env, FEEDMAIL_LOG_LEVEL: 'warn', FEEDMAIL_ALLOW_UNSAFE_STORAGE: 'true', FEEDMAIL_MIN_FREE_BYTES: '0', ...env }, encoding: 'utf8', timeout: 60_000,
  });
  return { code: r.status, out: `${r.stdout}${r.stderr}` };
}

describe('commands on PostgreSQL', { timeout: 180_000 }, () => {
  it('replay works, litestream-config is refused, a bad database URL says why', async (t) => {
    if (postgresOnly(t, 'commands against a PostgreSQL database')) return;
    const url = (await testDatabaseUrl(tempDir()))!;
    const since = new Date(Date.now() - 60_000).toISOString();
    const server = await startTestServer({ databaseUrl: url });
    try {
      const feed = await createFeed(server.base, 'replayed');
      await sendRaw(server.smtpPort, feed.address, `From: News <news@example.com>\r\nTo: ${feed.address}\r\nSubject: again\r\n\r\nBody.\r\n`);
      await waitForEntries(feed.feeds.json, 'json', 1);
    } finally {
      await server.stop();
    }
    const env = { FEEDMAIL_DATABASE_URL: url, FEEDMAIL_DATA_DIR: tempDir() };

    const replay = feedmail(['replay', '--since', since], env);
    assert.equal(replay.code, 0, replay.out);
    assert.doesNotMatch(replay.out, /no app\.db/);

    const litestream = feedmail(['litestream-config', '--to', tempDir()], env);
    assert.notEqual(litestream.code, 0);
    assert.match(litestream.out, /PostgreSQL: back it up with pg_dump/);

    const bad = new URL(url);
    bad.password = 'Pw_secret_9';
    bad.pathname = '/feedmail_no_such_database';
    const serve = feedmail(['serve', '--http-port', '0', '--smtp-port', '0'], { ...env, FEEDMAIL_DATABASE_URL: bad.toString() });
    assert.notEqual(serve.code, 0);
    assert.match(serve.out, /database "feedmail_no_such_database" does not exist/);
    assert.ok(!serve.out.includes('Pw_secret_9'), 'the password is not shown');
    assert.doesNotMatch(serve.out, /^\s+at /m, 'no stack trace');
  });
});
