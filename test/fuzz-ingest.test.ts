/** Fuzzed mail over real SMTP is stored or recorded with its error, and the server keeps serving (bench/fuzz-ingest.ts at CI size). */
import assert from 'node:assert/strict';
import { it } from 'node:test';
import { runFuzzIngest } from '../bench/fuzz-ingest.js';

it('stores or records every acknowledged fuzzed message and keeps serving', { timeout: 120_000 }, async (t) => {
  const r = await runFuzzIngest({ messages: 400, seed: 7, connections: 4 });
  t.diagnostic(JSON.stringify({ ...r, unaccounted: r.unaccounted.length }));
  assert.ok(r.acknowledged > 300, `most fuzzed messages are accepted (${r.acknowledged})`);
  assert.deepEqual(r.unaccounted, []);
  assert.equal(r.stored + r.storedAsDuplicate + r.failedWithError, r.acknowledged);
  assert.ok(r.stillServing);
});
