/** The webhook providers, each served at `POST /inbound/<name>`; a new provider is one file here and one line below. */
import { cloudflareProvider } from './cloudflare.js';
import type { SignedRequest, WebhookProvider } from './provider.js';
import { rawProvider } from './raw.js';
import { postmarkProvider } from './postmark.js';
import { mailgunFormProvider, mailgunMimeProvider } from './mailgun.js';
import { sendgridProvider } from './sendgrid.js';
import { sesProvider } from './ses.js';

/** Each provider's secret is of its own type (a key, credentials): the route only tells set from unset. */
export const webhookProviders: readonly WebhookProvider<SignedRequest, unknown>[] = [
  rawProvider,
  postmarkProvider,
  mailgunMimeProvider,
  mailgunFormProvider,
  sendgridProvider,
  sesProvider,
  cloudflareProvider,
];
