/** Issue 4: bounded growth. A compressed week of traffic keeps WAL files and the cache within their bounds. */
import assert from 'node:assert/strict';
import { it } from 'node:test';
import { simulateWeek } from '../bench/week-simulation.js';

it('keeps every WAL under its bound and the cache under its byte limit through a simulated week', async (t) => {
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
