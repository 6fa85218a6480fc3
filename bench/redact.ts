/**
 * Redaction cost on the inputs that hurt most: one long base64 run (a forwarded .eml or
 * a data: URI), a run of one base64 letter, ordinary words, a run of characters in no
 * secret at all, numeric character references (each one decoded and checked), and
 * base64 that is nothing but the address, at 1, 8 and 25 MB, with the secrets of 1 and
 * of 50 feeds (a message may be addressed to up to 50). Each cell is the median of --repeat runs; a run that
 * throws is reported with its error instead of a time. Also checks that the secret
 * planted in the base64 shapes is gone from the output.
 *
 *   node --import tsx bench/redact.ts [--repeat 3] [--max-mb 25] [--seed 7]
 */
import { redactor, redactPart, type FeedSecrets } from '../src/mail/redact.js';
import { prng } from '../test/support/mutate.js';
import { numberArg } from './args.js';

const repeat = numberArg('repeat', 3);
const maxMb = numberArg('max-mb', 25);
const rng = prng(numberArg('seed', 7));
const MB = 1_000_000;

function token(): string {
  const alphabet = 'abcdefghijklmnopqrstuvwxyz234567';
  return Array.from({ length: 26 }, () => alphabet[Math.floor(rng() * 32)]).join('');
}

function feeds(n: number): FeedSecrets[] {
  return Array.from({ length: n }, () => ({ inboxToken: token(), feedToken: token() }));
}

function randomBytes(n: number): Buffer {
  const b = Buffer.allocUnsafe(n);
  for (let i = 0; i < n; i++) b[i] = Math.floor(rng() * 256);
  return b;
}

const WORDS = ['the', 'newsletter', 'of', 'week', 'and', 'subscribe', 'reading', 'a', 'link', 'unsubscribe', 'https://news.example.com/p/2024', 'Ünïcode', 'data', 'from'];

/** Input shapes of `bytes` characters; the base64 ones carry `secret` in the middle. */
function shapes(bytes: number, secret: string): Record<string, string> {
  const half = Math.floor((bytes * 3) / 8);
  const payload = Buffer.concat([randomBytes(half), Buffer.from(`{"email":"${secret}@feedmail.test"}`), randomBytes(half)]);
  const b64 = payload.toString('base64');
  const words: string[] = [];
  for (let n = 0; n < bytes;) {
    const w = WORDS[Math.floor(rng() * WORDS.length)]!;
    words.push(w);
    n += w.length + 1;
  }
  return {
    'base64, one run': b64,
    'base64, 76-column lines': b64.replace(/.{76}/g, '$&\r\n'),
    "'A' repeated": 'A'.repeat(bytes),
    'random words': words.join(' '),
    "'&' repeated": '&'.repeat(bytes),
    "'&#65;' repeated": '&#65;'.repeat(Math.floor(bytes / 5)),
    // Every position matches: the most spans to map back and replace.
    'base64 of address, repeated': Buffer.from(`${secret}@feedmail.test,`.repeat(Math.floor((bytes * 3) / 4 / 42))).toString('base64').replace(/.{76}/g, '$&\r\n'),
  };
}

/** Whether base64 text, decoded from any of its first four characters, still contains `secret`. */
function decodesTo(b64: string, secret: string): boolean {
  const plain = b64.replace(/\r\n/g, '');
  return [0, 1, 2, 3].some((k) => Buffer.from(plain.slice(k), 'base64').toString('latin1').includes(secret));
}

function time(fn: () => unknown): number | string {
  try {
    const t0 = performance.now();
    fn();
    return performance.now() - t0;
  } catch (err) {
    return `${(err as Error).name}: ${(err as Error).message}`.slice(0, 60);
  }
}

function median(xs: (number | string)[]): number | string {
  const error = xs.find((x) => typeof x === 'string');
  if (error !== undefined) return error;
  const sorted = (xs as number[]).sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)]!;
}

function cell(ms: number | string, chars: number): string {
  return typeof ms === 'string' ? ms : `${ms.toFixed(0).padStart(6)} ms ${(chars / MB / (ms / 1000)).toFixed(0).padStart(5)} MB/s`;
}

console.log(`node ${process.version}, repeat ${repeat}, median per cell`);
console.log(`${'input'.padEnd(28)} ${'size'.padStart(6)}  ${'1 feed'.padEnd(22)} ${'50 feeds'.padEnd(22)} secret gone`);
let failures = 0;
for (const mb of [1, 8, 25].filter((x) => x <= maxMb)) {
  const secrets = { 1: feeds(1), 50: feeds(50) };
  const planted = secrets[1][0]!.inboxToken;
  secrets[50][17] = secrets[1][0]!;
  for (const [name, input] of Object.entries(shapes(mb * MB, planted))) {
    const cells: string[] = [];
    let gone: boolean | null = name.startsWith('base64') ? true : null;
    for (const n of [1, 50] as const) {
      const redact = redactor(secrets[n]);
      let out = '';
      const ms = median(Array.from({ length: repeat }, () => time(() => { out = redact(input); })));
      if (typeof ms === 'string') failures++;
      if (gone !== null) gone = typeof ms === 'number' && gone && !decodesTo(out, planted);
      cells.push(cell(ms, input.length).padEnd(22));
    }
    if (gone === false) failures++;
    console.log(`${name.padEnd(28)} ${`${mb} MB`.padStart(6)}  ${cells.join(' ')} ${gone === null ? '-' : gone ? 'yes' : 'NO'}`);
  }
}

// Whole parts, as ingest redacts them: a 10 MB binary attachment is scanned for the address,
// a 10 MB UTF-16 text attachment is transcoded and redacted.
const fifty = feeds(50);
const binary = randomBytes(10 * MB);
const text = Buffer.from(`\ufeff${'Name;Address;Since\r\n'.repeat(10 * MB / 40)}`, 'utf16le');
for (const [name, part] of [
  ['10 MB application/pdf', { content: binary, contentType: 'application/pdf', filename: 'a.pdf', contentId: null, inline: false, size: binary.length }],
  ['10 MB text/csv UTF-16', { content: text, contentType: 'text/csv', charset: 'utf-16', filename: 'a.csv', contentId: null, inline: false, size: text.length }],
] as const) {
  const ms = median(Array.from({ length: repeat }, () => time(() => redactPart({ ...part }, fifty))));
  if (typeof ms === 'string') failures++;
  console.log(`redactPart, ${name.padEnd(24)} 50 feeds: ${cell(ms, part.content.length)}`);
}
console.log(failures === 0 ? 'PASS: nothing threw, every planted secret was redacted' : `FAIL: ${failures} cell(s) threw or kept the secret`);
process.exitCode = failures === 0 ? 0 : 1;
