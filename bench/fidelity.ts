/**
 * Fidelity of feedmail's entry body against a mail client, per message of the corpus
 * (test/fixtures/newsletters/MANIFEST.md), with the median and the minimum (issue 9).
 *
 *   node --import tsx bench/fidelity.ts [--save-png DIR]
 *
 * Prints the table and writes it to bench/results/fidelity-<date>.txt. With --save-png, the
 * reference and feedmail screenshots of each message are written to DIR for a look.
 */
import fs from 'node:fs';
import path from 'node:path';
import { FidelityHarness, THRESHOLDS, failures, readCorpus, table, type Measurement } from '../test/support/fidelity.js';

if (process.argv.includes('--help')) {
  process.stdout.write('usage: node --import tsx bench/fidelity.ts [--save-png DIR]\n');
  process.exit(0);
}
const pngIndex = process.argv.indexOf('--save-png');
const pngDir = pngIndex > 0 ? process.argv[pngIndex + 1] : undefined;
if (pngDir) fs.mkdirSync(pngDir, { recursive: true });

const corpus = readCorpus();
const harness = await FidelityHarness.start();
const results: Measurement[] = [];
const notes: string[] = [];
const started = Date.now();
try {
  for (const row of corpus) {
    const { referencePng, candidatePng, ...m } = await harness.measure(row.file, fs.readFileSync(row.path));
    results.push(m);
    if (pngDir) {
      const base = path.join(pngDir, path.basename(row.file, '.eml'));
      fs.writeFileSync(`${base}.reference.png`, referencePng);
      fs.writeFileSync(`${base}.feedmail.png`, candidatePng);
    }
    const failed = failures(m);
    if (failed.length) notes.push(`${row.file}: ${failed.join(', ')}${row.knownBad ? ` (known bad: ${row.knownBad})` : ''}`);
    if (m.missingLinks.length) notes.push(`${row.file}: missing links ${m.missingLinks.join(' ')}`);
    if (m.missingImages.length) notes.push(`${row.file}: missing images ${m.missingImages.join(' ')}`);
  }
} finally {
  await harness.stop();
}

const date = new Date().toISOString().slice(0, 10);
const report = [
  `fidelity ${date}: ${results.length} messages, Chromium at 700 px, remote images as one placeholder, ${((Date.now() - started) / 1000).toFixed(1)} s`,
  `thresholds (test/fidelity.test.ts): ${Object.entries(THRESHOLDS).map(([k, v]) => `${k} >= ${v}`).join(', ')}`,
  '',
  table(results),
  '',
  ...(notes.length ? ['below a threshold or missing something:', ...notes.map((n) => `  ${n}`)] : ['every message is at or above every threshold']),
  '',
].join('\n');
process.stdout.write(report);
const out = new URL(`./results/fidelity-${date}.txt`, import.meta.url);
fs.writeFileSync(out, report);
process.stdout.write(`written to bench/results/fidelity-${date}.txt\n`);
