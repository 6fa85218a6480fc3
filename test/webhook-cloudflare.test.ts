/**
 * Cloudflare Email Workers: the Worker feedmail ships (docs/cloudflare-worker.js) run in
 * Node against the real server. Its `email(message, env)` is called as the Workers
 * runtime calls it, with a message shaped as Cloudflare documents ForwardableEmailMessage
 * (https://developers.cloudflare.com/email-routing/email-workers/runtime-api/): `to`,
 * `raw` (a ReadableStream of the message), `setReject(reason)`.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { createFeed, readFeed, startTestServer, type TestServer, waitForEntries } from './support/helpers.js';

const SECRET = 'cloudflare-test-secret-0123456789abcdef';

interface Worker {
  email(message: { to: string; raw: ReadableStream<Uint8Array>; setReject(reason: string): void }, env: { FEEDMAIL_URL: string; FEEDMAIL_SECRET: string }): Promise<void>;
  sign(secret: string, timestamp: string, body: Uint8Array): Promise<string>;
  withDeliveredTo(to: string, raw: Uint8Array): Uint8Array;
}
const worker = ((await import(new URL('../docs/cloudflare-worker.js', import.meta.url).href)) as { default: Worker }).default;

const message = (subject: string) => Buffer.from(`From: Edge News <news@example.com>\r\nTo: list@example.com\r\nSubject: ${subject}\r\n\r\nRouted by Cloudflare.\r\n`);

/** Runs the Worker on one message; resolves with the reason it rejected the message, or undefined. */
async function runWorker(base: string, to: string, raw: Buffer, secret = SECRET): Promise<string | undefined> {
  let rejected: string | undefined;
  await worker.email({ to, raw: new Blob([new Uint8Array(raw)]).stream(), setReject: (reason) => { rejected = reason; } }, { FEEDMAIL_URL: `${base}/inbound/cloudflare`, FEEDMAIL_SECRET: secret });
  return rejected;
}

/** A request exactly as the Worker sends it, to replay or alter. */
async function signedRequest(to: string, raw: Buffer, timestamp = Math.floor(Date.now() / 1000)) {
  const body = worker.withDeliveredTo(to, new Uint8Array(raw));
  return { body: Buffer.from(body), timestamp: String(timestamp), signature: await worker.sign(SECRET, String(timestamp), body) };
}

function post(base: string, r: { body: Buffer; timestamp: string; signature: string }) {
  return fetch(`${base}/inbound/cloudflare`, {
    method: 'POST',
    headers: { 'X-Feedmail-Timestamp': r.timestamp, 'X-Feedmail-Signature': r.signature },
    body: new Uint8Array(r.body),
  });
}

describe('Cloudflare Email Worker webhook', () => {
  let server: TestServer;
  before(async () => {
    server = await startTestServer({ cloudflareSecret: SECRET, maxMessageBytes: '64k' });
  });
  after(async () => {
    await server.stop();
  });

  it('the shipped Worker delivers a message and it becomes one entry', async () => {
    const feed = await createFeed(server.base);
    assert.equal(await runWorker(server.base, feed.address, message('through the edge')), undefined);
    const items = await waitForEntries(feed.feeds.json, 'json');
    assert.equal(items[0]!.title, 'through the edge');
  });

  it('the same request repeated is answered 409 and stores no second entry', async () => {
    const feed = await createFeed(server.base);
    const request = await signedRequest(feed.address, message('only once'));
    assert.equal((await post(server.base, request)).status, 202);
    await waitForEntries(feed.feeds.json, 'json');
    assert.equal((await post(server.base, request)).status, 409);
    await new Promise((r) => setTimeout(r, 300));
    assert.equal((await readFeed(feed.feeds.json, 'json')).length, 1);
  });

  it('refuses a changed byte in the body, in the signature, a stale timestamp and a wrong secret (401), storing nothing', async () => {
    const feed = await createFeed(server.base);
    const request = await signedRequest(feed.address, message('tampered'));
    const changedBody = Buffer.from(request.body);
    changedBody[changedBody.length - 3]! ^= 1;
    assert.equal((await post(server.base, { ...request, body: changedBody })).status, 401);
    const changedSignature = `${request.signature.slice(0, -1)}${request.signature.endsWith('0') ? '1' : '0'}`;
    assert.equal((await post(server.base, { ...request, signature: changedSignature })).status, 401);
    assert.equal((await post(server.base, await signedRequest(feed.address, message('stale'), Math.floor(Date.now() / 1000) - 3600))).status, 401);
    // The Worker with the wrong secret: 401 is not final, so it throws (the delivery is tried again).
    await assert.rejects(runWorker(server.base, feed.address, message('wrong secret'), 'another-secret-that-is-long-enough-000'), /answered 401/);
    // Re-addressed to another feed: the Delivered-To line is signed.
    const other = await createFeed(server.base);
    const readdressed = Buffer.concat([Buffer.from(`Delivered-To: ${other.address}\r\n`), request.body.subarray(request.body.indexOf('\n') + 1)]);
    assert.equal((await post(server.base, { ...request, body: readdressed })).status, 401);
    assert.equal((await post(server.base, request)).status, 202, 'the request as signed still goes through');
    const items = await waitForEntries(feed.feeds.json, 'json');
    await new Promise((r) => setTimeout(r, 300));
    assert.deepEqual((await readFeed(feed.feeds.json, 'json')).map((i) => i.title), ['tampered']);
    assert.equal(items.length, 1);
    assert.equal((await readFeed(other.feeds.json, 'json')).length, 0);
  });

  it('an unknown recipient is rejected back to the sender by the Worker, and nothing is stored', async () => {
    const reason = await runWorker(server.base, 'nobody@localhost', message('to nobody'));
    assert.match(reason ?? '', /feedmail refused the message \(422\)/);
  });

  it('takes the recipient only from Delivered-To lines at the very top, never from one inside the message', async () => {
    const feed = await createFeed(server.base);
    const timestamp = String(Math.floor(Date.now() / 1000));
    // Signed correctly, but the recipient is only named by the sender, below another field.
    const body = Buffer.from(`From: x@example.com\r\nDelivered-To: ${feed.address}\r\nSubject: sneaky\r\n\r\nx\r\n`);
    const res = await post(server.base, { body, timestamp, signature: await worker.sign(SECRET, timestamp, new Uint8Array(body)) });
    assert.equal(res.status, 400);
    assert.equal((await readFeed(feed.feeds.json, 'json')).length, 0);
  });

  it('is off (404) without FEEDMAIL_CLOUDFLARE_SECRET', async () => {
    const off = await startTestServer();
    try {
      assert.equal((await post(off.base, await signedRequest('a@localhost', message('x')))).status, 404);
    } finally {
      await off.stop();
    }
  });
});
