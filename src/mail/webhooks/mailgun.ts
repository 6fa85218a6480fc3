/**
 * Mailgun routes (https://documentation.mailgun.com/docs/mailgun/user-manual/receive-forward-store/):
 * a route's `forward("https://feeds.example.com/inbound/mailgun-mime")` POSTs the
 * message as a form. Mailgun sends the raw message in `body-mime` only when the URL
 * ends in "mime", so that is the path to use: the message stays byte for byte as it
 * arrived. `forward("…/inbound/mailgun")` gets the parsed form instead (`from`,
 * `subject`, `body-plain`, `body-html`, `message-headers`, `attachment-N`,
 * `content-id-map`), which is rebuilt into a MIME message (compose.ts). Both paths
 * take both shapes.
 *
 * Authenticated as Mailgun documents for webhooks
 * (https://documentation.mailgun.com/docs/mailgun/user-manual/webhooks/securing-webhooks):
 * `signature` = hex HMAC-SHA256(HTTP webhook signing key, `timestamp` + `token`),
 * compared in constant time. A timestamp older than FEEDMAIL_MAILGUN_MAX_AGE is
 * refused (401), and so is a token seen before: the token is the delivery's replay
 * key, remembered in queue.db until the timestamp is too old anyway. The fields
 * travel in the body, so all this happens once the body is read (`verify`).
 *
 * Mailgun retries every answer but 200 and 406: "do not retry" (an unknown
 * recipient, a feed refusing the sender) is 406, and so is a replayed token, whose
 * delivery was taken the first time.
 */
import { createHmac, timingSafeEqual } from 'node:crypto';
import { z } from 'zod';
import { BadSignatureError, ReplayedDeliveryError } from '../../errors.js';
import { composeMessage, type Attachment } from './compose.js';
import { fieldText, jsonField, readForm, type Form } from './form.js';
import type { ParsedDelivery, SignedRequest, WebhookProvider } from './provider.js';

/** `message-headers`: every header of the message as [name, value] pairs, in order. */
export const mailgunHeadersSchema = z.array(z.tuple([z.string(), z.string()]));
/** `content-id-map`: the inline attachments, `{"<cid>": "attachment-1"}`. */
export const mailgunContentIdMapSchema = z.record(z.string(), z.string());

export interface MailgunSecret {
  signingKey: string;
  maxAgeSeconds: number;
}

/** The signature Mailgun puts in a delivery's `signature` field (for tests, and relays imitating Mailgun). */
export function mailgunSignature(signingKey: string, timestamp: string, token: string): string {
  return createHmac('sha256', signingKey).update(timestamp + token).digest('hex');
}

type MailgunSignedRequest = SignedRequest & { form?: Form };

/** Checks a verified form's signature fields: throws BadSignatureError, or returns the replay key. */
function checkSignature(form: Form, secret: MailgunSecret, now: number): SignedRequest['replay'] {
  const timestamp = fieldText(form, 'timestamp') ?? '';
  const token = fieldText(form, 'token') ?? '';
  const signature = fieldText(form, 'signature') ?? '';
  if (!/^\d{1,12}$/.test(timestamp) || !/^[\x21-\x7e]{1,256}$/.test(token) || !/^[0-9a-f]{64}$/i.test(signature)) {
    throw new BadSignatureError('missing or malformed timestamp, token or signature field');
  }
  const expected = Buffer.from(mailgunSignature(secret.signingKey, timestamp, token), 'hex');
  if (!timingSafeEqual(expected, Buffer.from(signature, 'hex'))) throw new BadSignatureError('signature does not match');
  const age = now / 1000 - Number(timestamp);
  if (Math.abs(age) > secret.maxAgeSeconds) throw new BadSignatureError(`timestamp is more than ${secret.maxAgeSeconds} s away from the server's clock`);
  // Kept one second past the window: after that the timestamp alone refuses it.
  return { signature: `mailgun:${token}`, expiresAt: (Number(timestamp) + secret.maxAgeSeconds + 1) * 1000 };
}

export function mailgunDelivery(form: Form): ParsedDelivery {
  const recipients = (fieldText(form, 'recipient') ?? '').split(',').map((r) => r.trim()).filter(Boolean);
  const mailFrom = fieldText(form, 'sender');
  const raw = form.fields.get('body-mime') ?? rebuild(form);
  return { recipients, raw, mailFrom };
}

function rebuild(form: Form): Buffer {
  const headers = jsonField(form, 'message-headers', mailgunHeadersSchema)
    ?? ([['From', fieldText(form, 'from')], ['Subject', fieldText(form, 'subject')]] as [string, string | undefined][])
      .filter((h): h is [string, string] => h[1] !== undefined);
  const cids = new Map(Object.entries(jsonField(form, 'content-id-map', mailgunContentIdMapSchema) ?? {}).map(([cid, field]) => [field, cid]));
  const attachments: Attachment[] = form.files
    .filter((f) => /^attachment-\d+$/.test(f.field))
    .sort((a, b) => Number(a.field.slice(11)) - Number(b.field.slice(11)))
    .map((f) => ({ filename: f.filename || f.field, contentType: f.contentType, content: f.data, contentId: cids.get(f.field)?.replace(/^<|>$/g, '') }));
  const text = form.fields.get('body-plain');
  const html = form.fields.get('body-html');
  return composeMessage({
    headers,
    // Mailgun posts the bodies in UTF-8.
    text: text ? { content: text, charset: 'utf-8' } : undefined,
    html: html ? { content: html, charset: 'utf-8' } : undefined,
    attachments,
  });
}

function mailgunProvider(name: string): WebhookProvider<MailgunSignedRequest, MailgunSecret> {
  return {
    name,
    secret: (config) => config.mailgunSigningKey && { signingKey: config.mailgunSigningKey, maxAgeSeconds: config.mailgunMaxAge },
    checkHeaders(request, secret, now) {
      const signed: MailgunSignedRequest = {
        update: () => undefined,
        async verify(body) {
          signed.form = await readForm(body, request.headers);
          signed.replay = checkSignature(signed.form, secret, now);
        },
      };
      return signed;
    },
    parse: (_body, signed) => mailgunDelivery(signed.form!),
    acceptedStatus: 200,
    statusFor: (error) => (error.httpStatus === 422 || error instanceof ReplayedDeliveryError ? 406 : undefined),
  };
}

/** The raw message in `body-mime` (the URL ends in "mime"): the path to paste into the route. */
export const mailgunMimeProvider = mailgunProvider('mailgun-mime');
/** The parsed form, rebuilt into MIME. */
export const mailgunFormProvider = mailgunProvider('mailgun');
