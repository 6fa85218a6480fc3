/**
 * Removes a feed's own secrets from mail before anyone else sees it. Senders
 * routinely echo the recipient address (greetings, footers, unsubscribe links),
 * and that address is the secret that lets anyone post into the feed.
 */
export interface FeedSecrets {
  inboxToken: string;
  feedToken: string;
  domains: string[];
}

export const REDACTED = 'redacted';

function escapeRegExp(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

/** Every form in which the secrets commonly appear: plain, any case, and base64-encoded addresses. */
function patterns(secrets: FeedSecrets): RegExp[] {
  const forms = new Set<string>();
  for (const domain of secrets.domains) {
    const address = `${secrets.inboxToken}@${domain}`;
    for (const variant of [address, address.toUpperCase()]) {
      const b64 = Buffer.from(variant).toString('base64');
      forms.add(b64);
      forms.add(b64.replace(/=+$/, ''));
      forms.add(b64.replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, ''));
    }
  }
  const list = [...forms].filter((f) => f.length >= 8).map((f) => new RegExp(escapeRegExp(f), 'g'));
  // The tokens themselves, in any case: this also covers percent-encoded and quoted-printable copies.
  list.push(new RegExp(escapeRegExp(secrets.inboxToken), 'gi'));
  list.push(new RegExp(escapeRegExp(secrets.feedToken), 'gi'));
  return list;
}

export function redactor(secrets: FeedSecrets): (s: string) => string {
  const list = patterns(secrets);
  return (s: string) => list.reduce((acc, re) => acc.replace(re, REDACTED), s);
}
