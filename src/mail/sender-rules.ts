/**
 * Which senders a feed takes. A rule is an address (`news@example.com`, that address
 * only) or a domain (`example.com`: the domain and all its subdomains, so
 * `mail.example.com` but not `evil-example.com`), any case. A sender is matched by its
 * envelope sender (MAIL FROM) and by every address of its From: header:
 *
 *   - a sender any of whose addresses matches a block rule is refused (blocks win);
 *   - when the feed has allow rules, a sender none of whose addresses matches one is refused.
 *
 * The envelope sender is known at RCPT TO, so a block rule on it refuses there; the From:
 * header only arrives with the message, so the rest is decided at the end of DATA.
 * Neither address is authenticated (anyone can write any sender): rules sort mail, they
 * do not keep out someone who wants in.
 */
import { domainToASCII } from 'node:url';
import type { SenderRuleAction } from '../store/schema.js';

/** Rules one feed may have. */
export const MAX_SENDER_RULES = 200;

export interface SenderRuleLike {
  action: SenderRuleAction;
  pattern: string;
}

const LABEL = '[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?';
const DOMAIN = new RegExp(`^${LABEL}(?:\\.${LABEL})*$`);
/** The local part of an address rule: what a mailbox name is made of, no spaces, quotes or brackets. */
const LOCAL_PART = /^[^\s@<>()[\]\\,;:"\u0000-\u001f\u007f]{1,64}$/;

/** A domain in the form rules keep: lowercase, no final dot, an IDN in its ASCII (punycode) form; null when it is not a domain name. */
export function normalizeDomain(input: string): string | null {
  let d = input.trim().toLowerCase().replace(/\.$/, '');
  if (d === '' || d.length > 253) return null;
  if (/[^\u0000-\u007f]/.test(d)) d = domainToASCII(d);
  return DOMAIN.test(d) ? d : null;
}

/**
 * A rule as typed on the manage page: `someone@example.com` (that address), or
 * `example.com`, `@example.com`, `*@example.com`, `*.example.com` (that domain and its subdomains).
 */
export function parseSenderPattern(input: string): { pattern: string } | { problem: string } {
  const typed = input.trim().toLowerCase();
  if (typed === '') return { problem: 'Type an email address (news@example.com) or a domain (example.com).' };
  if (typed.length > 254) return { problem: 'That is longer than any email address or domain can be.' };
  const rest = typed.startsWith('*.') || typed.startsWith('*@') ? typed.slice(2) : typed.startsWith('@') ? typed.slice(1) : typed;
  const at = rest.lastIndexOf('@');
  if (at === -1) {
    const domain = normalizeDomain(rest);
    return domain ? { pattern: domain } : { problem: `"${input.trim().slice(0, 100)}" is not a domain name like example.com.` };
  }
  const local = rest.slice(0, at);
  const domain = normalizeDomain(rest.slice(at + 1));
  if (!domain || !LOCAL_PART.test(local)) return { problem: `"${input.trim().slice(0, 100)}" is not an email address like news@example.com.` };
  return { pattern: `${local}@${domain}` };
}

/** Whether a rule matches an address (lowercase, as sender addresses are kept). */
function matches(rule: SenderRuleLike, address: string): boolean {
  const at = address.lastIndexOf('@');
  if (at <= 0) return false;
  const domain = normalizeDomain(address.slice(at + 1));
  if (domain === null) return false;
  if (rule.pattern.includes('@')) return `${address.slice(0, at)}@${domain}` === rule.pattern;
  return domain === rule.pattern || domain.endsWith(`.${rule.pattern}`);
}

/** An address of the sender and where it was read. */
export interface SenderAddress {
  address: string;
  where: 'envelope sender' | 'From: header';
}

export type SenderVerdict = { refused: false } | { refused: true; reason: string };

/**
 * Whether a feed with these rules refuses a sender with these addresses. `complete` says
 * the From: header is among them: without it (at RCPT TO) only a block rule on the
 * envelope sender refuses, since the From: header may still match an allow rule.
 */
export function senderVerdict(rules: SenderRuleLike[], addresses: SenderAddress[], complete: boolean): SenderVerdict {
  const known = addresses.filter((a) => a.address !== '');
  for (const { address, where } of known) {
    const rule = rules.find((r) => r.action === 'block' && matches(r, address));
    if (rule) return { refused: true, reason: `blocked by the rule ${rule.pattern} (${where} ${address})` };
  }
  if (!complete) return { refused: false };
  const allow = rules.filter((r) => r.action === 'allow');
  if (allow.length > 0 && !known.some(({ address }) => allow.some((r) => matches(r, address)))) {
    return { refused: true, reason: 'not on the allowlist' };
  }
  return { refused: false };
}
