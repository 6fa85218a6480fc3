/**
 * The manage page's part about what mail the feed takes: its limits (and a notice while
 * it is at one), its sender rules with the forms to add and remove them, and its recent
 * deliveries with what became of each. POST /manage/<manage-secret>/sender-rules adds a
 * rule, POST /manage/<manage-secret>/sender-rules/remove removes one; like every POST
 * they are refused when a browser sends them from another site (web/server.ts).
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { MAX_SENDER_RULES, parseSenderPattern } from '../../mail/sender-rules.js';
import { SECRET_IN_PATH } from '../../secrets.js';
import type { Delivery } from '../../store/deliveries.js';
import type { Feed } from '../../store/feeds.js';
import type { SenderRule } from '../../store/sender-rules.js';
import { readFields, sendHtml, sendJson, wantsJson } from '../http.js';
import type { Route, WebDeps } from '../context.js';
import { html, type SafeHtml } from '../views/html.js';
import { layout } from '../views/layout.js';
import { backToManage, feedForManage, managePath, sizeText } from './manage-common.js';

/** `2026-01-31 14:05 UTC`: short enough for a phone, unambiguous everywhere. */
function timeText(ms: number): string {
  return `${new Date(ms).toISOString().slice(0, 16).replace('T', ' ')} UTC`;
}

export interface IntakeParts {
  /** Shown near the top of the page while the feed is at a limit; '' otherwise. */
  notice: SafeHtml | string;
  /** The limits, sender rules and recent deliveries sections. */
  sections: SafeHtml;
}

/** Everything the manage page shows of the feed's intake, read once. `token`: the manage secret, for the forms' actions. */
export async function intakeParts(deps: WebDeps, feed: Feed, token: string): Promise<IntakeParts> {
  const { app, queue } = deps.stores;
  const { feedMaxBytes, feedMessagesPerDay } = deps.config;
  const bytes = await app.feedBytes(feed.id);
  const recent = await queue.messagesInWindow(feed.id);
  const rules = await app.senderRulesOfFeed(feed.id);
  const deliveries = await queue.deliveriesOfFeed(feed.id);
  const uids = deliveries.flatMap((d) => (d.outcome === 'accepted' && d.journalUid && !d.job ? [d.journalUid] : []));
  const entries = new Map((await app.entriesOfJournalUids(feed.id, uids)).map((e) => [e.journal_uid, e.share_token]));
  const full = bytes >= feedMaxBytes;
  const busy = feedMessagesPerDay > 0 && recent.messages >= feedMessagesPerDay;
  const limitNotes: SafeHtml[] = [];
  if (full) {
    limitNotes.push(html`<strong>This feed is full:</strong> it holds ${sizeText(bytes)} and may hold ${sizeText(feedMaxBytes)}. New mail is deferred (senders are told to try again later, nothing is lost) until older entries are deleted or trimmed.`);
  }
  if (busy) {
    const until = recent.oldestHourAt === null ? null : recent.oldestHourAt + 24 * 3600_000;
    limitNotes.push(html`<strong>This feed took its ${feedMessagesPerDay} messages of the last 24 hours.</strong> New mail is deferred (senders are told to try again later, nothing is lost)${until ? ` until the oldest of them age out, from ${timeText(until)}` : ''}.`);
  }
  const notice = limitNotes.length === 0 ? '' : html`<section class="notice" id="at-limit">${limitNotes.map((n) => html`<p>${n}</p>`)}<p><a href="#deliveries">See the recent deliveries</a></p></section>`;
  return {
    notice,
    sections: html`
<h2 id="limits">Limits</h2>
<ul>
<li>${recent.messages} message${recent.messages === 1 ? '' : 's'} in the last 24 hours${feedMessagesPerDay > 0 ? ` of at most ${feedMessagesPerDay}` : ' (no limit)'}${busy ? ' (at the limit)' : ''}</li>
<li>${sizeText(bytes)} stored of at most ${sizeText(feedMaxBytes)}${full ? ' (full)' : ''}</li>
</ul>
<p class="hint">Past a limit, senders get a temporary refusal (SMTP 452) and send again later: mail accepted once is never dropped.</p>
${rulesSection(rules, token)}
${deliveriesSection(deliveries, entries, deps)}`,
  };
}

function ruleList(rules: SenderRule[], token: string, none: string): SafeHtml {
  if (rules.length === 0) return html`<p class="meta">${none}</p>`;
  return html`<ul class="entries rules">
${rules.map((r) => html`<li><form method="post" action="${managePath(token, '/sender-rules/remove')}" class="rule">
<input type="hidden" name="id" value="${r.id}"><code>${r.pattern}</code> <span class="meta">${r.pattern.includes('@') ? 'address' : 'domain and subdomains'}</span>
<button type="submit" class="secondary">Remove</button>
</form></li>`)}
</ul>`;
}

function rulesSection(rules: SenderRule[], token: string): SafeHtml {
  const blocks = rules.filter((r) => r.action === 'block');
  const allows = rules.filter((r) => r.action === 'allow');
  return html`<h2 id="senders">Senders</h2>
<p class="hint">Rules match an address (news@example.com) or a domain (example.com, with its subdomains such as mail.example.com), on the envelope sender and on the From: header. Blocked mail is refused with a permanent error (SMTP 550) and never stored. While there is an allow rule, only senders matching one get through. A block rule wins over an allow rule.</p>
<h3>Blocked</h3>
${ruleList(blocks, token, 'No sender is blocked.')}
<h3>Allowed</h3>
${ruleList(allows, token, 'No allowlist: every sender that is not blocked gets through.')}
<form class="create" method="post" action="${managePath(token, '/sender-rules')}">
<select name="action" aria-label="Block or allow"><option value="block">Block</option><option value="allow">Allow only</option></select>
<input type="text" name="pattern" maxlength="254" required placeholder="news@example.com or example.com" aria-label="Address or domain">
<button type="submit" class="secondary">Add rule</button>
</form>`;
}

/** What became of a delivery, as its owner reads it. */
function outcomeOf(d: Delivery, entries: Map<string, string>, deps: WebDeps): SafeHtml {
  const repeated = d.count > 1 ? ` (${d.count} times, the last at ${timeText(d.at)})` : '';
  if (d.outcome === 'blocked') return html`<strong>Blocked</strong>: ${d.detail}${repeated}. Refused for good, not stored.`;
  if (d.outcome === 'over_limit') return html`<strong>Deferred</strong>: ${d.detail}${repeated}. The sender was told to try again later.`;
  if (d.job?.state === 'failed') {
    return html`<strong>Failed to process</strong> after ${d.job.attempts} attempt${d.job.attempts === 1 ? '' : 's'}: ${d.job.lastError.slice(0, 300) || '(no error recorded)'}. <span class="meta">Job ${d.job.id}: whoever runs this feedmail can run it again with <code>feedmail jobs retry ${d.job.id}</code>.</span>`;
  }
  if (d.job) return html`<strong>Accepted</strong>, not processed yet${d.job.attempts > 0 ? ` (${d.job.attempts} attempt${d.job.attempts === 1 ? '' : 's'} so far)` : ''}.`;
  const share = d.journalUid ? entries.get(d.journalUid) : undefined;
  if (share) return html`<strong>Stored</strong>. <a href="${deps.urls.entry(share)}">Open the entry</a>`;
  return html`<strong>Stored</strong>, no longer in the feed (deleted or trimmed since).`;
}

function deliveriesSection(deliveries: Delivery[], entries: Map<string, string>, deps: WebDeps): SafeHtml {
  return html`<h2 id="deliveries">Recent deliveries</h2>
<p class="hint">The last ${deliveries.length === 0 ? '' : `${deliveries.length} `}messages sent to this feed, newest first, and what became of them. Mail refused before its text was sent has no subject or size.</p>
${deliveries.length === 0 ? html`<p class="meta">Nothing received yet.</p>` : html`<ul class="entries deliveries">
${deliveries.map((d) => html`<li class="${d.outcome}">
<span class="subject">${d.subject === null ? html`<span class="meta">(no subject: refused before the message was sent)</span>` : d.subject || '(no subject)'}</span>
<span class="meta">${timeText(d.at)} · from ${d.sender || '(no sender)'}${d.size === null ? '' : ` · ${sizeText(d.size)}`}</span><br>
${outcomeOf(d, entries, deps)}
</li>`)}
</ul>`}`;
}

/** A form that cannot be done: a page that says why and leads back, or JSON for scripts. */
function refuse(req: IncomingMessage, res: ServerResponse, token: string, message: string): void {
  if (wantsJson(req)) return sendJson(res, 400, { error: { code: 'bad_request', message } });
  sendHtml(res, 400, layout('Not changed', html`<h1>Not changed</h1><p>${message}</p><p><a href="${managePath(token, '#senders')}">Back</a></p>`));
}


export const manageAddSenderRuleRoute: Route = {
  method: 'POST',
  path: new RegExp(String.raw`^/manage/${SECRET_IN_PATH}/sender-rules$`, 'i'),
  handler: async ({ req, res, params, deps }) => {
    const token = params[0]!;
    const feed = await feedForManage(deps, token);
    const fields = await readFields(req);
    const action = fields.action === 'block' || fields.action === 'allow' ? fields.action : null;
    if (!action) return refuse(req, res, token, 'Choose whether to block or allow the sender.');
    const parsed = parseSenderPattern(fields.pattern ?? '');
    if ('problem' in parsed) return refuse(req, res, token, parsed.problem);
    const result = await deps.stores.app.addSenderRule(feed.id, action, parsed.pattern, MAX_SENDER_RULES);
    if (result === 'too_many') return refuse(req, res, token, `A feed can have at most ${MAX_SENDER_RULES} sender rules; remove some first.`);
    if (result === 'added') deps.log.info({ feedId: feed.id, action }, 'web: sender rule added');
    if (wantsJson(req)) return sendJson(res, result === 'added' ? 201 : 200, { action, pattern: parsed.pattern, added: result === 'added' });
    backToManage(res, token, '', '#senders');
  },
};

export const manageRemoveSenderRuleRoute: Route = {
  method: 'POST',
  path: new RegExp(String.raw`^/manage/${SECRET_IN_PATH}/sender-rules/remove$`, 'i'),
  handler: async ({ req, res, params, deps }) => {
    const token = params[0]!;
    const feed = await feedForManage(deps, token);
    const fields = await readFields(req);
    const id = /^\d{1,15}$/.test(fields.id ?? '') ? Number(fields.id) : null;
    if (id === null) return refuse(req, res, token, 'No rule was named.');
    // Only this feed's rule: an id of another feed's removes nothing.
    const removed = await deps.stores.app.removeSenderRule(feed.id, id);
    if (removed) deps.log.info({ feedId: feed.id }, 'web: sender rule removed');
    if (wantsJson(req)) return sendJson(res, 200, { removed });
    backToManage(res, token, '', '#senders');
  },
};
