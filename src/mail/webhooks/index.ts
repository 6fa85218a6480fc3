/** The webhook providers, each served at `POST /inbound/<name>`; a new provider is one file here and one line below. */
import { cloudflareProvider } from './cloudflare.js';
import type { WebhookProvider } from './provider.js';
import { rawProvider } from './raw.js';
import { sesProvider } from './ses.js';

export const webhookProviders: readonly WebhookProvider[] = [rawProvider, cloudflareProvider, sesProvider];
