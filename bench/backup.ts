/**
 * Backups (issue 13): how long a snapshot, a verify and a restore take for a data directory
 * of N newsletters, how large the snapshot is, and what a backup taken inside the running
 * server (the scheduled task's path) does to mail: the SMTP time to "250" of messages sent
 * one after another while it runs, against the same with no backup running.
 * Writes bench/results/backup-<date>.txt.
 *
 *   node --import tsx bench/backup.ts [--messages 400] [--probes 30]
 */
import fs from 'node:fs';
import path from 'node:path';
import { openTarget } from '../src/ops/backup-target.js';
import { restoreSnapshot, takeSnapshot, verifySnapshot } from '../src/ops/backup.js';
import { sizeText } from '../src/web/routes/manage-common.js';
import { createFeed, sendRaw, startTestServer, tempDir, waitFor, type CreatedFeed, type TestServer } from '../test/support/helpers.js';
import { numberArg } from './args.js';

const messages = numberArg('messages', 400);
const probes = numberArg('probes', 30);

const lines: string[] = [];
function out(line = ''): void {
  lines.push(line);
  process.stdout.write(`${line}\n`);
}

/** A newsletter of about 30 KB of HTML that differs from one issue to the next. */
function newsletter(i: number): string {
  const paragraphs = Array.from({ length: 60 }, (_, p) => `<p>Issue ${i}, section ${p}: ${Math.random().toString(36).repeat(8)} and some ordinary words about the week.</p>`).join('\n');
  return `From: Weekly <news@example.com>\r\nSubject: Issue ${i}\r\nContent-Type: text/html; charset=utf-8\r\n\r\n<html><body>${paragraphs}</body></html>\r\n`;
}

async function fill(server: TestServer, feed: CreatedFeed): Promise<void> {
  let next = 0;
  await Promise.all(Array.from({ length: 4 }, async () => {
    while (next < messages) await sendRaw(server.smtpPort, feed.address, newsletter(next++));
  }));
  await waitFor(async () => (await server.app.stores.app.countAllEntries()) >= messages, 300_000, 'every entry');
}

/** Milliseconds from connecting to the "250" of `count` messages sent one after another. */
async function smtpTimes(server: TestServer, feed: CreatedFeed, count: number, from: number, until?: () => boolean): Promise<number[]> {
  const times: number[] = [];
  for (let i = 0; i < count && (until?.() ?? true); i++) {
    const started = performance.now();
    await sendRaw(server.smtpPort, feed.address, newsletter(from + i));
    times.push(performance.now() - started);
  }
  return times;
}

function summary(times: number[]): string {
  const s = [...times].sort((a, b) => a - b);
  const q = (p: number) => Math.round(s[Math.min(s.length - 1, Math.floor(p * s.length))] ?? NaN);
  return `${s.length} messages, ms to 250: median ${q(0.5)}, p90 ${q(0.9)}, max ${q(1)}`;
}

out(`# backups, ${new Date().toISOString()}, node ${process.version}, ${messages} newsletters of ~30 KB`);
const server = await startTestServer({ feedMaxEntries: '1000', feedKeepEntries: '100000', feedMessagesPerDay: '0' });
const snapDir = tempDir('feedmail-bench-snapshots-');
const target = openTarget(snapDir, { s3Endpoint: '', s3Region: 'us-east-1', s3AccessKeyId: '', s3SecretAccessKey: '', s3ForcePathStyle: false });
let snapshot = '';
try {
  const feed = await createFeed(server.base);
  await fill(server, feed);
  out(`data directory: app.db ${sizeText(server.app.stores.app.fileBytes())}, queue.db ${sizeText(server.app.stores.queue.fileBytes())}`);

  out(`idle: ${summary(await smtpTimes(server, feed, probes, 100_000))}`);

  let running = true;
  const started = performance.now();
  const during = smtpTimes(server, feed, 100_000, 200_000, () => running);
  const r = await takeSnapshot(server.app.stores, target, Date.now());
  const took = performance.now() - started;
  running = false;
  snapshot = r.snapshot;
  out(`snapshot inside the server: ${(took / 1000).toFixed(2)} s; ${r.manifest.files.map((f) => `${f.name} ${sizeText(f.size)} -> ${sizeText(f.compressedSize)}`).join(', ')}`);
  out(`during that snapshot: ${summary(await during)}`);
} finally {
  await server.stop();
}

let started = performance.now();
const v = await verifySnapshot(server.dataDir, target, snapshot);
out(`verify: ${((performance.now() - started) / 1000).toFixed(2)} s, ${v.problems.length} problems`);

const restoreDir = path.join(tempDir(), 'data');
started = performance.now();
const restored = await restoreSnapshot(restoreDir, target);
out(`restore into an empty data directory: ${((performance.now() - started) / 1000).toFixed(2)} s (${restored.restored.join(', ')})`);

const date = new Date().toISOString().slice(0, 10);
fs.mkdirSync(new URL('results/', import.meta.url), { recursive: true });
fs.writeFileSync(new URL(`results/backup-${date}.txt`, import.meta.url), `${lines.join('\n')}\n`);
