/** Helpers of the intake tests (sender rules, limits, recent deliveries): SMTP transactions with their raw replies, webhook deliveries, form posts. */
import http from 'node:http';
import { signRawDelivery } from '../../src/mail/webhooks/raw.js';
import type { TestServer } from './helpers.js';
import { SMTPClient } from './smtp-client.js';

export const WEBHOOK_SECRET = 'intake-test-secret-that-is-long-enough-0123';

/** The replies of one SMTP transaction: one per RCPT TO, and the one after the final dot when DATA was sent. */
export interface Transaction {
  rcpt: string[];
  data?: string;
}

/** A message with these headers and a short body, CRLF line ends. */
export function message(headers: Record<string, string>, body = 'Hello.'): string {
  return `${Object.entries(headers).map(([k, v]) => `${k}: ${v}`).join('\r\n')}\r\n\r\n${body}\r\n`;
}

/** Sends one message in an open session (after EHLO): MAIL, each RCPT, and DATA when a recipient was taken (else RSET). */
export async function transact(c: SMTPClient, from: string, to: string[], raw: string): Promise<Transaction> {
  await c.command(`MAIL FROM:<${from}>`, 250);
  const rcpt: string[] = [];
  for (const t of to) rcpt.push(await c.command(`RCPT TO:<${t}>`));
  if (!rcpt.some((r) => r.startsWith('250'))) {
    await c.command('RSET', 250);
    return { rcpt };
  }
  await c.command('DATA', 354);
  // Dot-stuffing: a line starting with '.' gets another.
  await c.write(`${raw.replace(/\r\n\./g, '\r\n..')}\r\n.\r\n`);
  return { rcpt, data: await c.reply() };
}

/** One SMTP session for one message. */
export async function sendOne(port: number, from: string, to: string | string[], raw: string): Promise<Transaction> {
  const c = await SMTPClient.connect(port);
  try {
    await c.command('EHLO test', 250);
    return await transact(c, from, Array.isArray(to) ? to : [to], raw);
  } finally {
    await c.close();
  }
}

/** A signed raw-MIME webhook delivery (POST /inbound/raw?to=…). */
export async function deliverByWebhook(base: string, to: string[], raw: string): Promise<{ status: number; body: Record<string, unknown> }> {
  const target = `/inbound/raw?${to.map((t) => `to=${encodeURIComponent(t)}`).join('&')}`;
  const body = Buffer.from(raw);
  const timestamp = Math.floor(Date.now() / 1000);
  const res = await fetch(`${base}${target}`, {
    method: 'POST',
    headers: {
      'Content-Type': 'message/rfc822',
      'X-Feedmail-Timestamp': String(timestamp),
      'X-Feedmail-Signature': signRawDelivery(WEBHOOK_SECRET, { timestamp, method: 'POST', target, body }),
    },
    body: new Uint8Array(body),
  });
  return { status: res.status, body: (await res.json()) as Record<string, unknown> };
}

/**
 * A form post as a browser sends it from a page of `origin` (Origin and Sec-Fetch-Site
 * set, which fetch would not let through): the page's own origin, or another site's.
 */
export function postForm(url: string, fields: Record<string, string>, from: 'same-origin' | 'cross-site' = 'same-origin'): Promise<{ status: number; location?: string; body: string }> {
  const u = new URL(url);
  const body = new URLSearchParams(fields).toString();
  const headers = {
    'Content-Type': 'application/x-www-form-urlencoded',
    'Content-Length': String(Buffer.byteLength(body)),
    Origin: from === 'same-origin' ? u.origin : 'https://evil.example',
    'Sec-Fetch-Site': from,
  };
  return new Promise((resolve, reject) => {
    const req = http.request(u, { method: 'POST', headers }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, location: res.headers.location, body: Buffer.concat(chunks).toString('utf8') }));
    });
    req.on('error', reject);
    req.end(body);
  });
}

/** Adds a sender rule through the manage page's form; throws unless it was taken. */
export async function addRule(manage: string, action: 'block' | 'allow', pattern: string): Promise<void> {
  const res = await postForm(`${manage}/sender-rules`, { action, pattern });
  if (res.status !== 303) throw new Error(`adding ${action} ${pattern} answered ${res.status}: ${res.body.slice(0, 500)}`);
}

/** The id of the feed an address belongs to (for store methods). */
export async function feedIdOf(server: TestServer, address: string): Promise<number> {
  const feed = await server.app.stores.app.feedByInboxToken(address.split('@')[0]!);
  if (!feed) throw new Error('no such feed');
  return feed.id;
}

/** The feed ids of every journaled message, oldest first. */
export async function journaledFeedIds(server: TestServer): Promise<number[][]> {
  const rows = await server.app.stores.queue.journalAfter(0, 100_000);
  return rows.map((r) => JSON.parse(r.feed_ids) as number[]);
}

/** The manage page's HTML. */
export async function managePage(manage: string): Promise<string> {
  const res = await fetch(manage);
  if (res.status !== 200) throw new Error(`manage page answered ${res.status}`);
  return res.text();
}
