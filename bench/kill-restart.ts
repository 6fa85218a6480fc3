/**
 * Kill -9 benchmark: proves "journal, then acknowledge" against the real server.
 *
 * Starts `feedmail serve` as a child process, sends N uniquely numbered messages
 * over several SMTP connections while SIGKILLing the server K times at random
 * moments (restarting it each time), then lets the queue drain and checks that
 * every message acknowledged with 250 became exactly one entry, that nothing
 * appears twice, and that no job is left claimed or failed.
 *
 *   node --import tsx bench/kill-restart.ts --messages 5000 --kills 5 --connections 8
 */
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import nodemailer from 'nodemailer';
import { openStores } from '../src/store/index.js';
import { freePort } from '../test/support/helpers.js';
import { prng } from '../test/support/mutate.js';

const REPO = fileURLToPath(new URL('..', import.meta.url));

export interface KillRestartOptions {
  messages: number;
  kills: number;
  connections: number;
  /** Feeds the messages are spread over (message n goes to feed n % feeds); default keeps each under 1000 entries. */
  feeds?: number;
  /** Attempts per message before the sender gives up on it. */
  attempts?: number;
  /** Seed of the random kill moments, for reproducible runs. */
  seed?: number;
  /** Data directory (default: a new temporary directory, deleted afterwards unless keepData). */
  dataDir?: string;
  keepData?: boolean;
  /** Progress lines go here (default: stderr). */
  log?: (line: string) => void;
  /** Longest wait for the queue to drain after the last restart. */
  drainTimeoutMs?: number;
}

export interface KillRestartResult {
  sent: number;
  attempts: number;
  acknowledged: number;
  /** Messages refused for good (5xx): should be none. */
  rejected: number;
  /** Messages the sender gave up on after all attempts failed temporarily. */
  gaveUp: number;
  kills: number;
  /** Entries in app.db that carry one of our subjects. */
  entries: number;
  /** Distinct subjects with at least one entry. */
  found: number;
  /** Subjects with more than one entry. */
  duplicates: number;
  /**
   * Of the duplicates, extra entries that come from a second journal row whose
   * SMTP transaction the client never saw acknowledged (the server committed,
   * then died before "250" reached the client, and the client sent again).
   */
  resendDuplicates: number;
  /** Acknowledged subjects with no entry for the journal row named in their 250. */
  missingAcknowledged: number;
  /** Not acknowledged and not stored: allowed. */
  missingUnacknowledged: number;
  /** Unacknowledged attempts that were nevertheless stored (journaled before the kill). */
  storedUnacknowledged: number;
  /** Subjects whose count in the JSON feeds differs from app.db. */
  feedMismatches: number;
  leftoverJobs: { ready: number; claimed: number; failed: number };
  /** Server error-level log lines seen on stderr (diagnostics, not violations). */
  serverErrors: number;
  /**
   * Journal commits the servers reported in /metrics while sending (sampled, summed over
   * the server's lives), and the messages they held: more messages than commits means
   * concurrent messages shared commits (group commit).
   */
  journalCommits: number;
  journalMessages: number;
  elapsedMs: number;
  /** Everything that breaks a promise; empty means the run passed. */
  violations: string[];
  /** Violations that are duplicates from re-sent, unacknowledged transactions (see resendDuplicates). */
  resendViolations: string[];
  dataDir: string;
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));


interface ServerEnv {
  dataDir: string;
  httpPort: number;
  smtpPort: number;
  extra?: Record<string, string>;
}

/** The real server, `node --import tsx src/cli.ts serve`, as a child process that can be killed and restarted. */
export class ServerProcess {
  #child: ChildProcess | null = null;
  #exit: Promise<number | null> = Promise.resolve(null);
  #expectExit = false;
  readonly base: string;
  /** Unexpected exits (crashes), with the tail of stderr. */
  readonly crashes: string[] = [];
  errorLines = 0;
  readonly errorSamples: string[] = [];
  #stderrTail = '';

  constructor(private readonly env: ServerEnv) {
    this.base = `http://127.0.0.1:${env.httpPort}`;
  }

  get running(): boolean {
    return this.#child !== null;
  }

  /** Starts the server and resolves once /healthz answers. */
  async start(timeoutMs = 60_000): Promise<void> {
    if (this.#child) throw new Error('server already running');
    const child = spawn(process.execPath, ['--import', 'tsx', 'src/cli.ts', 'serve'], {
      cwd: REPO,
      env: {
        ...process.env,
        FEEDMAIL_DATA_DIR: this.env.dataDir,
        FEEDMAIL_HTTP_PORT: String(this.env.httpPort),
        FEEDMAIL_SMTP_PORT: String(this.env.smtpPort),
        FEEDMAIL_ALLOW_UNSAFE_STORAGE: 'true',
        FEEDMAIL_MIN_FREE_BYTES: '0',
        FEEDMAIL_LOG_LEVEL: 'warn',
        ...this.env.extra,
      },
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    this.#child = child;
    this.#expectExit = false;
    let lineBuf = '';
    child.stderr!.setEncoding('utf8');
    child.stderr!.on('data', (chunk: string) => {
      this.#stderrTail = (this.#stderrTail + chunk).slice(-4000);
      lineBuf += chunk;
      let i;
      while ((i = lineBuf.indexOf('\n')) >= 0) {
        const line = lineBuf.slice(0, i);
        lineBuf = lineBuf.slice(i + 1);
        // pino level 50 is error, 60 fatal.
        if (/"level":(50|60)/.test(line)) {
          this.errorLines++;
          if (this.errorSamples.length < 5) this.errorSamples.push(line.slice(0, 600));
        }
      }
    });
    this.#exit = new Promise((resolve) => {
      child.once('exit', (code, signal) => {
        if (!this.#expectExit) this.crashes.push(`server exited on its own (code ${code}, signal ${signal}); stderr tail:\n${this.#stderrTail}`);
        if (this.#child === child) this.#child = null;
        resolve(code);
      });
    });
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      if (this.#child !== child) throw new Error(`server exited during startup:\n${this.#stderrTail}`);
      try {
        const res = await fetch(`${this.base}/healthz`);
        if (res.status === 200) return;
      } catch {
        // not listening yet
      }
      if (Date.now() > deadline) throw new Error(`server did not answer /healthz within ${timeoutMs} ms:\n${this.#stderrTail}`);
      await sleep(50);
    }
  }

  /** SIGKILL, then wait until the process is gone. */
  async kill9(): Promise<void> {
    const child = this.#child;
    if (!child) return;
    this.#expectExit = true;
    child.kill('SIGKILL');
    await this.#exit;
  }

  /** SIGTERM (graceful drain); resolves with the exit code. */
  async stop(): Promise<number | null> {
    const child = this.#child;
    if (!child) return null;
    this.#expectExit = true;
    child.kill('SIGTERM');
    return this.#exit;
  }

  async metrics(): Promise<Map<string, number>> {
    const res = await fetch(`${this.base}/metrics`);
    const text = await res.text();
    const m = new Map<string, number>();
    for (const line of text.split('\n')) {
      if (!line || line.startsWith('#')) continue;
      const sp = line.lastIndexOf(' ');
      m.set(line.slice(0, sp), Number(line.slice(sp + 1)));
    }
    return m;
  }
}

interface CreatedFeed {
  address: string;
  feeds: { json: string };
}

async function createFeed(base: string, title: string): Promise<CreatedFeed> {
  const res = await fetch(`${base}/feeds`, {
    method: 'POST',
    headers: { Accept: 'application/json', 'Content-Type': 'application/json' },
    body: JSON.stringify({ title }),
  });
  if (res.status !== 201) throw new Error(`POST /feeds answered ${res.status}: ${await res.text()}`);
  return (await res.json()) as CreatedFeed;
}

/** A small newsletter with a unique Subject and Message-ID; identical bytes on every attempt, like an MTA's queue. */
function message(n: number, to: string): string {
  return [
    'From: "Bench Sender" <bench@example.com>',
    `To: ${to}`,
    `Subject: msg-${n}`,
    'Date: Tue, 24 Nov 2026 10:00:00 +0000',
    `Message-ID: <msg-${n}@bench.example>`,
    'MIME-Version: 1.0',
    'Content-Type: text/html; charset=utf-8',
    '',
    `<h1>Issue ${n}</h1><p>Body of message number ${n}. <a href="https://example.com/${n}">read</a></p>`,
    '',
  ].join('\r\n');
}

type SendError = Error & { responseCode?: number; code?: string };

interface MessageState {
  attempts: number;
  /** Journal id from "250 ... queued as <id>". */
  ackedJournalId: number | null;
  rejected: boolean;
  gaveUp: boolean;
}

/** Runs the whole scenario and returns the counts; never throws for a violation, only for a broken harness. */
export async function runKillRestart(opts: KillRestartOptions): Promise<KillRestartResult> {
  const started = Date.now();
  const log = opts.log ?? ((line: string) => process.stderr.write(`${line}\n`));
  const N = opts.messages;
  const K = opts.kills;
  const C = Math.max(1, opts.connections);
  const F = Math.max(1, opts.feeds ?? Math.ceil(N / 900));
  const maxAttempts = opts.attempts ?? 8;
  const random = prng(opts.seed ?? Date.now());
  const dataDir = opts.dataDir ?? fs.mkdtempSync(path.join(os.tmpdir(), 'feedmail-kill-'));
  const [httpPort, smtpPort] = [await freePort(), await freePort()];
  const server = new ServerProcess({
    dataDir, httpPort, smtpPort,
    extra: {
      FEEDMAIL_FEED_MAX_ENTRIES: '1000',
      FEEDMAIL_FEED_KEEP_ENTRIES: '100000',
      // Hundreds of messages per feed in minutes: the messages-per-day limit is not what this measures.
      FEEDMAIL_FEED_MESSAGES_PER_DAY: '0',
      FEEDMAIL_SMTP_MAX_CLIENTS_PER_ADDRESS: String(C * 4 + 10),
    },
  });
  const violations: string[] = [];
  const resendViolations: string[] = [];
  const states: MessageState[] = Array.from({ length: N }, () => ({ attempts: 0, ackedJournalId: null, rejected: false, gaveUp: false }));
  let kills = 0;
  let acked = 0;
  let attemptsTotal = 0;
  let next = 0;

  try {
    log(`kill-restart: ${N} messages, ${K} kills, ${C} connections, ${F} feed(s), data in ${dataDir}`);
    await server.start();
    const feeds: CreatedFeed[] = [];
    for (let i = 0; i < F; i++) feeds.push(await createFeed(server.base, `bench ${i}`));

    // The server is "up" when this promise has resolved; a restart replaces it.
    let up: Promise<void> = Promise.resolve();
    // Kills run one after another: a kill point reached while the server is still restarting
    // from the previous kill is queued behind it, never merged into it, so a run makes all K.
    let restarting: Promise<void> | null = null;
    let killsPending = 0;
    const killPoints = Array.from({ length: K }, () => Math.floor(random() * N * 0.9) + 1).sort((a, b) => a - b);
    const killAndRestart = (): Promise<void> => {
      const cycle = (restarting ?? Promise.resolve()).then(async () => {
        let resolveUp!: () => void;
        up = new Promise((r) => { resolveUp = r; });
        await server.kill9();
        kills++;
        log(`  kill -9 #${kills} after ${acked} acknowledged (${((Date.now() - started) / 1000).toFixed(1)} s)`);
        await sleep(Math.floor(random() * 200));
        const t = Date.now();
        await server.start();
        life++;
        log(`  restarted in ${Date.now() - t} ms`);
        resolveUp();
      });
      restarting = cycle;
      // Failures surface through the caller's promise; this chain only clears the marker.
      cycle.finally(() => {
        if (restarting === cycle) restarting = null;
      }).catch(() => undefined);
      return cycle;
    };
    const maybeKill = () => {
      if (killPoints.length > 0 && acked >= killPoints[0]!) {
        killPoints.shift();
        killsPending++;
        // A random delay so the kill lands at any point of the next transactions and jobs.
        setTimeout(() => void killAndRestart().finally(() => { killsPending--; }), Math.floor(random() * 40));
      }
    };

    // The servers' journal commit counters, sampled while sending: each life of the server
    // (a restart starts them at 0) keeps the largest reading seen.
    let life = 0;
    const journalByLife = new Map<number, { commits: number; messages: number }>();
    const sampleJournal = async () => {
      if (restarting) return;
      const at = life;
      const m = await server.metrics().catch(() => undefined);
      if (!m || restarting || at !== life) return;
      const seen = journalByLife.get(at) ?? { commits: 0, messages: 0 };
      journalByLife.set(at, {
        commits: Math.max(seen.commits, m.get('feedmail_journal_commits_total') ?? 0),
        messages: Math.max(seen.messages, m.get('feedmail_journal_messages_total') ?? 0),
      });
    };
    const sampler = setInterval(() => void sampleJournal(), 250);

    const progress = setInterval(() => {
      log(`  progress: ${Math.min(next, N)}/${N} started, ${acked} acknowledged, ${attemptsTotal} attempts, ${kills}/${K} kills, ${((Date.now() - started) / 1000).toFixed(1)} s`);
    }, 2000);

    const newTransport = () => nodemailer.createTransport({
      host: '127.0.0.1', port: smtpPort, secure: false, ignoreTLS: true,
      pool: true, maxConnections: 1, maxMessages: Infinity,
      connectionTimeout: 5000, greetingTimeout: 5000, socketTimeout: 15_000,
    });

    const sender = async () => {
      let transport = newTransport();
      try {
        for (;;) {
          const n = next++;
          if (n >= N) return;
          const feed = feeds[n % F]!;
          const raw = message(n, feed.address);
          const st = states[n]!;
          while (st.ackedJournalId === null && !st.rejected && !st.gaveUp) {
            await up;
            st.attempts++;
            attemptsTotal++;
            try {
              const info = await transport.sendMail({ envelope: { from: 'bench@example.com', to: feed.address }, raw });
              const m = /queued as (\d+)/.exec(info.response);
              if (!/^250[ -]/.test(info.response) || !m) throw new Error(`unexpected reply: ${info.response}`);
              st.ackedJournalId = Number(m[1]);
              acked++;
              maybeKill();
            } catch (err) {
              const e = err as SendError;
              if (e.responseCode !== undefined && e.responseCode >= 500) {
                st.rejected = true;
                violations.push(`msg-${n} refused for good: ${e.message}`);
                break;
              }
              // Connection refused/reset, timeout or 4xx: the sender retries, as an MTA would.
              transport.close();
              transport = newTransport();
              if (st.attempts >= maxAttempts) {
                st.gaveUp = true;
                log(`  msg-${n}: giving up after ${st.attempts} attempts: ${e.message}`);
                break;
              }
              if (!restarting) await sleep(100 + Math.floor(random() * 200));
            }
          }
        }
      } finally {
        transport.close();
      }
    };
    await Promise.all(Array.from({ length: C }, sender));
    // Kills scheduled by the last acknowledgements may still be waiting or running.
    while (killsPending > 0 || restarting) await (restarting ?? sleep(10));
    clearInterval(progress);
    clearInterval(sampler);
    await sampleJournal();
    log(`  all sends done: ${acked}/${N} acknowledged in ${attemptsTotal} attempts, ${kills} kills (${((Date.now() - started) / 1000).toFixed(1)} s)`);

    // One more restart, then let the queue drain (jobs held by a killed process wait for their lease to run out).
    await server.stop();
    await server.start();
    const drainDeadline = Date.now() + (opts.drainTimeoutMs ?? 900_000);
    let quiet = 0;
    let lastLog = 0;
    for (;;) {
      const m = await server.metrics();
      const ready = m.get('feedmail_jobs{state="ready"}') ?? NaN;
      const claimed = m.get('feedmail_jobs{state="claimed"}') ?? NaN;
      quiet = ready === 0 && claimed === 0 ? quiet + 1 : 0;
      if (quiet >= 3) break;
      if (Date.now() - lastLog > 2000) {
        log(`  draining: ${ready} ready, ${claimed} claimed`);
        lastLog = Date.now();
      }
      if (Date.now() > drainDeadline) {
        violations.push(`queue did not drain: ${ready} ready, ${claimed} claimed after the final restart`);
        break;
      }
      await sleep(200);
    }
    log(`  queue drained (${((Date.now() - started) / 1000).toFixed(1)} s)`);

    // What a feed reader sees.
    const feedCounts = new Map<string, number>();
    let feedReadable = true;
    for (const feed of feeds) {
      const res = await fetch(feed.feeds.json);
      if (res.status !== 200) {
        violations.push(`${feed.feeds.json} answered ${res.status}`);
        continue;
      }
      const doc = (await res.json()) as { items: { title: string }[] };
      if (doc.items.length >= 1000) feedReadable = false; // capped: compare only against app.db
      for (const item of doc.items) feedCounts.set(item.title, (feedCounts.get(item.title) ?? 0) + 1);
    }
    const exitCode = await server.stop();
    if (exitCode !== 0) violations.push(`graceful stop exited with code ${exitCode}`);

    // What the databases hold.
    const stores = openStores(dataDir, { readOnly: true });
    const entryRows: { subject: string; journalUid: string }[] = [];
    for (let page = await stores.app.entriesAfter(0, 500); page.length; page = await stores.app.entriesAfter(page.at(-1)!.id, 500)) {
      for (const e of page) entryRows.push({ subject: e.subject, journalUid: e.journal_uid });
    }
    const journal: { id: number; uid: string }[] = [];
    for (let page = await stores.queue.journalAfter(0, 1000); page.length; page = await stores.queue.journalAfter(page.at(-1)!.id, 1000)) journal.push(...page);
    const journalRows = new Set(journal.map((r) => r.id));
    // Entries remember their journal row by uid; the 250 reply names its id.
    const idByUid = new Map(journal.map((r) => [r.uid, r.id]));
    const entries = entryRows.map((e) => ({ subject: e.subject, journalId: idByUid.get(e.journalUid) ?? -1 }));
    const failedSample = (await stores.queue.jobsInState('failed', 3)).map((j) => ({ id: j.id, task: j.task, attempts: j.attempts, err: j.last_error?.slice(0, 300) }));
    const { ready, claimed, failed } = await stores.queue.queueStats();
    const leftoverJobs = { ready, claimed, failed };
    await stores.close();
    if (leftoverJobs.claimed > 0) violations.push(`${leftoverJobs.claimed} job(s) left claimed`);
    if (leftoverJobs.failed > 0) violations.push(`${leftoverJobs.failed} job(s) failed: ${JSON.stringify(failedSample)}`);
    if (leftoverJobs.ready > 0) violations.push(`${leftoverJobs.ready} job(s) still ready (retrying?) after the drain`);

    const bySubject = new Map<string, number[]>();
    for (const e of entries) {
      const list = bySubject.get(e.subject) ?? [];
      list.push(e.journalId);
      bySubject.set(e.subject, list);
    }
    let found = 0;
    let duplicates = 0;
    let resendDuplicates = 0;
    let missingAcknowledged = 0;
    let missingUnacknowledged = 0;
    let storedUnacknowledged = 0;
    let feedMismatches = 0;
    for (let n = 0; n < N; n++) {
      const subject = `msg-${n}`;
      const st = states[n]!;
      const journalIds = bySubject.get(subject) ?? [];
      bySubject.delete(subject);
      if (journalIds.length > 0) found++;
      if (st.ackedJournalId !== null && journalIds.length === 0) {
        missingAcknowledged++;
        violations.push(`${subject} was acknowledged as journal row ${st.ackedJournalId} but has no entry`);
      }
      if (st.ackedJournalId !== null && !journalRows.has(st.ackedJournalId)) {
        violations.push(`${subject} was acknowledged as journal row ${st.ackedJournalId}, which is not in queue.db`);
      }
      if (st.ackedJournalId === null && journalIds.length === 0) missingUnacknowledged++;
      if (st.ackedJournalId === null && journalIds.length > 0) storedUnacknowledged++;
      if (new Set(journalIds).size !== journalIds.length) {
        violations.push(`${subject} has two entries for the same journal row: [${journalIds.join(', ')}]`);
      }
      if (journalIds.length > 1) {
        duplicates++;
        // Every journal row of one subject holds the same bytes: the extra rows are re-sent transactions.
        resendDuplicates += journalIds.length - 1;
        resendViolations.push(`${subject} appears ${journalIds.length} times (journal rows [${journalIds.join(', ')}], acknowledged: ${st.ackedJournalId ?? 'none'}, ${st.attempts} attempts)`);
      }
      if (feedReadable && (feedCounts.get(subject) ?? 0) !== journalIds.length) {
        feedMismatches++;
        violations.push(`${subject}: ${feedCounts.get(subject) ?? 0} item(s) in the JSON feed, ${journalIds.length} entr(ies) in app.db`);
      }
    }
    for (const [subject, ids] of bySubject) violations.push(`unexpected entry "${subject}" (journal rows [${ids.join(', ')}])`);
    violations.push(...server.crashes);

    const result: KillRestartResult = {
      sent: N,
      attempts: attemptsTotal,
      acknowledged: acked,
      rejected: states.filter((s) => s.rejected).length,
      gaveUp: states.filter((s) => s.gaveUp).length,
      kills,
      entries: entries.length,
      found,
      duplicates,
      resendDuplicates,
      missingAcknowledged,
      missingUnacknowledged,
      storedUnacknowledged,
      feedMismatches,
      leftoverJobs,
      journalCommits: [...journalByLife.values()].reduce((sum, j) => sum + j.commits, 0),
      journalMessages: [...journalByLife.values()].reduce((sum, j) => sum + j.messages, 0),
      serverErrors: server.errorLines,
      elapsedMs: Date.now() - started,
      violations,
      resendViolations,
      dataDir,
    };
    if (server.errorSamples.length) log(`  server error lines (first ${server.errorSamples.length}):\n    ${server.errorSamples.join('\n    ')}`);
    return result;
  } finally {
    if (server.running) await server.kill9();
    if (!opts.dataDir && !opts.keepData) fs.rmSync(dataDir, { recursive: true, force: true });
  }
}

/** The final summary, one count per line. */
export function formatSummary(r: KillRestartResult): string {
  const lines = [
    'summary',
    `  sent                     ${r.sent}`,
    `  SMTP attempts            ${r.attempts}`,
    `  acknowledged (250)       ${r.acknowledged}`,
    `  refused (5xx)            ${r.rejected}`,
    `  given up (4xx/conn)      ${r.gaveUp}`,
    `  kill -9                  ${r.kills}`,
    `  entries in app.db        ${r.entries}`,
    `  found (distinct)         ${r.found}`,
    `  duplicates (subjects)    ${r.duplicates}`,
    `    from re-sent unacked   ${r.resendDuplicates}`,
    `  missing acknowledged     ${r.missingAcknowledged}`,
    `  missing unacknowledged   ${r.missingUnacknowledged}`,
    `  stored unacknowledged    ${r.storedUnacknowledged}`,
    `  JSON feed mismatches     ${r.feedMismatches}`,
    `  leftover jobs            ready ${r.leftoverJobs.ready}, claimed ${r.leftoverJobs.claimed}, failed ${r.leftoverJobs.failed}`,
    `  server error log lines   ${r.serverErrors}`,
    `  journal commits (seen)   ${r.journalCommits} for ${r.journalMessages} messages`,
    `  elapsed                  ${(r.elapsedMs / 1000).toFixed(1)} s`,
  ];
  const all = [...r.violations, ...r.resendViolations];
  lines.push(all.length === 0 ? 'result: PASS (no violation)' : `result: FAIL (${all.length} violation(s))`);
  for (const v of all.slice(0, 50)) lines.push(`  violation: ${v}`);
  if (all.length > 50) lines.push(`  … ${all.length - 50} more`);
  return lines.join('\n');
}

const HELP = `Usage: node --import tsx bench/kill-restart.ts [options]

Starts the real feedmail server (node --import tsx src/cli.ts serve) as a child
process, sends numbered messages over several SMTP connections, SIGKILLs and
restarts the server at random moments, then drains the queue and checks that
every message acknowledged with 250 became exactly one feed entry, that no
message appears twice and that no job is left claimed or failed.
Exits 1 on any violation.

Options:
  --messages N      messages to send (default 5000)
  --kills K         kill -9 / restart cycles while sending (default 5)
  --connections C   concurrent SMTP connections (default 8)
  --feeds F         feeds to spread the messages over (default: one per 900 messages)
  --attempts A      attempts per message before the sender gives up (default 8)
  --seed S          seed of the random kill moments (default: the clock)
  --data-dir DIR    keep the data in DIR instead of a temporary directory
  --help            show this help
`;

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      messages: { type: 'string', default: '5000' },
      kills: { type: 'string', default: '5' },
      connections: { type: 'string', default: '8' },
      feeds: { type: 'string' },
      attempts: { type: 'string' },
      seed: { type: 'string' },
      'data-dir': { type: 'string' },
      help: { type: 'boolean', default: false },
    },
  });
  if (values.help) {
    process.stdout.write(HELP);
    return;
  }
  const int = (name: string, raw: string | undefined, min: number): number | undefined => {
    if (raw === undefined) return undefined;
    const v = Number(raw);
    if (!Number.isInteger(v) || v < min) {
      process.stderr.write(`kill-restart: --${name} must be an integer >= ${min}, got "${raw}"\n`);
      process.exit(2);
    }
    return v;
  };
  const seed = int('seed', values.seed, 0) ?? Date.now() % 2 ** 31;
  const opts: KillRestartOptions = {
    messages: int('messages', values.messages, 1)!,
    kills: int('kills', values.kills, 0)!,
    connections: int('connections', values.connections, 1)!,
    feeds: int('feeds', values.feeds, 1),
    attempts: int('attempts', values.attempts, 1),
    seed,
    dataDir: values['data-dir'],
    log: (line) => process.stdout.write(`${line}\n`),
  };
  process.stdout.write(`kill-restart ${new Date().toISOString()} node ${process.version}, ${os.cpus().length} CPU(s), seed ${seed}\n`);
  const result = await runKillRestart(opts);
  process.stdout.write(`${formatSummary(result)}\n`);
  if (result.violations.length + result.resendViolations.length > 0) process.exitCode = 1;
}

const invokedDirectly = process.argv[1] !== undefined && fs.realpathSync(process.argv[1]) === fileURLToPath(import.meta.url);
if (invokedDirectly) {
  main().catch((err: unknown) => {
    process.stderr.write(`kill-restart: ${(err as Error)?.stack ?? String(err)}\n`);
    process.exit(1);
  });
}
