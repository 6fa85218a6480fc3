/**
 * SendGrid Inbound Parse
 * (https://www.twilio.com/docs/sendgrid/for-developers/parsing-email/setting-up-the-inbound-parse-webhook):
 * the message as multipart/form-data, POSTed to the host's destination URL,
 * `https://user:password@feeds.example.com/inbound/sendgrid`. With "POST the raw,
 * full MIME message" ticked (raw mode) the message is the `email` field, taken as it
 * is, and the recipients are the `envelope` JSON's `to`; otherwise (parsed mode) the
 * message is rebuilt (compose.ts) from `headers`, `text` and `html` (in the charsets
 * the `charsets` JSON names) and `attachmentN` with `attachment-info`.
 *
 * Authenticated by HTTP Basic credentials (FEEDMAIL_SENDGRID_CREDENTIALS), by the
 * signed webhook of a security policy
 * (https://www.twilio.com/docs/sendgrid/for-developers/parsing-email/securing-your-parse-webhooks):
 * an ECDSA P-256 signature (base64 DER, X-Twilio-Email-Event-Webhook-Signature)
 * over the X-Twilio-Email-Event-Webhook-Timestamp header followed by the body,
 * checked with FEEDMAIL_SENDGRID_PUBLIC_KEY as the body streams in, or by both
 * when both are set.
 *
 * SendGrid retries every answer but 2xx, so "do not retry" (an unknown recipient,
 * a feed refusing the sender) is answered 200 with nothing stored (the route logs
 * why). A signed delivery is taken once: its timestamp must be within
 * SENDGRID_MAX_AGE_SECONDS, and the same signed request again is answered 200 with
 * `replayed_delivery` and nothing stored. With credentials alone, a retry of a
 * delivery is the same message again, stored once by ingest.
 */
import { createHash, createPublicKey, createVerify, type KeyObject } from 'node:crypto';
import type { IncomingHttpHeaders } from 'node:http';
import { z } from 'zod';
import { BadSignatureError, ReplayedDeliveryError } from '../../errors.js';
import { checkBasicAuth } from './basic-auth.js';
import { composeMessage, type Attachment } from './compose.js';
import { fieldText, jsonField, readForm, type Form } from './form.js';
import type { ParsedDelivery, SignedRequest, WebhookProvider } from './provider.js';
import { MAX_SKEW_SECONDS } from './raw.js';

/** `envelope`: the SMTP envelope, `{"to":["a@b.example"],"from":"c@d.example"}`. */
export const sendgridEnvelopeSchema = z.looseObject({ to: z.array(z.string()), from: z.string().nullish() });
/** `attachment-info`: per attachment field, its file name, type and (inline images) Content-ID. */
export const sendgridAttachmentInfoSchema = z.record(z.string(), z.looseObject({
  filename: z.string().nullish(),
  name: z.string().nullish(),
  type: z.string().nullish(),
  'content-id': z.string().nullish(),
}));
/** `charsets`: the charset of each text field, `{"text":"iso-8859-1","html":"utf-8"}`. */
export const sendgridCharsetsSchema = z.record(z.string(), z.string());

export const SIGNATURE_HEADER = 'x-twilio-email-event-webhook-signature';
export const TIMESTAMP_HEADER = 'x-twilio-email-event-webhook-timestamp';
/**
 * How old a signed delivery's timestamp may be. SendGrid retries a delivery for up to
 * three days and documents neither a window nor whether a retry is signed anew, so the
 * window covers the whole retry period with a day to spare; a timestamp further in the
 * future than MAX_SKEW_SECONDS is refused too. Within the window each signed delivery
 * is taken once (its replay key).
 */
export const SENDGRID_MAX_AGE_SECONDS = 4 * 24 * 60 * 60;

export interface SendgridSecret {
  /** `user:password`, or '' when deliveries are authenticated by signature alone. */
  credentials: string;
  /** The verification key, or undefined when deliveries are authenticated by credentials alone. */
  publicKey?: KeyObject;
}

/** The verification key as SendGrid shows it (base64 DER) or as PEM; config.ts has checked it. */
export function sendgridPublicKey(text: string): KeyObject {
  return text.includes('BEGIN PUBLIC KEY') ? createPublicKey(text) : createPublicKey({ key: Buffer.from(text, 'base64'), format: 'der', type: 'spki' });
}

type SendgridSignedRequest = SignedRequest & { headers: IncomingHttpHeaders };

/** Parsed once per key text, not per delivery. */
const keys = new Map<string, KeyObject>();

export function sendgridDelivery(form: Form): ParsedDelivery {
  const envelope = jsonField(form, 'envelope', sendgridEnvelopeSchema);
  const recipients = envelope?.to ?? addressesIn([fieldText(form, 'to'), fieldText(form, 'cc')].join(','));
  const raw = form.fields.get('email') ?? rebuild(form);
  return { recipients, raw, mailFrom: envelope?.from ?? undefined };
}

/** The addresses of an address header's text (`"A" <a@b.example>, c@d.example`). */
function addressesIn(text: string): string[] {
  return [...text.matchAll(/<([^<>\s]+@[^<>\s]+)>|([^\s<>",;:]+@[^\s<>",;:]+)/g)].map((m) => (m[1] ?? m[2])!);
}

function rebuild(form: Form): Buffer {
  const charsets = jsonField(form, 'charsets', sendgridCharsetsSchema) ?? {};
  const info = jsonField(form, 'attachment-info', sendgridAttachmentInfoSchema) ?? {};
  const headers = headerPairs(fieldText(form, 'headers') ?? '');
  if (headers.length === 0) {
    for (const name of ['From', 'To', 'Cc', 'Subject']) {
      const value = fieldText(form, name.toLowerCase());
      if (value) headers.push([name, value]);
    }
  }
  const body = (field: string) => {
    const content = form.fields.get(field);
    return content ? { content, charset: charsets[field] ?? 'utf-8' } : undefined;
  };
  const attachments: Attachment[] = form.files
    .filter((f) => /^attachment\d+$/.test(f.field))
    .sort((a, b) => Number(a.field.slice(10)) - Number(b.field.slice(10)))
    .map((f) => {
      const about = info[f.field];
      return {
        filename: about?.filename ?? about?.name ?? (f.filename || f.field),
        contentType: about?.type ?? f.contentType,
        content: f.data,
        contentId: about?.['content-id']?.replace(/^<|>$/g, '') || undefined,
      };
    });
  return composeMessage({ headers, text: body('text'), html: body('html'), attachments });
}

/** A header block (`headers`, as SendGrid posts it) as [name, value] pairs, folded lines joined. */
function headerPairs(block: string): [string, string][] {
  const pairs: [string, string][] = [];
  for (const line of block.split(/\r?\n/)) {
    if (/^[ \t]/.test(line) && pairs.length > 0) pairs[pairs.length - 1]![1] += ` ${line.trim()}`;
    else {
      const colon = line.indexOf(':');
      if (colon > 0) pairs.push([line.slice(0, colon).trim(), line.slice(colon + 1).trim()]);
    }
  }
  return pairs;
}

export const sendgridProvider: WebhookProvider<SendgridSignedRequest, SendgridSecret> = {
  name: 'sendgrid',
  secret(config) {
    if (!config.sendgridCredentials && !config.sendgridPublicKey) return undefined;
    let publicKey: KeyObject | undefined;
    if (config.sendgridPublicKey) {
      publicKey = keys.get(config.sendgridPublicKey) ?? sendgridPublicKey(config.sendgridPublicKey);
      keys.set(config.sendgridPublicKey, publicKey);
    }
    return { credentials: config.sendgridCredentials, publicKey };
  },
  checkHeaders(request, secret, now) {
    if (secret.credentials) checkBasicAuth(request.headers, secret.credentials);
    const { publicKey } = secret;
    if (!publicKey) return { headers: request.headers, update: () => undefined, verify: () => undefined };
    // Node joins a repeated header of this kind into one string, which the patterns below refuse.
    const signature = String(request.headers[SIGNATURE_HEADER] ?? '');
    const timestamp = String(request.headers[TIMESTAMP_HEADER] ?? '');
    if (!/^[A-Za-z0-9+/]{40,200}={0,2}$/.test(signature)) throw new BadSignatureError(`missing or malformed ${SIGNATURE_HEADER}`);
    if (!/^\d{1,12}$/.test(timestamp)) throw new BadSignatureError(`missing or malformed ${TIMESTAMP_HEADER}`);
    const age = now / 1000 - Number(timestamp);
    if (age > SENDGRID_MAX_AGE_SECONDS || age < -MAX_SKEW_SECONDS) throw new BadSignatureError(`${TIMESTAMP_HEADER} is too far from the server's clock`);
    const verifier = createVerify('sha256').update(timestamp);
    // The replay key is what the signature covers, not the signature's spelling: an ECDSA
    // signature can be re-encoded (s or n - s, base64 variants) and still verify.
    const signedContent = createHash('sha256').update(`${timestamp}.`);
    const signed: SendgridSignedRequest = {
      headers: request.headers,
      update(chunk) {
        verifier.update(chunk);
        signedContent.update(chunk);
      },
      verify() {
        if (!verifier.verify({ key: publicKey, dsaEncoding: 'der' }, Buffer.from(signature, 'base64'))) throw new BadSignatureError('signature does not match');
        // Kept one second past the window: after that the timestamp alone refuses it.
        signed.replay = { signature: `sendgrid:${signedContent.digest('hex')}`, expiresAt: (Number(timestamp) + SENDGRID_MAX_AGE_SECONDS + 1) * 1000 };
      },
    };
    return signed;
  },
  parse: async (body, signed) => sendgridDelivery(await readForm(body, signed.headers)),
  acceptedStatus: 200,
  // SendGrid stops retrying on 2xx only: "do not retry" is said with 200 and nothing stored,
  // and so is a replay, whose delivery was taken (or refused for good) the first time.
  statusFor: (error) => (error.httpStatus === 422 || error instanceof ReplayedDeliveryError ? 200 : undefined),
};
