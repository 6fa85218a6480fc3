/**
 * Live updates (issue 11): how long after the SMTP "250" an open event stream hears of the
 * new entry, (a) when one process does everything, and (b) when the web and SMTP process runs
 * no jobs and a separate `feedmail worker` child process (same data directory) stores the
 * entry. The stream is a raw HTTP client of GET /feeds/<secret>/events. Also counts the
 * notification polls made over a quiet second with no stream open (should be 0).
 * Writes bench/results/live-<date>.txt.
 *
 *   node --import tsx bench/live.ts [--messages 20]
 */
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import { fileURLToPath } from 'node:url';
import { createFeed, sendRaw, startTestServer, type TestServer } from '../test/support/helpers.js';
import { numberArg } from './args.js';

const messages = numberArg('messages', 20);
const REPO = fileURLToPath(new URL('..', import.meta.url));

const lines: string[] = [];
function out(line = ''): void {
  lines.push(line);
  process.stdout.write(`${line}\n`);
}

/** Opens a stream and calls `onEvent` with each entry event's subject. */
function stream(url: string, onEvent: (subject: string) => void): Promise<http.ClientRequest> {
  return new Promise((resolve, reject) => {
    const req = http.get(url, { headers: { Accept: 'text/event-stream' } }, (res) => {
      let buf = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => {
        buf += chunk;
        let cut: number;
        while ((cut = buf.indexOf('\n\n')) >= 0) {
          const block = buf.slice(0, cut);
          buf = buf.slice(cut + 2);
          const data = /^data: (.*)$/m.exec(block)?.[1];
          if (data && /^event: entry$/m.test(block)) onEvent((JSON.parse(data) as { subject: string }).subject);
        }
      });
      resolve(req);
    });
    req.on('error', reject);
  });
}

async function measure(server: TestServer, label: string): Promise<void> {
  const feed = await createFeed(server.base);
  const waiting = new Map<string, (at: number) => void>();
  const req = await stream(`${feed.page.replace(/\/$/, '')}/events`, (subject) => waiting.get(subject)?.(Date.now()));
  await new Promise((r) => setTimeout(r, 300));
  const delays: number[] = [];
  for (let i = 0; i < messages; i++) {
    const subject = `live-${i}`;
    const heard = new Promise<number>((resolve) => waiting.set(subject, resolve));
    await sendRaw(server.smtpPort, feed.address, `From: n@example.com\r\nSubject: ${subject}\r\n\r\nhello\r\n`);
    const acked = Date.now();
    const at = await Promise.race([heard, new Promise<number>((r) => setTimeout(() => r(NaN), 10_000))]);
    delays.push(at - acked);
    await new Promise((r) => setTimeout(r, 100 + Math.random() * 400));
  }
  req.destroy();
  const ok = delays.filter((d) => Number.isFinite(d)).sort((a, b) => a - b);
  const q = (p: number) => ok[Math.min(ok.length - 1, Math.floor(p * ok.length))] ?? NaN;
  out(`${label}: ${ok.length}/${messages} heard; ms after the 250: min ${q(0)}, median ${q(0.5)}, p90 ${q(0.9)}, max ${ok[ok.length - 1]}; under 1000 ms: ${ok.filter((d) => d < 1000).length}`);
}

out(`# live updates, ${new Date().toISOString()}, node ${process.version}, ${messages} messages per case`);

const single = await startTestServer();
try {
  const before = single.app.counters.live.polls;
  await new Promise((r) => setTimeout(r, 1000));
  out(`idle: notification polls over 1 s with no stream open: ${single.app.counters.live.polls - before}`);
  await measure(single, 'one process (web, SMTP, jobs)');
} finally {
  await single.stop();
}

const web = await startTestServer({}, { web: true, smtp: true, jobs: false });
const worker = spawn(process.execPath, ['--import', 'tsx', 'src/cli.ts', 'worker'], {
  cwd: REPO, stdio: ['ignore', 'pipe', 'pipe'],
  env: { ...process.env, FEEDMAIL_DATA_DIR: web.dataDir, FEEDMAIL_ALLOW_UNSAFE_STORAGE: 'true', FEEDMAIL_MIN_FREE_BYTES: '0', FEEDMAIL_LOG_LEVEL: process.env.BENCH_WORKER_LOG ?? 'silent' },
});
try {
  await new Promise<void>((resolve, reject) => {
    // The start line goes to stdout or stderr depending on the log settings.
    for (const s of [worker.stdout!, worker.stderr!]) s.on('data', (d: Buffer) => { if (d.toString().includes('worker is running')) resolve(); });
    worker.once('exit', () => reject(new Error('the worker exited')));
  });
  await measure(web, 'web+SMTP process without jobs, entry stored by a `feedmail worker` child process');
} finally {
  worker.kill('SIGTERM');
  await web.stop();
}

const date = new Date().toISOString().slice(0, 10);
fs.mkdirSync(new URL('results/', import.meta.url), { recursive: true });
fs.writeFileSync(new URL(`results/live-${date}.txt`, import.meta.url), `${lines.join('\n')}\n`);
