/**
 * How many fsyncs one newsletter costs (profile evidence for issue 14): starts the built
 * server (dist/cli.js) with a fresh data directory, attaches `strace -f -e fsync,fdatasync`
 * to it, sends N messages of 20 KB over one smtplib session, waits until the last one is in
 * the feed and the queue is empty, and counts the syncs by file. Needs strace (Linux).
 *
 *   npm run build && node --import tsx bench/fsync-count.ts [--messages 200]
 */
import { spawn, execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { createFeed, tempDir, waitFor } from '../test/support/helpers.js';
import { startServeProcess } from '../test/support/serve-process.js';
import { numberArg } from './args.js';
import { writeNewsletters } from './lib/newsletters.js';
import { allStored } from './lib/visible.js';

if (process.argv.includes('--help')) {
  process.stdout.write('Usage: npm run build && node --import tsx bench/fsync-count.ts [--messages 200]\n');
  process.exit(0);
}
const n = numberArg('messages', 200);
const work = tempDir('feedmail-fsync-');
const server = await startServeProcess({ processes: 1, built: true, dataDir: path.join(work, 'data'), env: { FEEDMAIL_FEED_MESSAGES_PER_DAY: '0' } });
const traceFile = path.join(work, 'strace.txt');
try {
  const feed = await createFeed(server.base, 'fsync');
  const dir = path.join(work, 'mail');
  writeNewsletters(dir, n, 'fsync', feed.address);
  const strace = spawn('strace', ['-f', '-y', '-e', 'trace=fsync,fdatasync', '-o', traceFile, '-p', String(server.pid)], { stdio: 'ignore' });
  await new Promise((r) => setTimeout(r, 1000));
  execFileSync('python3', ['bench/lib/smtp_client.py', '127.0.0.1', String(server.smtpPort), dir, '1', feed.address]);
  await waitFor(() => allStored(server.base, n), 300_000, 'the last entry').catch((err: unknown) => {
    strace.kill('SIGINT');
    throw err;
  });
  strace.kill('SIGINT');
  await new Promise((r) => strace.once('exit', r));
  const byFile = new Map<string, number>();
  for (const line of fs.readFileSync(traceFile, 'utf8').split('\n')) {
    const m = /f(?:data)?sync\(\d+<([^>]+)>/.exec(line);
    if (m) byFile.set(path.basename(m[1]!), (byFile.get(path.basename(m[1]!)) ?? 0) + 1);
  }
  const total = [...byFile.values()].reduce((a, b) => a + b, 0);
  process.stdout.write(`fsync-count ${new Date().toISOString()}: ${n} messages over 1 SMTP session, ${total} syncs (${(total / n).toFixed(2)} per message)\n`);
  for (const [file, count] of [...byFile].sort((a, b) => b[1] - a[1])) process.stdout.write(`  ${file}: ${count} (${(count / n).toFixed(2)} per message)\n`);
} finally {
  await server.stop();
  fs.rmSync(work, { recursive: true, force: true });
}
