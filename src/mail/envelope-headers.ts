/**
 * Recipients named by a message's own trace headers, for transports without an SMTP
 * envelope: `feedmail deliver` (a local MTA puts Delivered-To / X-Original-To in front of
 * what it pipes) and the Cloudflare Email Worker (which puts Delivered-To first, under its
 * signature). Only the header is read, within HEAD_MAX_BYTES, like mail/head.ts.
 */
import { addressesOf, HEAD_MAX_BYTES } from './head.js';

export interface HeaderField {
  /** Lowercase. */
  name: string;
  /** Unfolded, as latin1 text of the bytes. */
  value: string;
}

/** The header fields of a message in order, folded lines joined; a line past the bound is not read. */
export function headerFields(raw: Buffer): HeaderField[] {
  const text = raw.subarray(0, HEAD_MAX_BYTES).toString('latin1');
  let end = text.length;
  for (const blank of ['\n\n', '\n\r\n']) {
    const at = text.indexOf(blank);
    if (at !== -1 && at < end) end = at;
  }
  if (end === text.length && raw.length > HEAD_MAX_BYTES) end = Math.max(0, text.lastIndexOf('\n'));
  const fields: HeaderField[] = [];
  for (const line of text.slice(0, end).split('\n')) {
    const l = line.endsWith('\r') ? line.slice(0, -1) : line;
    const last = fields[fields.length - 1];
    if ((l.startsWith(' ') || l.startsWith('\t')) && last) {
      last.value += l;
      continue;
    }
    const colon = l.indexOf(':');
    if (colon > 0) fields.push({ name: l.slice(0, colon).trim().toLowerCase(), value: l.slice(colon + 1) });
  }
  return fields;
}

/** The addresses of every field named `name`. */
function addressesIn(fields: HeaderField[], name: string): string[] {
  return [...new Set(fields.filter((f) => f.name === name).flatMap((f) => addressesOf(f.value)))];
}

/**
 * The recipients of a message handed over by a local mail server: its Delivered-To
 * addresses, or else its X-Original-To addresses, or else its To: addresses.
 */
export function recipientsFromHeaders(raw: Buffer): string[] {
  const fields = headerFields(raw);
  for (const name of ['delivered-to', 'x-original-to', 'to']) {
    const found = addressesIn(fields, name);
    if (found.length > 0) return found;
  }
  return [];
}

/**
 * The addresses of the Delivered-To fields at the very top of a message, before any other
 * field: those a relay put there itself, never one the sender wrote further down.
 */
export function leadingDeliveredTo(raw: Buffer): string[] {
  const fields = headerFields(raw);
  const leading: HeaderField[] = [];
  for (const f of fields) {
    if (f.name !== 'delivered-to') break;
    leading.push(f);
  }
  return addressesIn(leading, 'delivered-to');
}
