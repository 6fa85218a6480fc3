/**
 * Time of sanitizeNewsletterHtml on deeply nested markup, without the bounding pass
 * (sanitize-html alone, as before security review F5) and with it; then, with it, on
 * the costliest shapes of markup we know at the 25 MB message limit; then the time each
 * message of the fixture corpus, and of its seeded mutations, takes to process in-process
 * as ingest does (parse, sanitize, confirm link), against a per-message bound.
 *
 *   node --import tsx bench/sanitize-bounds.ts [--depths 10000,50000,150000,300000] [--before-max 300000] [--mb 25] [--cases 10000] [--seed 24301] [--case-bound-ms 2000]
 */
import fs from 'node:fs';
import os from 'node:os';
import { numberArg } from './args.js';
import { processMessage } from '../src/mail/process.js';
import { HTML_BOUNDS, sanitizeNewsletterHtmlWithReport, type SanitizeOptions } from '../src/mail/sanitize.js';
import { cases } from '../test/support/mutate.js';

if (process.argv.includes('--help')) {
  process.stdout.write([
    'usage: node --import tsx bench/sanitize-bounds.ts [--depths a,b,...] [--before-max N] [--mb N]',
    '  --depths      nesting depths of <div>s to time (default 10000,50000,150000,300000)',
    '  --before-max  skip the unbounded run above this depth (default 300000; it grows with the square)',
    '  --mb          size of the worst-shape inputs in MiB (default 25, the message limit; 0 skips them)',
    '  --cases       mutated messages to process after the fixtures (default 10000; -1 skips the corpus too)',
    '  --seed        seed of the mutations (default 24301)',
    '  --case-bound-ms  exit 1 when one message takes longer than this to process (default 2000)',
    '',
  ].join('\n'));
  process.exit(0);
}

const depthsArg = process.argv.indexOf('--depths');
const depths = depthsArg >= 0 ? process.argv[depthsArg + 1]!.split(',').map(Number) : [10_000, 50_000, 150_000, 300_000];
const beforeMax = numberArg('before-max', 300_000);
const mb = numberArg('mb', 25);
const caseCount = numberArg('cases', 10_000);
const seed = numberArg('seed', 24301);
const caseBoundMs = numberArg('case-bound-ms', 2000);

const BEFORE: SanitizeOptions = { keepTrackingPixels: false, bounds: { maxDepth: Infinity, maxElements: Infinity } };
const AFTER: SanitizeOptions = { keepTrackingPixels: false };

function time(html: string, options: SanitizeOptions): { ms: number; flattened: boolean; out: number } {
  const t0 = performance.now();
  const r = sanitizeNewsletterHtmlWithReport(html, options);
  return { ms: performance.now() - t0, flattened: r.flattened, out: r.html.length };
}

const fmt = (ms: number) => `${(ms / 1000).toFixed(2)} s`.padStart(9);

console.log(`sanitize-bounds ${new Date().toISOString()} node ${process.version}, ${os.cpus().length} CPU(s), ${os.cpus()[0]?.model ?? ''}, load average ${os.loadavg().map((l) => l.toFixed(1)).join(' ')}`);
console.log(`bounds: maxDepth ${HTML_BOUNDS.maxDepth}, maxElements ${HTML_BOUNDS.maxElements}`);
console.log('');
console.log('nested <div>s (the review\'s message body: <div> x N, "x", </div> x N)');
console.log('   depth      input     before      after  flattened  output');
for (const n of depths) {
  const html = '<div>'.repeat(n) + 'x' + '</div>'.repeat(n);
  const before = n <= beforeMax ? fmt(time(html, BEFORE).ms) : '  skipped';
  const after = time(html, AFTER);
  console.log(`${String(n).padStart(8)} ${(html.length / 1e6).toFixed(2).padStart(7)} MB  ${before}  ${fmt(after.ms)}  ${String(after.flattened).padStart(9)}  ${after.out} chars`);
}

if (mb > 0) {
  const size = Math.floor(mb * 1024 * 1024);
  const fill = (prefix: string, unit: string, suffix = '') => prefix + unit.repeat(Math.floor((size - prefix.length - suffix.length) / unit.length)) + suffix;
  const deep = '<div>'.repeat(HTML_BOUNDS.maxDepth - 1);
  const shapes: [string, string][] = [
    ['nested <div>s', fill('', '<div>')],
    ['nested <table><tr><td>', fill('', '<table><tr><td>')],
    ['unclosed <b><i>', fill('', '<b><i>')],
    ['flat <span>w</span>', fill('', '<span>w</span>')],
    ['<p>x, implied ends', fill('', '<p>x')],
    ['stray </p> (each one a <p></p>)', fill('', '</p>')],
    ['<img> without src, and text', fill('', '<img>x')],
    ['<br>s at the depth cap', fill(deep, '<br>')],
    ['stray </span>s at the depth cap', fill(deep, '</span>')],
    ['&amp; entities at the depth cap', fill(deep, '&amp;')],
    ['plain text at the depth cap', fill(deep, 'lorem ipsum ')],
    ['one element, millions of attributes', fill('<div ', 'a=1 ', '>x</div>')],
    ['one style attribute', fill('<div style="', 'color:red;url(', '">x</div>')],
    ['one <style> element', fill('<style>', 'a>b{c:d} ', '</style>')],
    ['comments at the depth cap', fill(deep, '<!--x-->')],
  ];
  console.log('');
  console.log(`worst shapes we know, ${mb} MiB each, with the bounding pass (the processing budget is 20 s)`);
  for (const [name, html] of shapes) {
    const r = time(html, AFTER);
    console.log(`  ${name.padEnd(34)} ${fmt(r.ms)}  flattened ${String(r.flattened).padEnd(5)}  output ${(r.out / 1e6).toFixed(2)} MB`);
  }
}

if (caseCount >= 0) {
  // The fuzz test's options: parts up to 1 MB, tracking pixels dropped.
  const options = { maxPartBytes: 1_000_000, keepTrackingPixels: false };
  const fixtures = fs.readdirSync(new URL('../test/fixtures/', import.meta.url)).filter((f) => f.endsWith('.eml')).sort()
    .map((name) => ({ name, raw: fs.readFileSync(new URL(`../test/fixtures/${name}`, import.meta.url)) }));
  const timeAll = async (messages: Iterable<{ what: string; raw: Buffer }>) => {
    const times: { ms: number; what: string }[] = [];
    for (const { what, raw } of messages) {
      const t0 = performance.now();
      await processMessage(raw, options).catch(() => undefined); // an exception is the fuzz test's business; only time counts here
      times.push({ ms: performance.now() - t0, what });
    }
    return times.sort((a, b) => a.ms - b.ms);
  };
  const report = (name: string, times: { ms: number; what: string }[]) => {
    const at = (q: number) => times[Math.min(times.length - 1, Math.floor(times.length * q))]!.ms.toFixed(1);
    const slowest = times[times.length - 1]!;
    const over = times.filter((t) => t.ms > caseBoundMs).length;
    console.log(`  ${name.padEnd(34)} ${String(times.length).padStart(6)} messages  p50 ${at(0.5)} ms  p99 ${at(0.99)} ms  slowest ${slowest.ms.toFixed(1)} ms (${slowest.what})  over ${caseBoundMs} ms: ${over}`);
    return over;
  };
  console.log('');
  console.log(`processing each message as ingest does (parse, sanitize, confirm link), bound ${caseBoundMs} ms per message`);
  let over = report('the fixture corpus', await timeAll(fixtures.map((f) => ({ what: f.name, raw: f.raw }))));
  if (caseCount > 0) {
    const mutated = function* () {
      for (const c of cases(fixtures, caseCount, seed)) yield { what: `case ${c.id}: ${c.fixture} ${c.mutations.join('+')}`, raw: c.raw };
    };
    over += report(`mutated (seed ${seed})`, await timeAll(mutated()));
  }
  console.log(over === 0 ? `PASS: every message within ${caseBoundMs} ms` : `FAIL: ${over} message(s) took longer than ${caseBoundMs} ms`);
  process.exitCode = over === 0 ? 0 : 1;
}
