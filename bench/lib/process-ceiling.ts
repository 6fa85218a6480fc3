/**
 * The ceiling of the processing benchmark (bench/run.ts, benchmark 3): the same messages
 * through processing (parse, sanitize, redact for one recipient feed: what a processing
 * thread does for ingest) in this one thread, nothing stored, after a warm-up pass over the
 * first 50, from the built code (dist/) as the server runs it. Prints one JSON line: messages per second in one thread. The benchmark
 * multiplies it by the core count, since the processing pool runs one thread per core.
 *
 *   node --import tsx bench/lib/process-ceiling.ts <dir of messages>
 */
import fs from 'node:fs';
import path from 'node:path';

// The built code, as the server under test runs it (npm run bench builds first).
const { processForRecipients } = await import(new URL('../../dist/mail/process.js', import.meta.url).href) as typeof import('../../src/mail/process.js');
const dir = process.argv[2]!;
const raws = fs.readdirSync(dir).sort().map((f) => fs.readFileSync(path.join(dir, f)));
const options = { maxPartBytes: 10 * 1024 * 1024, keepTrackingPixels: false };
const recipients = [{ inboxToken: 'benchinboxtoken0123456789', feedToken: 'benchfeedtoken0123456789ab' }];
for (const raw of raws.slice(0, 50)) await processForRecipients(raw, options, recipients);
const started = performance.now();
for (const raw of raws) await processForRecipients(raw, options, recipients);
const seconds = (performance.now() - started) / 1000;
process.stdout.write(`${JSON.stringify({ messages: raws.length, seconds, perSecond: raws.length / seconds })}\n`);
