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

/** Returns the confirm URL of a subscription confirmation, or null for any other mail. */
export function findConfirmUrl(subject: string, sanitizedHtml: string, text: string): string | null {
  const haystack = `${subject}\n${text.slice(0, 4000)}`;
  if (!CONFIRM_WORDS.test(haystack) || !SUBSCRIPTION_WORDS.test(haystack)) return null;
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
