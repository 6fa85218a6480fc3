/**
 * The configurations in docs/deploy.md are checked by the tools that will read them:
 * the nginx server block with `nginx -t`, the systemd unit with `systemd-analyze verify`
 * and the Caddyfile with `caddy validate`. Each check runs only where its tool is
 * installed (none of them is a test dependency).
 */
import assert from 'node:assert/strict';
import { execFile, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { describe, test } from 'node:test';
import { promisify } from 'node:util';
import { tempDir } from './support/helpers.js';

const run = promisify(execFile);
const DOC = fs.readFileSync(new URL('../docs/deploy.md', import.meta.url), 'utf8');

/** The fenced blocks of one language in the page, in order. */
function blocks(language: string): string[] {
  return [...DOC.matchAll(new RegExp('```' + language + '\\n([\\s\\S]*?)```', 'g'))].map((m) => m[1]!);
}

/** The tool's path, looked up where Debian puts it even when sbin is not on PATH. */
function tool(name: string, versionArg: string): string | undefined {
  for (const candidate of [name, `/usr/sbin/${name}`, `/usr/bin/${name}`]) {
    if (spawnSync(candidate, [versionArg], { stdio: 'ignore' }).status === 0) return candidate;
  }
  return undefined;
}

const nginx = tool('nginx', '-v');
const systemdAnalyze = tool('systemd-analyze', '--version');
const caddy = tool('caddy', 'version');

describe('docs/deploy.md', () => {
  test('the nginx example passes nginx -t', { skip: !nginx && 'nginx is not installed' }, async () => {
    const [site] = blocks('nginx');
    assert.ok(site, 'the page has an nginx block');
    const dir = tempDir('feedmail-nginx-');
    // A self-signed certificate stands in for Let's Encrypt's; logs go to the scratch directory.
    await run('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-subj', '/CN=feeds.example.com', '-days', '1',
      '-keyout', path.join(dir, 'privkey.pem'), '-out', path.join(dir, 'fullchain.pem')]);
    const server = site.replaceAll('/etc/letsencrypt/live/feeds.example.com/', `${dir}/`).replaceAll('/var/log/nginx/', `${dir}/`);
    const conf = path.join(dir, 'nginx.conf');
    fs.writeFileSync(conf, `pid ${dir}/nginx.pid;\nerror_log ${dir}/error.log;\nevents {}\nhttp {\n${server}\n}\n`);
    const { stderr } = await run(nginx!, ['-t', '-p', `${dir}/`, '-c', conf]);
    assert.match(stderr, /test is successful/);
  });

  test('the systemd unit passes systemd-analyze verify', { skip: !systemdAnalyze && 'systemd-analyze is not installed' }, async () => {
    const [unit] = blocks('ini');
    assert.ok(unit !== undefined && unit.includes('[Service]'), 'the page has the unit');
    const dir = tempDir('feedmail-unit-');
    const file = path.join(dir, 'feedmail.service');
    fs.writeFileSync(file, unit);
    const r = spawnSync(systemdAnalyze!, ['verify', file], { encoding: 'utf8' });
    // verify also checks that ExecStart's program exists: where Node is not at /usr/bin/node, that finding is expected.
    const nodeElsewhere = !fs.existsSync('/usr/bin/node');
    const findings = r.stderr.split('\n').filter((l) => l.trim() !== '' && !(nodeElsewhere && l.includes('/usr/bin/node')));
    assert.deepEqual(findings, [], r.stderr);
  });

  test('the Caddyfile passes caddy validate', { skip: !caddy && 'caddy is not installed' }, async () => {
    const [caddyfile] = blocks('caddy');
    assert.ok(caddyfile, 'the page has a Caddyfile');
    const dir = tempDir('feedmail-caddy-');
    const file = path.join(dir, 'Caddyfile');
    fs.writeFileSync(file, caddyfile);
    // Validation provisions the site without obtaining certificates or listening.
    const { stdout, stderr } = await run(caddy!, ['validate', '--config', file, '--adapter', 'caddyfile'], { env: { ...process.env, HOME: dir, XDG_DATA_HOME: dir, XDG_CONFIG_HOME: dir } });
    assert.match(stdout + stderr, /Valid configuration/);
  });
});
