/**
 * Time of the fidelity code that reads sender markup on the hostile inputs of security
 * review 9 (findings 1–4): the body frame's page background, the sender doctype, plain-text
 * URL trimming, doctype tokens in the bounding pass, and mailparser's forwarded-header
 * tables. Each ran in quadratic (or, for the doctype comments, exponential) time before;
 * test/fidelity-bounds.test.ts checks the outputs, this measures the times.
 *
 *   node --import tsx bench/fidelity-bounds.ts [--scale 1]
 */
import { numberArg } from './args.js';
import { parseMessage } from '../src/mail/parse.js';
import { boundMarkup, HTML_BOUNDS, senderDoctype } from '../src/mail/sanitize.js';
import { linkify } from '../src/mail/text-html.js';
import { pageBackground } from '../src/web/presenters.js';

if (process.argv.includes('--help')) {
  process.stdout.write('usage: node --import tsx bench/fidelity-bounds.ts [--scale N]\n  --scale  multiplies every input size (default 1)\n');
  process.exit(0);
}
const scale = numberArg('scale', 1);
const n = (k: number) => Math.round(k * scale);

const mail = (body: string) => Buffer.from('From: a@example.com\r\nTo: b@example.com\r\nSubject: t\r\n'
  + 'Content-Type: text/html; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n' + body + '\r\n');

const cases: { name: string; input: () => string; run: (s: string) => unknown }[] = [
  { name: `1 background-color: red + ${n(100_000)} spaces + x`, input: () => `background-color: red${' '.repeat(n(100_000))}x`, run: pageBackground },
  { name: `1 background: 'rgb( ' x ${n(100_000)}`, input: () => `background: ${'rgb( '.repeat(n(100_000))}`, run: pageBackground },
  { name: `2 '<!---->' x 40 + x`, input: () => '<!---->'.repeat(40) + 'x', run: senderDoctype },
  { name: `2 '<!doctype a' + ${n(80_000)} spaces + b`, input: () => '<!doctype a' + ' '.repeat(n(80_000)) + 'b', run: senderDoctype },
  { name: `3 ('http://a' + 4092 ')' + ' ') x ${n(200)}`, input: () => ('http://a' + ')'.repeat(4092) + ' ').repeat(n(200)), run: linkify },
  { name: `4 ' <!---->' x k + '<!doctype a>' x k + '<style/>', k=${n(60_000)}`, input: () => ' <!---->'.repeat(n(60_000)) + '<!doctype a>'.repeat(n(60_000)) + '<style/>', run: (s) => boundMarkup(s, HTML_BOUNDS) },
  { name: `4 '<table class="mp_head"><td></tr>' x ${n(80_000)} (parseMessage)`, input: () => '<table class="mp_head"><td></tr>'.repeat(n(80_000)), run: (s) => parseMessage(mail(s), { maxPartBytes: 25 * 1024 * 1024 }) },
];

console.log(`node ${process.version}, scale ${scale}`);
for (const c of cases) {
  const input = c.input();
  const t0 = performance.now();
  await c.run(input);
  console.log(`${c.name.padEnd(70)} ${String(input.length).padStart(9)} chars ${(performance.now() - t0).toFixed(0).padStart(7)} ms`);
}
