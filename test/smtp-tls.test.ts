/**
 * STARTTLS on the SMTP server: offered only with a certificate and key configured, used by
 * a real client (Python's smtplib, as an MTA would) to deliver a newsletter, and reloaded
 * from its files without a restart when an ACME client replaces them.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import tls from 'node:tls';
import { after, before, describe, test } from 'node:test';
import { promisify } from 'node:util';
import { loadConfig } from '../src/config.js';
import { ConfigError, StartupError } from '../src/errors.js';
import { createFeed, startTestServer, tempDir, waitFor, waitForEntries, type TestServer } from './support/helpers.js';

const run = promisify(execFile);

/** A self-signed certificate for localhost and 127.0.0.1, made with openssl as an operator would. */
async function selfSigned(dir: string, name: string): Promise<{ cert: string; key: string; fingerprint256: string }> {
  const cert = path.join(dir, `${name}.crt`);
  const key = path.join(dir, `${name}.key`);
  await run('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-subj', '/CN=localhost', '-days', '1',
    '-addext', 'subjectAltName=DNS:localhost,IP:127.0.0.1', '-keyout', key, '-out', cert]);
  return { cert, key, fingerprint256: new crypto.X509Certificate(fs.readFileSync(cert)).fingerprint256 };
}

/** Reads one (possibly multi-line) SMTP reply. */
function reply(socket: net.Socket): Promise<string> {
  return new Promise((resolve, reject) => {
    let text = '';
    const onData = (chunk: Buffer) => {
      text += chunk.toString('latin1');
      if (/(^|\r\n)\d{3} [^\r\n]*\r\n$/.test(text)) {
        socket.off('data', onData);
        resolve(text);
      }
    };
    socket.on('data', onData);
    socket.once('error', reject);
  });
}

/** Connects, says EHLO and returns what the server offers; with `starttls`, upgrades and returns the certificate it presents. */
async function probe(port: number, starttls: boolean): Promise<{ ehlo: string; fingerprint256?: string; protocol?: string }> {
  const socket = net.connect({ port, host: '127.0.0.1' });
  try {
    await reply(socket);
    socket.write('EHLO probe.example\r\n');
    const ehlo = await reply(socket);
    if (!starttls) return { ehlo };
    socket.write('STARTTLS\r\n');
    assert.match(await reply(socket), /^220/);
    const secure = tls.connect({ socket, servername: 'localhost', rejectUnauthorized: false });
    await new Promise<void>((resolve, reject) => secure.once('secureConnect', resolve).once('error', reject));
    const seen = { ehlo, fingerprint256: secure.getPeerX509Certificate()?.fingerprint256, protocol: secure.getProtocol() ?? undefined };
    secure.destroy();
    return seen;
  } finally {
    socket.destroy();
  }
}

/** Python's smtplib, trusting only the test certificate: STARTTLS, then a newsletter. Prints the TLS version. */
const SEND_OVER_TLS = `
import smtplib, ssl, sys
port, cafile, to = int(sys.argv[1]), sys.argv[2], sys.argv[3]
ctx = ssl.create_default_context(cafile=cafile)
s = smtplib.SMTP("localhost", port, timeout=20)
s.ehlo("mta.example")
s.starttls(context=ctx)
s.ehlo("mta.example")
msg = "From: Weekly <news@example.com>\\r\\nTo: " + to + "\\r\\nSubject: Sent over TLS\\r\\nMessage-ID: <tls-1@example.com>\\r\\nContent-Type: text/plain\\r\\n\\r\\nThis issue travelled encrypted.\\r\\n"
s.sendmail("news@example.com", [to], msg)
print(s.sock.version())
s.quit()
`;

describe('SMTP STARTTLS', () => {
  let dir: string;
  let first: Awaited<ReturnType<typeof selfSigned>>;
  let server: TestServer;
  let live: { cert: string; key: string };

  before(async () => {
    dir = tempDir('feedmail-tls-');
    first = await selfSigned(dir, 'first');
    // The configured paths are the ones an ACME client keeps replacing.
    live = { cert: path.join(dir, 'fullchain.pem'), key: path.join(dir, 'privkey.pem') };
    fs.copyFileSync(first.cert, live.cert);
    fs.copyFileSync(first.key, live.key);
    server = await startTestServer({ smtpTlsCert: live.cert, smtpTlsKey: live.key });
  });

  after(async () => {
    await server?.stop();
  });

  test('a newsletter sent with smtplib after starttls() becomes an entry', async () => {
    const { ehlo } = await probe(server.smtpPort, false);
    assert.match(ehlo, /250[- ]STARTTLS\r\n/, 'EHLO offers STARTTLS');
    const feed = await createFeed(server.base, 'Over TLS');
    const { stdout } = await run('python3', ['-c', SEND_OVER_TLS, String(server.smtpPort), first.cert, feed.address]);
    assert.match(stdout.trim(), /^TLSv1\.[23]$/, 'smtplib negotiated TLS 1.2 or newer');
    const [entry] = await waitForEntries(feed.feeds.atom, 'atom', 1, 10_000);
    assert.equal(entry!.title, 'Sent over TLS');
    assert.match(entry!.html, /travelled encrypted/);
  });

  test('replaced certificate files are presented without a restart; a pair that does not load keeps the old one', async () => {
    assert.equal((await probe(server.smtpPort, true)).fingerprint256, first.fingerprint256);

    // An ACME client writes the renewed files next to the live ones and renames them over.
    const second = await selfSigned(dir, 'second');
    fs.copyFileSync(second.key, `${live.key}.new`);
    fs.copyFileSync(second.cert, `${live.cert}.new`);
    fs.renameSync(`${live.key}.new`, live.key);
    fs.renameSync(`${live.cert}.new`, live.cert);
    await waitFor(async () => (await probe(server.smtpPort, true)).fingerprint256 === second.fingerprint256, 20_000, 'the renewed certificate');

    // A certificate whose key has not arrived yet (it belongs to another key) is not used.
    const third = await selfSigned(dir, 'third');
    fs.copyFileSync(third.cert, live.cert);
    assert.equal(server.app.reloadCertificates(), false, 'a certificate without its key does not load');
    assert.equal((await probe(server.smtpPort, true)).fingerprint256, second.fingerprint256, 'the previous certificate stays in use');
    fs.writeFileSync(live.key, 'not a key');
    assert.equal(server.app.reloadCertificates(), false, 'garbage does not load');
    assert.equal((await probe(server.smtpPort, true)).fingerprint256, second.fingerprint256);

    // Once both are in place, a reload (what SIGHUP calls) installs them.
    fs.copyFileSync(third.key, live.key);
    assert.equal(server.app.reloadCertificates(), true);
    const seen = await probe(server.smtpPort, true);
    assert.equal(seen.fingerprint256, third.fingerprint256);
    assert.match(seen.protocol ?? '', /^TLSv1\.[23]$/);
  });
});

describe('SMTP without a certificate', () => {
  test('does not offer STARTTLS (as before)', async () => {
    const server = await startTestServer();
    try {
      const { ehlo } = await probe(server.smtpPort, false);
      assert.doesNotMatch(ehlo, /STARTTLS/);
    } finally {
      await server.stop();
    }
  });

  test('a certificate without a key is a settings error, and files that do not load stop the start', async () => {
    assert.throws(() => loadConfig({ FEEDMAIL_SMTP_TLS_CERT: '/etc/ssl/feedmail.crt' }), (err: unknown) =>
      err instanceof ConfigError && /FEEDMAIL_SMTP_TLS_CERT and FEEDMAIL_SMTP_TLS_KEY go together/.test(err.message));
    const dir = tempDir('feedmail-tls-missing-');
    await assert.rejects(startTestServer({ smtpTlsCert: path.join(dir, 'nope.crt'), smtpTlsKey: path.join(dir, 'nope.key') }),
      (err: unknown) => err instanceof StartupError && /unable to load the STARTTLS certificate/.test(err.message));
  });
});
