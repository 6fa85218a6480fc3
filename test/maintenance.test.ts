/** Bounded growth: a compressed week of traffic keeps WAL files and the cache within their bounds. */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { it } from 'node:test';
import nodemailer from 'nodemailer';
import { simulateWeek } from '../bench/week-simulation.js';
import { openStores } from '../src/store/index.js';
import { createFeed, type CreatedFeed, startTestServer, tempDir, waitForEntries, sqliteOnly } from './support/helpers.js';

it('keeps every WAL under its bound and the cache under its byte limit through a simulated week', async (t) => {
  if (sqliteOnly(t, 'SQLite WAL files and cache.db\'s size')) return;
  const walMaxBytes = 256 * 1024;
  const cacheMaxBytes = 64 * 1024;
  const reports = await simulateWeek({ days: 7, messagesPerDay: 60, feeds: 12, walMaxBytes, cacheMaxBytes, progress: (l) => t.diagnostic(l) });
  assert.equal(reports.length, 7);
  assert.ok(reports[6]!.entries > 0);
  for (const r of reports) {
    for (const [file, bytes] of Object.entries(r.walBytes)) assert.ok(bytes <= walMaxBytes, `day ${r.day}: ${file} WAL is ${bytes} bytes`);
    assert.ok(r.cacheBytes <= cacheMaxBytes, `day ${r.day}: cache holds ${r.cacheBytes} bytes`);
    assert.ok(r.cacheBytes > 0, 'the cache is used at all');
  }
});

// The week above reads WAL sizes only after its checkpoint passes; a WAL that SQLite never
// checkpoints on its own would be truncated by then. So sample the peak while mail arrives.
it('keeps the WAL files near their bound while mail is arriving, not only after checkpoints', async (t) => {
  if (sqliteOnly(t, 'SQLite WAL files')) return;
  const walMaxBytes = 256 * 1024;
  const server = await startTestServer({ walMaxBytes: String(walMaxBytes) });
  const stores = [server.app.stores.app, server.app.stores.queue, server.app.stores.cache];
  const peak = new Map<string, number>();
  const sample = () => {
    for (const s of stores) peak.set(path.basename(s.file), Math.max(peak.get(path.basename(s.file)) ?? 0, s.walBytes()));
  };
  const sampler = setInterval(sample, 2);
  try {
    const feeds: CreatedFeed[] = [];
    for (let i = 0; i < 6; i++) feeds.push(await createFeed(server.base));
    const transport = nodemailer.createTransport({ host: '127.0.0.1', port: server.smtpPort, pool: true, maxConnections: 4, ignoreTLS: true });
    try {
      // About 1.3 MB of mail (and as much again in entries): several times the bound.
      await Promise.all(Array.from({ length: 150 }, (_, m) => transport.sendMail({
        envelope: { from: 'news@example.com', to: feeds[m % feeds.length]!.address },
        raw: `Subject: issue ${m}\r\nContent-Type: text/html\r\n\r\n<p>${m}</p>${'<p>Story text. </p>'.repeat(300)}\r\n`,
      })));
    } finally {
      transport.close();
    }
    await waitForEntries(feeds[feeds.length - 1]!.feeds.json, 'json', 25, 20_000, 'the last feed\'s entries');
    sample();
  } finally {
    clearInterval(sampler);
    await server.stop();
  }
  t.diagnostic(`peak WAL bytes: ${JSON.stringify(Object.fromEntries(peak))}`);
  // SQLite checkpoints at half the bound; one transaction in flight may carry a WAL past it
  // for a moment, so allow twice the bound. Without the automatic checkpoint it reaches megabytes.
  for (const [file, bytes] of peak) assert.ok(bytes <= 2 * walMaxBytes, `${file} WAL peaked at ${bytes} bytes`);
  assert.ok((peak.get('app.db') ?? 0) > 0, 'the WAL was sampled while in use');
});

// One transaction can carry a WAL far past its bound (a large newsletter is stored in one).
// SQLite's own checkpoint only copies the WAL back; the file shrinks when the next write
// starts it over, and only if journal_size_limit says so. No runner here, so no recurring
// TRUNCATE checkpoint can do the shrinking instead.
it('shrinks a WAL that one large entry grew back to its bound at the next write', async (t) => {
  if (sqliteOnly(t, 'SQLite WAL files')) return;
  const walMaxBytes = 256 * 1024;
  const dataDir = tempDir();
  const stores = openStores(dataDir, { walMaxBytes });
  try {
    const { app } = stores;
    const created = await app.createFeed('', null);
    assert.ok('feed' in created);
    const html = `<p>${'a long newsletter '.repeat(60_000)}</p>`;
    await app.insertEntry(created.feed.id, 'large', Date.now(), Buffer.from(html), {
      fromName: '', fromAddress: 'n@example.com', subject: 'large', sentAt: null, html, text: '', confirmUrl: null, note: null, parts: [],
    });
    assert.ok(app.walBytes() > 2 * walMaxBytes, `the large entry grew the WAL (${app.walBytes()} bytes)`);
    await app.renameFeed(created.feed.id, 'the next write');
    assert.ok(app.walBytes() <= walMaxBytes, `app.db WAL is ${app.walBytes()} bytes after the next write`);
  } finally {
    await stores.close();
    fs.rmSync(dataDir, { recursive: true, force: true });
  }
});
