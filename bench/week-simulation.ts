/**
 * A week of simulated traffic against a real feedmail (SMTP in, feeds out),
 * with the recurring maintenance run on a simulated clock, to check that the
 * WAL files stay under FEEDMAIL_WAL_MAX_BYTES and cache.db under
 * FEEDMAIL_CACHE_MAX_BYTES.
 *
 *   node --import tsx bench/week-simulation.ts [--days 7] [--messages-per-day 400] [--feeds 40]
 */
import { pathToFileURL } from 'node:url';
import nodemailer from 'nodemailer';
import { startApp } from '../src/app.js';
import { loadConfig } from '../src/config.js';
import { createLogger } from '../src/log.js';
import { tempDir } from '../test/support/helpers.js';
import { numberArg } from './args.js';

export interface WeekOptions {
  days: number;
  messagesPerDay: number;
  feeds: number;
  walMaxBytes: number;
  cacheMaxBytes: number;
  progress?: (line: string) => void;
}

export interface DayReport {
  day: number;
  entries: number;
  walBytes: Record<string, number>;
  cacheBytes: number;
}

const HOUR = 3600_000;

export async function simulateWeek(o: WeekOptions): Promise<DayReport[]> {
  const config = loadConfig({}, {
    dataDir: tempDir('feedmail-week-'), httpPort: '0', smtpPort: '0', logLevel: 'silent', allowUnsafeStorage: 'true',
    minFreeBytes: '0', walMaxBytes: String(o.walMaxBytes), cacheMaxBytes: String(o.cacheMaxBytes), feedKeepEntries: '100', feedsPerHourPerClient: '0',
  });
  const app = await startApp(config, createLogger('silent'), { web: true, smtp: true, jobs: true });
  const base = `http://127.0.0.1:${app.http!.port}`;
  const transport = nodemailer.createTransport({ host: '127.0.0.1', port: app.smtp!.port, pool: true, maxConnections: 4, ignoreTLS: true });
  const drain = async () => {
    for (;;) {
      const q = await app.stores.queue.queueStats();
      if (q.ready === 0 && q.claimed === 0) return;
      await new Promise((r) => setTimeout(r, 50));
    }
  };
  const reports: DayReport[] = [];
  try {
    const feeds: { address: string; atom: string; rss: string; json: string }[] = [];
    for (let i = 0; i < o.feeds; i++) {
      const res = await fetch(`${base}/feeds`, { method: 'POST', headers: { Accept: 'application/json' } });
      if (res.status !== 201) throw new Error(`feed creation answered ${res.status}`);
      const f = (await res.json()) as { address: string; feeds: { atom: string; rss: string; json: string } };
      feeds.push({ address: f.address, ...f.feeds });
    }
    let clock = Date.now();
    for (let day = 1; day <= o.days; day++) {
      const sends: Promise<unknown>[] = [];
      for (let m = 0; m < o.messagesPerDay; m++) {
        const feed = feeds[m % feeds.length]!;
        sends.push(transport.sendMail({
          envelope: { from: 'news@example.com', to: feed.address },
          raw: `From: News <news@example.com>\r\nSubject: day ${day} issue ${m}\r\nContent-Type: text/html\r\n\r\n<table width="600"><tr><td>${'<p>Story text. </p>'.repeat(40)}</td></tr></table>\r\n`,
        }));
      }
      await Promise.all(sends);
      await drain();
      // Readers poll every feed in every format, with and without compression.
      for (const f of feeds) {
        for (const url of [f.atom, f.rss, f.json]) {
          await (await fetch(url, { headers: { 'Accept-Encoding': 'identity' } })).arrayBuffer();
          await (await fetch(url, { headers: { 'Accept-Encoding': 'gzip, br' } })).arrayBuffer();
        }
      }
      // A day passes on the maintenance clock: one scheduling pass per simulated hour.
      for (let h = 0; h < 24; h++) {
        clock += HOUR;
        await app.runner!.scheduleRecurring(clock);
        await drain();
      }
      const wal: Record<string, number> = {};
      for (const h of [app.stores.app, app.stores.queue, app.stores.cache]) wal[h.file.split('/').pop()!] = h.walBytes();
      const { entries } = await app.stores.app.rowCounts();
      const report = { day, entries, walBytes: wal, cacheBytes: await app.stores.cache.cacheBytes() };
      reports.push(report);
      o.progress?.(`day ${day}: ${entries} entries kept, WAL ${JSON.stringify(wal)}, cache ${report.cacheBytes} bytes`);
    }
  } finally {
    transport.close();
    await app.stop();
  }
  return reports;
}


if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  if (process.argv.includes('--help')) {
    process.stdout.write('Usage: node --import tsx bench/week-simulation.ts [--days 7] [--messages-per-day 400] [--feeds 40] [--wal-max-bytes 1048576] [--cache-max-bytes 262144]\n');
    process.exit(0);
  }
  const opts: WeekOptions = {
    days: numberArg('days', 7), messagesPerDay: numberArg('messages-per-day', 400), feeds: numberArg('feeds', 40),
    walMaxBytes: numberArg('wal-max-bytes', 1024 * 1024), cacheMaxBytes: numberArg('cache-max-bytes', 256 * 1024),
    progress: (l) => process.stdout.write(`${l}\n`),
  };
  const started = Date.now();
  const reports = await simulateWeek(opts);
  const maxWal = Math.max(...reports.flatMap((r) => Object.values(r.walBytes)));
  const maxCache = Math.max(...reports.map((r) => r.cacheBytes));
  const ok = maxWal <= opts.walMaxBytes && maxCache <= opts.cacheMaxBytes;
  process.stdout.write(`${ok ? 'OK' : 'FAIL'}: largest WAL ${maxWal} of ${opts.walMaxBytes} bytes allowed, largest cache ${maxCache} of ${opts.cacheMaxBytes}, ${Math.round((Date.now() - started) / 1000)} s\n`);
  process.exit(ok ? 0 : 1);
}
