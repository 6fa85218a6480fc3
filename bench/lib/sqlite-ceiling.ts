/**
 * The durability ceiling: a bare better-sqlite3 loop of N commits, each one INSERT of a
 * 20 KB row in its own transaction, WAL with synchronous=FULL (an fsync per commit), in a
 * fresh temporary directory on the same filesystem as the benchmarks' data directories.
 *
 *   node --import tsx bench/lib/sqlite-ceiling.ts <commits> <dir>   → prints JSON
 */
import fs from 'node:fs';
import path from 'node:path';
import Database from 'better-sqlite3';
import { percentile } from './http-load.js';

const commits = Number(process.argv[2] ?? 500);
const dir = fs.mkdtempSync(path.join(process.argv[3]!, 'sqlite-ceiling-'));
const db = new Database(path.join(dir, 'ceiling.db'));
db.pragma('journal_mode = WAL');
db.pragma('synchronous = FULL');
db.exec('CREATE TABLE t (id INTEGER PRIMARY KEY, body BLOB NOT NULL)');
const insert = db.prepare('INSERT INTO t (body) VALUES (?)');
const row = Buffer.alloc(20 * 1024, 'x');
const times: number[] = [];
const t0 = performance.now();
for (let i = 0; i < commits; i++) {
  const s = performance.now();
  db.transaction(() => insert.run(row))();
  times.push(performance.now() - s);
}
const seconds = (performance.now() - t0) / 1000;
const version = (db.prepare('SELECT sqlite_version() AS v').get() as { v: string }).v;
db.close();
fs.rmSync(dir, { recursive: true, force: true });
times.sort((a, b) => a - b);
process.stdout.write(`${JSON.stringify({ commits, seconds, perSecond: commits / seconds, p50: percentile(times, 50), p99: percentile(times, 99), sqlite: version })}\n`);
