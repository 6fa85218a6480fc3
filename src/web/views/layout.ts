/** The page frame shared by every HTML page: works on a phone and without JavaScript. */
import { html, type SafeHtml } from './html.js';

export function layout(title: string, body: SafeHtml, options: { robots?: boolean } = {}): string {
  return html`<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
${options.robots ? '' : html`<meta name="robots" content="noindex, nofollow">`}
<meta name="referrer" content="no-referrer">
<title>${title}</title>
<link rel="stylesheet" href="/static/style.css">
<script src="/static/copy.js" defer></script>
</head>
<body>
<a class="skip-link" href="#main">Skip to content</a>
<header class="site"><nav aria-label="feedmail"><a class="brand" href="/">feedmail</a></nav></header>
<main id="main" tabindex="-1">
${body}
</main>
<footer class="site"><p>feedmail turns newsletters into feeds. No account, no tracking: the links are the keys, keep them private.</p></footer>
</body>
</html>
`.value;
}

/**
 * A read-only field with a copy button: static/copy.js shows the button where the clipboard
 * can be used and says in the status line (read out by screen readers) that it copied; without
 * JavaScript the field is there to select and copy.
 */
export function copyField(label: string, value: string, id: string, buttonLabel = 'Copy'): SafeHtml {
  return html`<div class="copy">
<label for="${id}">${label}</label>
<div class="copy-row"><input id="${id}" type="text" readonly value="${value}"><button type="button" class="copy-button" data-copy="${id}" hidden>${buttonLabel}</button></div>
<p class="copy-status" id="${id}-status" role="status" aria-live="polite"></p>
</div>`;
}

/**
 * The notice above an entry (or a list of entries) that is a subscription confirmation.
 * `url` is the link as this page may show it (see presenters.ts shownConfirmUrl); `subject`
 * names the entry where the page lists several.
 */
export function confirmNotice(url: string, subject?: string): SafeHtml {
  const what = subject === undefined
    ? html`<strong>This looks like a subscription confirmation.</strong>`
    : html`<strong>Subscription to confirm:</strong> ${subject}.`;
  return html`<p class="notice">${what} <a href="${url}" target="_blank" rel="noopener noreferrer">Confirm the subscription</a></p>`;
}
