/**
 * Amazon SES receiving through Amazon SNS: a receipt rule's SNS action publishes each
 * message to a topic, and the topic's HTTPS subscription POSTs it to `POST /inbound/ses`.
 *
 * The body is an SNS message (JSON; https://docs.aws.amazon.com/sns/latest/dg/sns-message-and-json-formats.html)
 * of one of three types:
 *   - `Notification`: its Message is the SES notification (JSON; https://docs.aws.amazon.com/ses/latest/dg/receiving-email-notifications-contents.html)
 *     with the raw message in `content`, plain (the action's encoding UTF-8) or base64
 *     (encoding Base64, which keeps every byte), the recipients in `receipt.recipients`;
 *   - `SubscriptionConfirmation`: confirmed by fetching its SubscribeURL when
 *     FEEDMAIL_SES_AUTO_CONFIRM=true, otherwise the URL is logged for the operator to open;
 *   - `UnsubscribeConfirmation`: acknowledged and logged.
 *
 * Every message is authenticated as SNS documents it
 * (https://docs.aws.amazon.com/sns/latest/dg/sns-verify-signature-of-message.html): the
 * topic must be FEEDMAIL_SES_TOPIC_ARN; the signing certificate's URL must be HTTPS on
 * `sns.<the topic's region>.amazonaws.com` (`.com.cn` in China) with a path ending in
 * `.pem`, or the message is refused without any request; the certificate is fetched with
 * safeFetch (bounded in time and size, no redirects) and kept in memory; the signature
 * (SignatureVersion 1: SHA1withRSA, 2: SHA256withRSA) must match the documented fields in
 * their documented order. The MessageId, which SNS keeps across its retries, is the replay key.
 */
import { createVerify, X509Certificate, type KeyObject } from 'node:crypto';
import { z } from 'zod';
import { BadRequestError, BadSignatureError, TemporaryFailureError } from '../../errors.js';
import { safeFetch } from '../../net/safe-fetch.js';
import type { SignedRequest, WebhookContext, WebhookProvider } from './provider.js';
import { header } from './raw.js';

/**
 * How old a message's Timestamp may be. SNS keeps the Timestamp of the first attempt on its
 * retries, and an HTTPS delivery policy retries for an hour at most; a day leaves room for
 * clocks and still bounds how long MessageIds are remembered.
 */
export const SNS_MAX_AGE_SECONDS = 24 * 3600;
/** How far in the future a Timestamp may be (clock skew). */
const SNS_MAX_FUTURE_SECONDS = 300;
/** Certificates kept in memory; SNS signs with one per region at a time. */
const CERTIFICATE_CACHE_SIZE = 32;
/** Bounds of the certificate fetch and of the subscription confirmation. */
const FETCH_TIMEOUT_MS = 10_000;
const CERTIFICATE_MAX_BYTES = 64 * 1024;
const CONFIRM_MAX_BYTES = 64 * 1024;

/** The SNS message, as documented; unknown fields are ignored. */
const snsMessage = z.object({
  Type: z.enum(['Notification', 'SubscriptionConfirmation', 'UnsubscribeConfirmation']),
  MessageId: z.string().min(1).max(200),
  TopicArn: z.string().min(1).max(1024),
  Subject: z.string().optional(),
  Message: z.string(),
  Timestamp: z.string().min(1).max(64),
  SignatureVersion: z.enum(['1', '2']),
  Signature: z.string().min(1).max(4096),
  SigningCertURL: z.string().min(1).max(2048),
  SubscribeURL: z.string().max(4096).optional(),
  Token: z.string().max(4096).optional(),
});
type SnsMessage = z.infer<typeof snsMessage>;

/** The SES notification carried in a Notification's Message, as documented; unknown fields are ignored. */
const sesNotification = z.object({
  notificationType: z.string(),
  mail: z.object({
    messageId: z.string().optional(),
    source: z.string().optional(),
    destination: z.array(z.string()).optional(),
  }).optional(),
  receipt: z.object({
    recipients: z.array(z.string()).optional(),
    action: z.object({ type: z.string().optional(), encoding: z.string().optional() }).optional(),
  }).optional(),
  content: z.string().optional(),
});

/** The region and partition named by a topic ARN: arn:aws:sns:us-east-1:123456789012:name. */
function topicRegion(topicArn: string): { region: string; china: boolean } | undefined {
  const m = /^arn:(aws(?:-cn|-us-gov)?):sns:([a-z0-9-]+):/.exec(topicArn);
  return m ? { region: m[2]!, china: m[1] === 'aws-cn' } : undefined;
}

/**
 * Why a URL SNS gave (the signing certificate, the subscription to confirm) is not one of
 * SNS's own for the topic: HTTPS on sns.<region>.amazonaws.com, the topic's region, default
 * port, no user name. Null when it is.
 */
export function snsUrlProblem(raw: string, topicArn: string, pathEnding = ''): string | null {
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    return 'is not a URL';
  }
  if (url.protocol !== 'https:') return 'is not HTTPS';
  if (url.username || url.password || url.port) return 'names a user or a port';
  const topic = topicRegion(topicArn);
  const host = /^sns\.([a-z0-9-]+)\.amazonaws\.com(\.cn)?$/.exec(url.hostname);
  if (!host || !topic) return 'is not on sns.<region>.amazonaws.com';
  if (host[1] !== topic.region || (host[2] !== undefined) !== topic.china) return "is not in the topic's region";
  if (pathEnding && !url.pathname.endsWith(pathEnding)) return `does not end in ${pathEnding}`;
  return null;
}

/** The documented string SNS signs: each field's name and value, one per line, in this order. */
export function snsStringToSign(m: SnsMessage): string {
  const fields = m.Type === 'Notification'
    ? ['Message', 'MessageId', 'Subject', 'Timestamp', 'TopicArn', 'Type'] as const
    : ['Message', 'MessageId', 'SubscribeURL', 'Timestamp', 'Token', 'TopicArn', 'Type'] as const;
  let out = '';
  for (const name of fields) {
    const value = m[name];
    if (value === undefined) {
      if (name === 'Subject') continue; // a Notification without a subject signs without the field
      throw new BadRequestError(`The ${m.Type} has no ${name}`);
    }
    out += `${name}\n${value}\n`;
  }
  return out;
}

/** Fetches a URL over HTTPS with safeFetch's bounds; how certificates and confirmations are fetched. */
export type SnsFetcher = (url: string, maxBytes: number) => Promise<Buffer>;

const fetchOverHttps: SnsFetcher = async (url, maxBytes) => {
  const res = await safeFetch(url, { method: 'GET', headers: { 'User-Agent': 'feedmail' }, timeoutMs: FETCH_TIMEOUT_MS, maxBytes, allowPrivate: false });
  if (res.status !== 200) throw new Error(`answered ${res.status}`);
  if (res.truncated) throw new Error(`answered more than ${maxBytes} bytes`);
  return res.body;
};

let fetcher: SnsFetcher = fetchOverHttps;
/** Signing keys by certificate URL, oldest first; and the fetches under way, so a burst fetches once. */
const certificates = new Map<string, { key: KeyObject; validTo: number }>();
const fetching = new Map<string, Promise<{ key: KeyObject; validTo: number }>>();
/**
 * Certificate URLs whose fetch failed, until when they are not tried again: requests naming
 * made-up URLs on SNS's host cannot make feedmail fetch the same one over and over.
 */
const failedFetches = new Map<string, number>();
const FAILED_FETCH_PAUSE_MS = 60_000;

function keyOf(pem: Buffer | string): { key: KeyObject; validTo: number } {
  const cert = new X509Certificate(pem);
  return { key: cert.publicKey, validTo: Date.parse(cert.validTo) };
}

function remember(url: string, entry: { key: KeyObject; validTo: number }): void {
  certificates.set(url, entry);
  while (certificates.size > CERTIFICATE_CACHE_SIZE) certificates.delete(certificates.keys().next().value!);
}

/** The signing key at an allowlisted certificate URL: cached, or fetched once. */
async function signingKey(url: string, now: number): Promise<KeyObject> {
  const cached = certificates.get(url);
  if (cached && cached.validTo > now) return cached.key;
  const retryAt = failedFetches.get(url);
  if (retryAt !== undefined && retryAt > now) throw new TemporaryFailureError('Unable to fetch the SNS signing certificate, try again later');
  let pending = fetching.get(url);
  if (!pending) {
    pending = fetcher(url, CERTIFICATE_MAX_BYTES).then(keyOf).finally(() => fetching.delete(url));
    fetching.set(url, pending);
  }
  let entry: { key: KeyObject; validTo: number };
  try {
    entry = await pending;
  } catch (err) {
    failedFetches.set(url, now + FAILED_FETCH_PAUSE_MS);
    while (failedFetches.size > 4 * CERTIFICATE_CACHE_SIZE) failedFetches.delete(failedFetches.keys().next().value!);
    // SNS retries a delivery that failed this way (5xx) for up to an hour; by then the certificate may be reachable.
    throw new TemporaryFailureError('Unable to fetch the SNS signing certificate, try again later', { cause: err });
  }
  if (!(entry.validTo > now)) throw new BadSignatureError('the SNS signing certificate has expired');
  remember(url, entry);
  return entry.key;
}

/**
 * TEST ONLY: puts a certificate in the cache as if fetched from `url`, so tests sign with
 * their own key while the production allowlist still decides which URLs are looked up.
 */
export function testOnlySeedSnsCertificate(url: string, pem: string): void {
  remember(url, keyOf(pem));
}

/** TEST ONLY: replaces the HTTPS fetcher (to count or record requests); undefined restores it. */
export function testOnlyUseSnsFetcher(replacement: SnsFetcher | undefined): void {
  fetcher = replacement ?? fetchOverHttps;
}

interface SesSignedRequest extends SignedRequest {
  /** The settings and log, for parse (auto-confirm). */
  context: WebhookContext;
  /** Set by verify once the message is authenticated. */
  message?: SnsMessage;
}

export const sesProvider: WebhookProvider<SesSignedRequest> = {
  name: 'ses',
  secret: (config) => config.sesTopicArn,
  checkHeaders(request, topicArn, now, context) {
    // SNS names the topic in a header too: a request for another topic is refused unread.
    const topicHeader = header(request.headers['x-amz-sns-topic-arn']);
    if (topicHeader !== undefined && topicHeader !== topicArn) throw new BadSignatureError('not the configured SNS topic (FEEDMAIL_SES_TOPIC_ARN)');
    const signed: SesSignedRequest = {
      context,
      update: () => undefined, // the signature is over fields of the JSON body, checked once it is whole
      async verify(body) {
        let json: unknown;
        try {
          json = JSON.parse(body.toString('utf8'));
        } catch {
          throw new BadRequestError('The body is not JSON (an SNS message was expected)');
        }
        const parsed = snsMessage.safeParse(json);
        if (!parsed.success) throw new BadRequestError(`The body is not an SNS message: ${parsed.error.issues[0]?.path.join('.') || 'body'} ${parsed.error.issues[0]?.message ?? ''}`.trim());
        const m = parsed.data;
        if (m.TopicArn !== topicArn) throw new BadSignatureError('not the configured SNS topic (FEEDMAIL_SES_TOPIC_ARN)');
        const sentAt = Date.parse(m.Timestamp);
        if (Number.isNaN(sentAt)) throw new BadRequestError('The SNS message has no valid Timestamp');
        if (now - sentAt > SNS_MAX_AGE_SECONDS * 1000 || sentAt - now > SNS_MAX_FUTURE_SECONDS * 1000) throw new BadSignatureError('the SNS message is too old, or from the future');
        // Decided on the URL alone, before any request is made.
        const problem = snsUrlProblem(m.SigningCertURL, topicArn, '.pem');
        if (problem) throw new BadSignatureError(`the signing certificate URL ${problem}; SNS signs with certificates from https://sns.<region>.amazonaws.com/…pem`);
        const key = await signingKey(m.SigningCertURL, now);
        const verifier = createVerify(m.SignatureVersion === '1' ? 'RSA-SHA1' : 'RSA-SHA256').update(snsStringToSign(m), 'utf8');
        if (!verifier.verify(key, m.Signature, 'base64')) throw new BadSignatureError('SNS signature does not match');
        signed.message = m;
        signed.replay = { signature: `sns:${m.MessageId}`, expiresAt: sentAt + (SNS_MAX_AGE_SECONDS + 1) * 1000 };
      },
    };
    return signed;
  },
  async parse(_body, signed) {
    const { message: m, context: { config, log } } = signed;
    if (!m) throw new BadRequestError('The SNS message was not verified');
    if (m.Type === 'UnsubscribeConfirmation') {
      log.warn({ topicArn: m.TopicArn }, 'ses: SNS says the subscription of this endpoint to the topic was removed; no more mail will come until it is subscribed again');
      return null;
    }
    if (m.Type === 'SubscriptionConfirmation') {
      const problem = m.SubscribeURL === undefined ? 'is missing' : snsUrlProblem(m.SubscribeURL, m.TopicArn);
      if (!config.sesAutoConfirm || problem) {
        log.warn({ topicArn: m.TopicArn, subscribeUrl: problem ? undefined : m.SubscribeURL },
          problem ? `ses: subscription confirmation not confirmed: its SubscribeURL ${problem}`
            : 'ses: to receive mail from this SNS topic, open subscribeUrl once (or set FEEDMAIL_SES_AUTO_CONFIRM=true and re-send the confirmation)');
        return null;
      }
      try {
        await fetcher(m.SubscribeURL!, CONFIRM_MAX_BYTES);
      } catch (err) {
        throw new TemporaryFailureError('Unable to confirm the SNS subscription, try again later', { cause: err });
      }
      log.info({ topicArn: m.TopicArn }, 'ses: SNS subscription confirmed');
      return null;
    }
    let notification: z.infer<typeof sesNotification>;
    try {
      notification = sesNotification.parse(JSON.parse(m.Message));
    } catch {
      throw new BadRequestError('The SNS Message is not an SES notification');
    }
    if (notification.notificationType !== 'Received' || notification.mail?.messageId === 'AMAZON_SES_SETUP_NOTIFICATION') {
      log.info({ notificationType: notification.notificationType }, 'ses: notification without a message (a setup test?); nothing stored');
      return null;
    }
    if (notification.content === undefined) {
      throw new BadRequestError('The SES notification has no content: the receipt rule must use an SNS action (not S3 with an SNS topic)');
    }
    const base64 = notification.receipt?.action?.encoding?.toUpperCase() === 'BASE64';
    const raw = Buffer.from(notification.content, base64 ? 'base64' : 'utf8');
    if (raw.length === 0) throw new BadRequestError('The SES notification carries an empty message');
    const recipients = notification.receipt?.recipients?.length ? notification.receipt.recipients : notification.mail?.destination ?? [];
    return { recipients, raw, mailFrom: notification.mail?.source };
  },
  acceptedStatus: 200,
  // SNS retries only 5xx answers and timeouts (https://docs.aws.amazon.com/sns/latest/dg/SendMessageToHttp.prepare.html);
  // "do not retry" (no such feed, sender refused) is answered 200, nothing stored and the reason logged, as for the other non-4xx providers.
  statusFor: (error) => (error.httpStatus === 422 ? 200 : undefined),
};
