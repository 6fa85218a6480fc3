/**
 * Amazon SES via SNS. The fixtures follow the documented formats: the SNS message and its
 * signature (https://docs.aws.amazon.com/sns/latest/dg/sns-message-and-json-formats.html,
 * https://docs.aws.amazon.com/sns/latest/dg/sns-verify-signature-of-message.html) and the
 * SES receipt notification of an SNS action
 * (https://docs.aws.amazon.com/ses/latest/dg/receiving-email-notifications-contents.html,
 * .../receiving-email-notifications-examples.html). The tests sign with their own RSA key
 * and a self-signed certificate made by openssl here, put in the certificate cache under an
 * allowlisted URL (testOnlySeedSnsCertificate); every other certificate URL goes through
 * the production allowlist, and the fetcher is replaced by one that counts requests.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { createSign } from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { after, before, beforeEach, describe, it } from 'node:test';
import { snsStringToSign, testOnlySeedSnsCertificate, testOnlyUseSnsFetcher } from '../src/mail/webhooks/ses.js';
import { createFeed, readFeed, startTestServer, tempDir, type TestServer, waitForEntries } from './support/helpers.js';

const TOPIC = 'arn:aws:sns:us-east-1:123456789012:feedmail-inbound';
const CERT_URL = 'https://sns.us-east-1.amazonaws.com/SimpleNotificationService-feedmail-test.pem';

/** A key and self-signed certificate, made by openssl for this run. */
function makeSigner(): { key: string; cert: string } {
  const dir = tempDir('feedmail-sns-');
  execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', path.join(dir, 'key.pem'), '-out', path.join(dir, 'cert.pem'),
    '-days', '2', '-subj', '/CN=sns.amazonaws.com'], { stdio: 'ignore' });
  return { key: fs.readFileSync(path.join(dir, 'key.pem'), 'utf8'), cert: fs.readFileSync(path.join(dir, 'cert.pem'), 'utf8') };
}
const signer = makeSigner();

type SnsFields = Record<string, string>;
let counter = 0;

/** An SNS message signed as SNS signs it (the documented string, SHA1withRSA or SHA256withRSA, base64). */
function signed(fields: SnsFields, options: { version?: '1' | '2'; certUrl?: string; key?: string } = {}): SnsFields {
  const version = options.version ?? '2';
  const m: SnsFields = { SignatureVersion: version, SigningCertURL: options.certUrl ?? CERT_URL, ...fields };
  const toSign = snsStringToSign(m as Parameters<typeof snsStringToSign>[0]);
  m.Signature = createSign(version === '1' ? 'RSA-SHA1' : 'RSA-SHA256').update(toSign, 'utf8').sign(options.key ?? signer.key, 'base64');
  return m;
}

const rawMessage = (subject: string) => `From: SES News <news@example.com>\r\nTo: list@example.com\r\nSubject: ${subject}\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nDelivered by SES, caf\u00e9.\r\n`;

/** The SES notification of a receipt rule's SNS action, as documented, in an SNS Notification. */
function notification(to: string[], subject: string, options: { encoding?: 'UTF8' | 'BASE64'; topic?: string; version?: '1' | '2'; certUrl?: string } = {}): SnsFields {
  const encoding = options.encoding ?? 'BASE64';
  const raw = rawMessage(subject);
  const ses = {
    notificationType: 'Received',
    mail: {
      timestamp: new Date().toISOString(), source: 'bounces@example.com', messageId: `ses-${++counter}`,
      destination: to, headersTruncated: false, headers: [], commonHeaders: { from: ['news@example.com'], to, subject },
    },
    receipt: {
      timestamp: new Date().toISOString(), processingTimeMillis: 12, recipients: to,
      spamVerdict: { status: 'PASS' }, virusVerdict: { status: 'PASS' }, spfVerdict: { status: 'PASS' }, dkimVerdict: { status: 'PASS' }, dmarcVerdict: { status: 'PASS' },
      action: { type: 'SNS', topicArn: options.topic ?? TOPIC, encoding },
    },
    content: encoding === 'BASE64' ? Buffer.from(raw, 'utf8').toString('base64') : raw,
  };
  return signed({
    Type: 'Notification', MessageId: `00000000-0000-4000-8000-${String(++counter).padStart(12, '0')}`, TopicArn: options.topic ?? TOPIC,
    Subject: 'Amazon SES Email Receipt Notification', Message: JSON.stringify(ses), Timestamp: new Date().toISOString(),
  }, { version: options.version, certUrl: options.certUrl });
}

function post(base: string, body: string | SnsFields, headers: Record<string, string> = {}) {
  const text = typeof body === 'string' ? body : JSON.stringify(body);
  const type = typeof body === 'string' ? 'Notification' : body.Type ?? 'Notification';
  return fetch(`${base}/inbound/ses`, {
    method: 'POST',
    headers: { 'Content-Type': 'text/plain; charset=UTF-8', 'x-amz-sns-message-type': type, ...headers },
    body: text,
  });
}

describe('Amazon SES via SNS webhook', () => {
  let server: TestServer;
  /** Every outbound request the provider tried, by URL. */
  const fetched: string[] = [];
  before(async () => {
    testOnlySeedSnsCertificate(CERT_URL, signer.cert);
    testOnlyUseSnsFetcher(async (url) => {
      fetched.push(url);
      throw new Error('no outbound requests from tests');
    });
    server = await startTestServer({ sesTopicArn: TOPIC, maxMessageBytes: '256k' });
  });
  beforeEach(() => {
    fetched.length = 0;
  });
  after(async () => {
    testOnlyUseSnsFetcher(undefined);
    await server.stop();
  });

  it('a signed Notification (SignatureVersion 2, base64 content) becomes one entry; the same message again stores no second', async () => {
    const feed = await createFeed(server.base);
    const message = notification([feed.address], 'via SES');
    const res = await post(server.base, message);
    assert.equal(res.status, 200);
    const items = await waitForEntries(feed.feeds.json, 'json');
    assert.equal(items[0]!.title, 'via SES');
    assert.match(items[0]!.html, /café/);
    const again = await post(server.base, message);
    assert.equal(again.status, 409);
    await new Promise((r) => setTimeout(r, 300));
    assert.equal((await readFeed(feed.feeds.json, 'json')).length, 1);
    assert.deepEqual(fetched, [], 'the seeded certificate was used; nothing fetched');
  });

  it('verifies SignatureVersion 1 (SHA1withRSA) too, with UTF-8 content', async () => {
    const feed = await createFeed(server.base);
    const res = await post(server.base, notification([feed.address], 'version one', { version: '1', encoding: 'UTF8' }));
    assert.equal(res.status, 200);
    const items = await waitForEntries(feed.feeds.json, 'json');
    assert.equal(items[0]!.title, 'version one');
    assert.match(items[0]!.html, /café/);
  });

  it('verifies a Notification without a Subject (signed without the field), and acknowledges SES\'s setup notification without storing', async () => {
    const feed = await createFeed(server.base);
    const { Subject: _subject, ...withSubject } = notification([feed.address], 'no subject field');
    const res = await post(server.base, signed({ ...withSubject, Signature: '' }));
    assert.equal(res.status, 200);
    assert.equal((await waitForEntries(feed.feeds.json, 'json'))[0]!.title, 'no subject field');
    const setup = signed({
      Type: 'Notification', MessageId: 'setup-1', TopicArn: TOPIC, Timestamp: new Date().toISOString(),
      Message: JSON.stringify({ notificationType: 'Received', mail: { messageId: 'AMAZON_SES_SETUP_NOTIFICATION', destination: [feed.address] }, receipt: { recipients: [feed.address] } }),
    });
    const ack = await post(server.base, setup);
    assert.equal(ack.status, 200);
    assert.deepEqual(await ack.json(), { accepted: true, stored: false });
  });

  it('refuses a changed byte in the message or the signature, a wrong version, and another key (401), storing nothing', async () => {
    const feed = await createFeed(server.base);
    const good = notification([feed.address], 'tampered');
    const changedMessage = { ...good, Message: good.Message!.replace('tampered', 'tamperee') };
    assert.equal((await post(server.base, changedMessage)).status, 401);
    const sig = Buffer.from(good.Signature!, 'base64');
    sig[10]! ^= 1;
    assert.equal((await post(server.base, { ...good, Signature: sig.toString('base64') })).status, 401);
    assert.equal((await post(server.base, { ...good, SignatureVersion: '1' })).status, 401, 'signed with SHA256, claimed SHA1');
    const other = makeSigner();
    assert.equal((await post(server.base, signed({ ...good, Signature: '' }, { key: other.key }))).status, 401, 'signed by a key that is not the certificate\'s');
    assert.equal((await post(server.base, good)).status, 200, 'the message as signed goes through');
    await waitForEntries(feed.feeds.json, 'json');
    await new Promise((r) => setTimeout(r, 300));
    assert.deepEqual((await readFeed(feed.feeds.json, 'json')).map((i) => i.title), ['tampered']);
  });

  it('refuses a certificate URL that is not https://sns.<region>.amazonaws.com/….pem without any outbound request', async () => {
    // A local server that would serve our certificate: it must never be asked.
    let hits = 0;
    const local = http.createServer((_req, res) => {
      hits++;
      res.end(signer.cert);
    });
    await new Promise<void>((r) => local.listen(0, '127.0.0.1', r));
    try {
      const feed = await createFeed(server.base);
      const refused = [
        `http://127.0.0.1:${(local.address() as AddressInfo).port}/SimpleNotificationService-x.pem`,
        'http://sns.us-east-1.amazonaws.com/SimpleNotificationService-x.pem',
        'https://evil.example/SimpleNotificationService-x.pem',
        'https://sns.us-east-1.amazonaws.com.evil.example/SimpleNotificationService-x.pem',
        'https://sns.us-east-1.amazonaws.com@evil.example/SimpleNotificationService-x.pem',
        'https://sns.us-east-1.amazonaws.com:8443/SimpleNotificationService-x.pem',
        'https://sns.us-east-1.amazonaws.com/SimpleNotificationService-x.txt',
        'https://sns.eu-west-1.amazonaws.com/SimpleNotificationService-x.pem',
        'https://sns.us-east-1.amazonaws.com.cn/SimpleNotificationService-x.pem',
        'https://xsns.us-east-1.amazonaws.com/SimpleNotificationService-x.pem',
      ];
      for (const certUrl of refused) {
        const res = await post(server.base, notification([feed.address], 'bad certificate URL', { certUrl }));
        assert.equal(res.status, 401, certUrl);
        assert.match(((await res.json()) as { error: { message: string } }).error.message, /signing certificate URL/, certUrl);
      }
      assert.equal(hits, 0, 'the local server was never asked');
      assert.deepEqual(fetched, [], 'no outbound request at all');
      // An allowlisted URL not in the cache is fetched (here the fetcher fails: 503, SNS retries).
      const allowed = 'https://sns.us-east-1.amazonaws.com/SimpleNotificationService-other.pem';
      assert.equal((await post(server.base, notification([feed.address], 'uncached', { certUrl: allowed }))).status, 503);
      assert.deepEqual(fetched, [allowed]);
      // A URL whose fetch just failed is not fetched again at once.
      assert.equal((await post(server.base, notification([feed.address], 'uncached again', { certUrl: allowed }))).status, 503);
      assert.deepEqual(fetched, [allowed]);
      assert.equal((await readFeed(feed.feeds.json, 'json')).length, 0);
    } finally {
      await new Promise((r) => local.close(r));
    }
  });

  it('refuses another topic (401), by header or by the signed TopicArn, storing nothing', async () => {
    const feed = await createFeed(server.base);
    const otherTopic = 'arn:aws:sns:us-east-1:123456789012:someone-else';
    assert.equal((await post(server.base, notification([feed.address], 'other topic', { topic: otherTopic }))).status, 401);
    assert.equal((await post(server.base, notification([feed.address], 'other topic header'), { 'x-amz-sns-topic-arn': otherTopic })).status, 401);
    await new Promise((r) => setTimeout(r, 300));
    assert.equal((await readFeed(feed.feeds.json, 'json')).length, 0);
  });

  it('answers an unknown recipient with 200 (do not retry) and stores nothing', async () => {
    const res = await post(server.base, notification(['nobody@localhost'], 'to nobody'));
    assert.equal(res.status, 200);
    assert.equal(((await res.json()) as { error: { code: string } }).error.code, 'unknown_recipient');
  });

  it('answers malformed JSON and a body that is no SNS message with 400', async () => {
    assert.equal((await post(server.base, '{"Type": "Notification", ')).status, 400);
    assert.equal((await post(server.base, '{"hello": "world"}')).status, 400);
  });

  it('with auto-confirm off, acknowledges a SubscriptionConfirmation and makes no request', async () => {
    const confirmation = signed({
      Type: 'SubscriptionConfirmation', MessageId: 'confirm-1', TopicArn: TOPIC, Token: 'token-1',
      Message: `You have chosen to subscribe to the topic ${TOPIC}.\nTo confirm the subscription, visit the SubscribeURL included in this message.`,
      SubscribeURL: `https://sns.us-east-1.amazonaws.com/?Action=ConfirmSubscription&TopicArn=${encodeURIComponent(TOPIC)}&Token=token-1`,
      Timestamp: new Date().toISOString(),
    });
    const res = await post(server.base, confirmation);
    assert.equal(res.status, 200);
    assert.deepEqual(await res.json(), { accepted: true, stored: false });
    assert.deepEqual(fetched, []);
    const unsubscribed = signed({ ...confirmation, Type: 'UnsubscribeConfirmation', MessageId: 'unsub-1', Signature: '' });
    assert.equal((await post(server.base, unsubscribed)).status, 200);
    assert.deepEqual(fetched, []);
  });

  it('with auto-confirm on, fetches the SubscribeURL once, and only one on SNS', async () => {
    const confirming = await startTestServer({ sesTopicArn: TOPIC, sesAutoConfirm: 'true' });
    const confirmed: string[] = [];
    testOnlyUseSnsFetcher(async (url) => {
      confirmed.push(url);
      return Buffer.from('<ConfirmSubscriptionResponse/>');
    });
    try {
      const subscribeUrl = `https://sns.us-east-1.amazonaws.com/?Action=ConfirmSubscription&TopicArn=${encodeURIComponent(TOPIC)}&Token=token-2`;
      const confirmation = (url: string, id: string) => signed({
        Type: 'SubscriptionConfirmation', MessageId: id, TopicArn: TOPIC, Token: 'token-2', Message: 'confirm', SubscribeURL: url, Timestamp: new Date().toISOString(),
      });
      assert.equal((await post(confirming.base, confirmation('https://sns.us-east-1.amazonaws.com.evil.example/?Action=ConfirmSubscription', 'c-evil'))).status, 200);
      assert.deepEqual(confirmed, [], 'a SubscribeURL off SNS is not fetched');
      assert.equal((await post(confirming.base, confirmation(subscribeUrl, 'c-good'))).status, 200);
      assert.deepEqual(confirmed, [subscribeUrl]);
    } finally {
      testOnlyUseSnsFetcher(async (url) => {
        fetched.push(url);
        throw new Error('no outbound requests from tests');
      });
      await confirming.stop();
    }
  });

  it('refuses a message older than a day (401)', async () => {
    const feed = await createFeed(server.base);
    const old = notification([feed.address], 'old');
    const stale = signed({ ...old, Timestamp: new Date(Date.now() - 25 * 3600_000).toISOString(), Signature: '' });
    assert.equal((await post(server.base, stale)).status, 401);
  });

  it('is off (404) without FEEDMAIL_SES_TOPIC_ARN', async () => {
    const off = await startTestServer();
    try {
      assert.equal((await post(off.base, notification(['a@localhost'], 'x'))).status, 404);
    } finally {
      await off.stop();
    }
  });
});
