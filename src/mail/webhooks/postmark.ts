/**
 * Postmark's inbound webhook (https://postmarkapp.com/developer/webhooks/inbound-webhook):
 * the message as JSON, POSTed to the URL set as the inbound stream's webhook,
 * `https://user:password@feeds.example.com/inbound/postmark`. Postmark sends the
 * user and password as HTTP Basic credentials; they are FEEDMAIL_POSTMARK_CREDENTIALS.
 *
 * With "Include raw email content in JSON payload" on, `RawEmail` is the message as
 * received and is taken as it is; otherwise the message is rebuilt from the parsed
 * fields (compose.ts). The recipient is `OriginalRecipient`, else every `ToFull`,
 * `CcFull` and `BccFull` address. Postmark retries every answer but 200 and 403, so
 * "do not retry" (an unknown recipient, a feed refusing the sender) is 403 here.
 * Its requests carry nothing unique to a delivery: a retry of one is the same message
 * again, stored once by ingest (one entry per feed for byte-identical mail).
 */
import { z } from 'zod';
import { checkBasicAuth } from './basic-auth.js';
import { parseJson } from './form.js';
import { composeMessage, formatAddress, type Attachment } from './compose.js';
import type { ParsedDelivery, WebhookProvider } from './provider.js';

const address = z.looseObject({ Email: z.string(), Name: z.string().nullish() });

/** What feedmail reads of Postmark's inbound JSON; other fields are left as they are. */
export const postmarkInboundSchema = z.looseObject({
  From: z.string().nullish(),
  FromFull: address.nullish(),
  To: z.string().nullish(),
  ToFull: z.array(address).nullish(),
  Cc: z.string().nullish(),
  CcFull: z.array(address).nullish(),
  BccFull: z.array(address).nullish(),
  OriginalRecipient: z.string().nullish(),
  ReplyTo: z.string().nullish(),
  Subject: z.string().nullish(),
  Date: z.string().nullish(),
  TextBody: z.string().nullish(),
  HtmlBody: z.string().nullish(),
  Headers: z.array(z.looseObject({ Name: z.string(), Value: z.string() })).nullish(),
  Attachments: z.array(z.looseObject({
    Name: z.string().nullish(),
    Content: z.string(),
    ContentType: z.string().nullish(),
    ContentID: z.string().nullish(),
  })).nullish(),
  RawEmail: z.string().nullish(),
});

export type PostmarkInbound = z.infer<typeof postmarkInboundSchema>;

export function postmarkDelivery(message: PostmarkInbound): ParsedDelivery {
  const recipients = message.OriginalRecipient
    ? [message.OriginalRecipient]
    : [...message.ToFull ?? [], ...message.CcFull ?? [], ...message.BccFull ?? []].map((a) => a.Email);
  return { recipients, raw: message.RawEmail ? Buffer.from(message.RawEmail, 'utf8') : rebuild(message) };
}

function rebuild(m: PostmarkInbound): Buffer {
  const own: [string, string | undefined][] = [
    ['From', m.FromFull ? formatAddress(m.FromFull.Email, m.FromFull.Name ?? undefined) : m.From ?? undefined],
    ['To', m.To ?? undefined],
    ['Cc', m.Cc || undefined],
    ['Reply-To', m.ReplyTo || undefined],
    ['Subject', m.Subject ?? undefined],
    ['Date', m.Date || undefined],
  ];
  const headers = own.filter((h): h is [string, string] => h[1] !== undefined);
  const named = new Set(headers.map(([name]) => name.toLowerCase()));
  for (const h of m.Headers ?? []) if (!named.has(h.Name.toLowerCase())) headers.push([h.Name, h.Value]);
  const attachments: Attachment[] = (m.Attachments ?? []).map((a) => ({
    filename: a.Name ?? 'attachment',
    contentType: a.ContentType ?? 'application/octet-stream',
    content: Buffer.from(a.Content, 'base64'),
    contentId: a.ContentID?.replace(/^cid:/i, '').replace(/^<|>$/g, '') || undefined,
  }));
  return composeMessage({
    headers,
    text: m.TextBody ? { content: Buffer.from(m.TextBody, 'utf8'), charset: 'utf-8' } : undefined,
    html: m.HtmlBody ? { content: Buffer.from(m.HtmlBody, 'utf8'), charset: 'utf-8' } : undefined,
    attachments,
  });
}

export const postmarkProvider: WebhookProvider = {
  name: 'postmark',
  secret: (config) => config.postmarkCredentials,
  checkHeaders(request, credentials) {
    checkBasicAuth(request.headers, credentials);
    return { update: () => undefined, verify: () => undefined };
  },
  parse: (body) => postmarkDelivery(parseJson(body.toString('utf8'), postmarkInboundSchema, "Postmark's inbound JSON")),
  acceptedStatus: 200,
  // Postmark stops retrying on 403 only; 422 is "do not retry" (unknown recipient, sender refused).
  statusFor: (error) => (error.httpStatus === 422 ? 403 : undefined),
};
