/**
 * Spots subscription confirmations ("please confirm your subscription") and
 * finds the link that confirms, so it can be shown at the top of the entry.
 */
const CONFIRM_WORDS = /\b(confirm|verify|validate|activate|double[- ]opt[- ]?in|opt[- ]?in|best[äa]tigen|confirmer|confirmar|conferma)/i;
const SUBSCRIPTION_WORDS = /\b(subscri|newsletter|sign[- ]?up|e-?mail address|mailing list|list|abonn|suscrip|iscrizion)/i;
const LINK = /<a\b[^>]*\bhref="([^"]+)"[^>]*>([\s\S]*?)<\/a>/gi;

function decodeEntities(s: string): string {
  return s.replace(/&amp;/g, '&').replace(/&quot;/g, '"').replace(/&#39;/g, "'").replace(/&lt;/g, '<').replace(/&gt;/g, '>');
}

/**
 * A confirmation asks to confirm a subscription in one breath ("please confirm your
 * subscription", "verify your email address"). Requiring both kinds of word in the same
 * sentence keeps ordinary newsletters out: they mention "newsletter" in the footer and
 * "verify" or "activate" in some story, but not together.
 */
function asksToConfirm(subject: string, text: string): boolean {
  const sentences = `${subject}\n${text.slice(0, 4000)}`.split(/[.!?\n]+/);
  return sentences.some((s) => CONFIRM_WORDS.test(s) && SUBSCRIPTION_WORDS.test(s));
}

/** Returns the confirm URL of a subscription confirmation, or null for any other mail. */
export function findConfirmUrl(subject: string, sanitizedHtml: string, text: string): string | null {
  // HTML-only mail may come without a text version; its words are then read from the HTML.
  const words = text.trim() ? text : decodeEntities(sanitizedHtml.replace(/<style[\s\S]*?<\/style>|<[^>]*>/g, ' '));
  if (!asksToConfirm(subject, words)) return null;
  const candidates: { url: string; score: number }[] = [];
  for (const m of sanitizedHtml.matchAll(LINK)) {
    const url = decodeEntities(m[1] ?? '');
    if (!/^https?:\/\//i.test(url)) continue;
    const label = (m[2] ?? '').replace(/<[^>]*>/g, ' ');
    let score = 0;
    if (CONFIRM_WORDS.test(label)) score += 2;
    if (/confirm|verify|activate|optin|opt-in|validate/i.test(url)) score += 1;
    if (/unsubscribe|abmelden|desinscri/i.test(label + url)) score -= 5;
    if (score > 0) candidates.push({ url, score });
  }
  if (candidates.length === 0 && sanitizedHtml === '') {
    const plain = /https?:\/\/\S*(confirm|verify|activate|optin|opt-in)\S*/i.exec(text);
    return plain ? plain[0] : null;
  }
  candidates.sort((a, b) => b.score - a.score);
  return candidates[0]?.url ?? null;
}
