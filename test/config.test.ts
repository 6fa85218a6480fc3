/** Settings are checked as a whole before anything listens; unsafe data directories are refused. */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import { describe, it } from 'node:test';
import { loadConfig, splitFlags } from '../src/config.js';
import { ConfigError } from '../src/errors.js';
import { unsafeStorageReason } from '../src/ops/storage-guard.js';
import { publicBaseUrl } from '../src/web/urls.js';

const run = (args: string[], env: Record<string, string> = {}) =>
  spawnSync(process.execPath, ['--import', 'tsx', 'src/cli.ts', ...args], { env: { ...process.env, ...env }, encoding: 'utf8', timeout: 20_000 });

describe('configuration', () => {
  it('reads environment variables, lets flags win, and fills in defaults', () => {
    const { flags } = splitFlags(['--http-port', '9090', '--mail-domains=a.example,B.example']);
    const c = loadConfig({ FEEDMAIL_HTTP_PORT: '7070', FEEDMAIL_MAX_MESSAGE_BYTES: '2m' }, flags);
    assert.equal(c.httpPort, 9090);
    assert.deepEqual(c.mailDomains, ['a.example', 'b.example']);
    assert.equal(c.maxMessageBytes, 2 * 1024 * 1024);
    assert.equal(c.smtpPort, 2525);
    assert.equal(publicBaseUrl(c.baseUrl, c.httpHost, c.httpPort), 'http://127.0.0.1:9090', 'links use the web address when FEEDMAIL_BASE_URL is not set');
  });

  it('starts links with FEEDMAIL_BASE_URL, else with the web address on the port it bound', () => {
    const c = loadConfig({ FEEDMAIL_HTTP_PORT: '0' });
    assert.equal(publicBaseUrl(c.baseUrl, c.httpHost, 41234), 'http://127.0.0.1:41234');
    assert.equal(publicBaseUrl('', '0.0.0.0', 8080), 'http://127.0.0.1:8080', 'a wildcard host is shown as loopback');
    assert.equal(publicBaseUrl('', '::1', 8080), 'http://[::1]:8080');
    const behindProxy = loadConfig({ FEEDMAIL_BASE_URL: 'https://feeds.example.com/' });
    assert.equal(publicBaseUrl(behindProxy.baseUrl, behindProxy.httpHost, 41234), 'https://feeds.example.com');
  });

  it('reports every invalid setting by name with what is allowed', () => {
    assert.throws(() => loadConfig({ FEEDMAIL_HTTP_PORT: '70000', FEEDMAIL_BASE_URL: 'ftp://x', FEEDMAIL_MAX_MESSAGE_BYTES: 'lots' }), (err: Error) => {
      assert.ok(err instanceof ConfigError);
      assert.match(err.message, /FEEDMAIL_HTTP_PORT .* must be a whole number from 0 to 65535/);
      assert.match(err.message, /FEEDMAIL_BASE_URL .* must start with http/);
      assert.match(err.message, /FEEDMAIL_MAX_MESSAGE_BYTES .* must be a size in bytes/);
      return true;
    });
  });

  it('refuses a free-space minimum below the WAL bound, which would let a full disk block the deletes that free it', () => {
    assert.throws(() => loadConfig({ FEEDMAIL_MIN_FREE_BYTES: '16m', FEEDMAIL_WAL_MAX_BYTES: '64m' }), /FEEDMAIL_MIN_FREE_BYTES .* must be at least FEEDMAIL_WAL_MAX_BYTES/);
    assert.equal(loadConfig({ FEEDMAIL_MIN_FREE_BYTES: '64m', FEEDMAIL_WAL_MAX_BYTES: '64m' }).minFreeBytes, 64 * 1024 * 1024);
    assert.equal(loadConfig({ FEEDMAIL_MIN_FREE_BYTES: '0' }).minFreeBytes, 0, '0 still turns the minimum off');
  });

  it('refuses a feed document longer than the entries a feed keeps', () => {
    assert.throws(() => loadConfig({ FEEDMAIL_FEED_MAX_ENTRIES: '600', FEEDMAIL_FEED_KEEP_ENTRIES: '500' }), /FEEDMAIL_FEED_MAX_ENTRIES .* must not exceed FEEDMAIL_FEED_KEEP_ENTRIES/);
  });

  it('does not echo a secret setting that fails to parse', () => {
    assert.throws(() => loadConfig({ FEEDMAIL_WEBHOOK_SECRET: 'short-secret-typo' }), (err: Error) =>
      /FEEDMAIL_WEBHOOK_SECRET .*\(17 characters, not shown\).*at least 32 characters/.test(err.message) && !err.message.includes('short-secret-typo'));
    assert.throws(() => loadConfig({ FEEDMAIL_OPS_ALLOW: 'token:tooshort' }), (err: Error) => !err.message.includes('tooshort'));
  });

  it('refuses a per-network SMTP connection limit above the total, and reports every rule broken at once', () => {
    assert.throws(() => loadConfig({ FEEDMAIL_SMTP_MAX_CLIENTS: '10', FEEDMAIL_SMTP_MAX_CLIENTS_PER_ADDRESS: '20' }), /FEEDMAIL_SMTP_MAX_CLIENTS_PER_ADDRESS \(20\) must not exceed FEEDMAIL_SMTP_MAX_CLIENTS \(10\)/);
    assert.ok(loadConfig({ FEEDMAIL_SMTP_MAX_CLIENTS: '20', FEEDMAIL_SMTP_MAX_CLIENTS_PER_ADDRESS: '20' }), 'equal is fine');
    assert.throws(
      () => loadConfig({ FEEDMAIL_SMTP_MAX_CLIENTS: '10', FEEDMAIL_FEED_MAX_ENTRIES: '600', FEEDMAIL_FEED_KEEP_ENTRIES: '500' }),
      (err: Error) => /FEEDMAIL_SMTP_MAX_CLIENTS_PER_ADDRESS/.test(err.message) && /FEEDMAIL_FEED_MAX_ENTRIES/.test(err.message),
    );
  });

  it('prints the version from package.json', () => {
    const pkg = JSON.parse(fs.readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version: string };
    assert.equal(run(['--version']).stdout, `feedmail ${pkg.version}\n`);
  });

  it('reads the hardening settings: ops allow-list, render threads', () => {
    const c = loadConfig({ FEEDMAIL_OPS_ALLOW: '10.0.0.0/8, ::1, token:0123456789abcdef0123', FEEDMAIL_RENDER_THREADS: '3' });
    assert.deepEqual(c.opsAllow, ['10.0.0.0/8', '::1', 'token:0123456789abcdef0123']);
    assert.equal(c.renderThreads, 3);
    assert.ok(loadConfig({}).renderThreads >= 1, 'auto is one per core');
    assert.throws(() => loadConfig({ FEEDMAIL_OPS_ALLOW: 'token:short' }), /FEEDMAIL_OPS_ALLOW .* at least 16 characters/);
    assert.throws(() => loadConfig({ FEEDMAIL_OPS_ALLOW: 'example.com' }), /FEEDMAIL_OPS_ALLOW .* not an IP address/);
  });

  it('stops the start with exit code 2 and the message, before listening', () => {
    const r = run(['serve'], { FEEDMAIL_SMTP_PORT: 'x' });
    assert.equal(r.status, 2);
    assert.match(r.stderr, /FEEDMAIL_SMTP_PORT \(--smtp-port\) = "x"/);
  });

  it('documents every setting in --help', () => {
    for (const args of [['--help'], ['serve', '--help']]) {
      const r = run(args);
      assert.equal(r.status, 0);
      for (const name of ['FEEDMAIL_DATA_DIR', 'FEEDMAIL_HTTP_HOST', 'FEEDMAIL_HTTP_PORT', 'FEEDMAIL_SMTP_HOST', 'FEEDMAIL_SMTP_PORT', 'FEEDMAIL_BASE_URL', 'FEEDMAIL_MAIL_DOMAINS', 'FEEDMAIL_MAX_MESSAGE_BYTES', 'FEEDMAIL_FEEDS_PER_HOUR_PER_CLIENT']) {
        assert.ok(r.stdout.includes(name), `${args.join(' ')} lists ${name}`);
      }
    }
    for (const cmd of ['worker', 'jobs', 'reprocess']) assert.match(run([cmd, '--help']).stdout, new RegExp(`Usage: feedmail ${cmd}`));
  });
});

describe('storage guard', () => {
  const mountinfo = (fsType: string, mountPoint: string) =>
    `22 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw\n99 22 0:50 / ${mountPoint} rw shared:2 - ${fsType} src rw\n`;

  it('refuses tmpfs, overlay and network filesystems and accepts a local disk', () => {
    assert.match(unsafeStorageReason('/srv/data/feedmail', mountinfo('tmpfs', '/srv/data')) ?? '', /tmpfs/);
    assert.match(unsafeStorageReason('/srv/data', mountinfo('overlay', '/srv')) ?? '', /container layer/);
    assert.match(unsafeStorageReason('/mnt/nas/feedmail', mountinfo('nfs4', '/mnt/nas')) ?? '', /network filesystem/);
    assert.equal(unsafeStorageReason('/home/feedmail', mountinfo('tmpfs', '/srv/data')), null);
  });

  it('refuses to start on /dev/shm unless told that this is meant', () => {
    const r = run(['serve'], { FEEDMAIL_DATA_DIR: `/dev/shm/feedmail-test-${process.pid}`, FEEDMAIL_HTTP_PORT: '0', FEEDMAIL_SMTP_PORT: '0' });
    assert.equal(r.status, 1);
    assert.match(r.stderr, /refusing to start: .*\(tmpfs\).*FEEDMAIL_ALLOW_UNSAFE_STORAGE/s);
  });
});
