/**
 * Summarises a V8 CPU profile (`node --cpu-prof`, e.g. from `npm run bench -- --only smtp --cpu-prof DIR`):
 * the functions with the most self time, and the inclusive time of every function whose
 * name matches a pattern (by default the SMTP accept path and the ingest job's steps).
 *
 *   node --import tsx bench/lib/profile-summary.ts <file.cpuprofile> [--top 25] [--match regex] [--callers name]
 *
 * --callers: for the samples inside a function of that name, the nearest feedmail
 * functions (dist/, not node_modules) above it on the stack, so the time of a library
 * call (e.g. Kysely's executeQuery, where better-sqlite3 runs a statement and waits for
 * its fsync) is told apart by who called it.
 */
import fs from 'node:fs';
import { numberArg } from '../args.js';

interface Node { id: number; callFrame: { functionName: string; url: string; lineNumber: number }; children?: number[] }
interface Profile { nodes: Node[]; samples: number[]; timeDeltas: number[]; startTime: number; endTime: number }

const file = process.argv[2];
if (!file || file === '--help') {
  process.stdout.write('Usage: node --import tsx bench/lib/profile-summary.ts <file.cpuprofile> [--top 25] [--match regex]\n');
  process.exit(file ? 0 : 2);
}
const top = numberArg('top', 25);
const matchIndex = process.argv.indexOf('--match');
const pattern = new RegExp(matchIndex >= 0 ? process.argv[matchIndex + 1]! : '^(receiveMessage|journalMessage|journal|admit|feedBytes|senderRulesOfFeed|feedById|ingestJournalRow|storeForFeeds|hashContent|process|onData|_onCommand|handleDataEnd|executeQuery|runJob|renderFeed|checkpointPassive)$');
const profile = JSON.parse(fs.readFileSync(file, 'utf8')) as Profile;
const byId = new Map(profile.nodes.map((n) => [n.id, n]));
const parent = new Map<number, number>();
for (const n of profile.nodes) for (const c of n.children ?? []) parent.set(c, n.id);

const selfUs = new Map<number, number>();
profile.samples.forEach((id, i) => selfUs.set(id, (selfUs.get(id) ?? 0) + (profile.timeDeltas[i] ?? 0)));
const total = [...selfUs.values()].reduce((a, b) => a + b, 0);
const label = (n: Node) => `${n.callFrame.functionName || '(anonymous)'} ${n.callFrame.url.replace(/^.*\/(node_modules\/|dist\/|node:)/, '$1')}:${n.callFrame.lineNumber + 1}`;

const self = new Map<string, number>();
for (const [id, us] of selfUs) {
  const key = label(byId.get(id)!);
  self.set(key, (self.get(key) ?? 0) + us);
}
// Inclusive: a sample counts once for each distinct matching function on its stack.
const inclusive = new Map<string, number>();
for (const [id, us] of selfUs) {
  const seen = new Set<string>();
  for (let cur: number | undefined = id; cur !== undefined; cur = parent.get(cur)) {
    const n = byId.get(cur)!;
    if (pattern.test(n.callFrame.functionName)) seen.add(label(n));
  }
  for (const key of seen) inclusive.set(key, (inclusive.get(key) ?? 0) + us);
}
const pct = (us: number) => `${((100 * us) / total).toFixed(1).padStart(5)}%  ${(us / 1000).toFixed(0).padStart(6)} ms`;
const out: string[] = [`profile ${file}: ${(total / 1000).toFixed(0)} ms sampled over ${((profile.endTime - profile.startTime) / 1e6).toFixed(1)} s`, '', 'self time:'];
for (const [k, us] of [...self].sort((a, b) => b[1] - a[1]).slice(0, top)) out.push(`  ${pct(us)}  ${k}`);
out.push('', `inclusive time of functions matching ${pattern}:`);
for (const [k, us] of [...inclusive].sort((a, b) => b[1] - a[1]).slice(0, top)) out.push(`  ${pct(us)}  ${k}`);
const callersIndex = process.argv.indexOf('--callers');
if (callersIndex >= 0) {
  const name = process.argv[callersIndex + 1]!;
  const byCaller = new Map<string, number>();
  let inside = 0;
  for (const [id, us] of selfUs) {
    const stack: Node[] = [];
    for (let cur: number | undefined = id; cur !== undefined; cur = parent.get(cur)) stack.push(byId.get(cur)!);
    const at = stack.findIndex((n) => n.callFrame.functionName === name);
    if (at < 0) continue;
    inside += us;
    const ours = stack.slice(at + 1).filter((n) => /\/dist\//.test(n.callFrame.url) && !/node_modules/.test(n.callFrame.url)).slice(0, 3).map(label);
    const key = ours.length ? ours.join(' < ') : '(no feedmail frame: called from a microtask)';
    byCaller.set(key, (byCaller.get(key) ?? 0) + us);
  }
  out.push('', `time inside ${name} (${pct(inside).trim()}), by the nearest feedmail callers:`);
  for (const [k, us] of [...byCaller].sort((a, b) => b[1] - a[1]).slice(0, top)) out.push(`  ${pct(us)}  ${k}`);
}
process.stdout.write(`${out.join('\n')}\n`);
