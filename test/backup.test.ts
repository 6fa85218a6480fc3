/**
 * Backups that restore (issue 13): snapshots taken by `feedmail backup` while mail arrives,
 * to a directory and to an S3-compatible store (s3rver on 127.0.0.1), restored by
 * `feedmail restore` into a deleted data directory, give back the same feed documents;
 * damage is found and refused; restore refuses to run beside a server; replay brings back
 * mail received after a snapshot exactly once; scheduled backups keep what retention says.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import fs from 'node:fs';
import { createRequire } from 'node:module';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { openTarget } from '../src/ops/backup-target.js';
import { listSnapshots, snapshotName, snapshotTime } from '../src/ops/backup.js';
import { TestClock } from './support/clock.js';
import { createFeed, postgresOnly, sendRaw, sqliteOnlySuite, startTestServer, tempDir, testDatabaseEnv, waitFor, type CreatedFeed, type TestServer } from './support/helpers.js';

interface S3rverInstance {
  run(): Promise<AddressInfo>;
  close(): Promise<void>;
}
const S3rver = createRequire(import.meta.url)('s3rver') as new (options: Record<string, unknown>) => S3rverInstance;

/** Feed documents carry absolute links: one public URL keeps them identical across restarts on new ports. */
const PUBLIC = 'http://feeds.example.test';

let s3: S3rverInstance;
let s3Endpoint = '';

before(async () => {
  s3 = new S3rver({ port: 0, address: '127.0.0.1', silent: true, directory: tempDir('feedmail-s3rver-'), configureBuckets: [{ name: 'backups' }] });
  const address = await s3.run();
  s3Endpoint = `http://127.0.0.1:${address.port}`;
});

after(async () => {
  await s3.close();
});

function s3Settings() {
  return { s3Endpoint, s3Region: 'us-east-1', s3AccessKeyId: 'S3RVER', s3SecretAccessKey: 'S3RVER', s3ForcePathStyle: true };
}

interface CliResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs the feedmail CLI as a user would, without blocking this process (an in-process server keeps serving). */
async function cli(args: string[], dataDir: string, env: NodeJS.ProcessEnv = {}): Promise<CliResult> {
  const database = await testDatabaseEnv(dataDir);
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', 'src/cli.ts', ...args], {
      env: {
        ...process.env, FEEDMAIL_DATA_DIR: dataDir, FEEDMAIL_ALLOW_UNSAFE_STORAGE: 'true', FEEDMAIL_MIN_FREE_BYTES: '0', FEEDMAIL_LOG_LEVEL: 'warn',
        FEEDMAIL_S3_ENDPOINT: s3Endpoint, FEEDMAIL_S3_ACCESS_KEY_ID: 'S3RVER', FEEDMAIL_S3_SECRET_ACCESS_KEY: 'S3RVER', FEEDMAIL_S3_FORCE_PATH_STYLE: 'true',
        ...database, ...env,
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (c: string) => { stdout += c; });
    child.stderr.setEncoding('utf8').on('data', (c: string) => { stderr += c; });
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}

function startServer(dataDir: string, overrides: Parameters<typeof startTestServer>[0] = {}, clock?: TestClock): Promise<TestServer> {
  return startTestServer({ dataDir, baseUrl: PUBLIC, feedMaxEntries: '200', ...overrides }, undefined, { clock });
}

/** A data directory with the databases a first start creates. */
async function populatedDataDir(): Promise<string> {
  const server = await startServer(tempDir());
  await server.stop();
  return server.dataDir;
}

/** A feed URL as the server prints it, fetched from where this test's server listens. */
function local(server: TestServer, url: string): string {
  return url.replace(PUBLIC, server.base);
}

function newsletter(i: number): string {
  return `From: Weekly <news@example.com>\r\nTo: reader@example.net\r\nSubject: Issue ${i}\r\nMessage-ID: <issue-${i}@example.com>\r\nContent-Type: text/html; charset=utf-8\r\n\r\n<p>Issue <b>${i}</b> of the weekly.</p>\r\n`;
}

/**
 * Sends issues from `from` on to every feed, three at a time, up to `to` or, with `until`,
 * for as long as it says; returns when each was acknowledged (250).
 */
async function sendIssues(server: TestServer, feeds: CreatedFeed[], from: number, to: number, until?: () => boolean): Promise<Map<number, number>> {
  const acked = new Map<number, number>();
  let next = from;
  await Promise.all(Array.from({ length: 3 }, async () => {
    while (next < to && (until?.() ?? true)) {
      const i = next++;
      await sendRaw(server.smtpPort, feeds.map((f) => f.address), newsletter(i));
      acked.set(i, Date.now());
      // A steady trickle rather than a flood: the feeds show at most FEEDMAIL_FEED_MAX_ENTRIES.
      if (until) await new Promise((r) => setTimeout(r, 100));
    }
  }));
  return acked;
}

async function titles(server: TestServer, feed: CreatedFeed): Promise<string[]> {
  const res = await fetch(local(server, feed.feeds.json));
  assert.equal(res.status, 200);
  return ((await res.json()) as { items: { title: string }[] }).items.map((i) => i.title).sort();
}

async function waitForTitles(server: TestServer, feed: CreatedFeed, count: number): Promise<string[]> {
  return waitFor(async () => {
    const t = await titles(server, feed);
    return t.length >= count ? t : undefined;
  }, 30_000, `${count} entries`);
}

async function documents(server: TestServer, feeds: CreatedFeed[]): Promise<string[]> {
  const out: string[] = [];
  for (const f of feeds) {
    for (const url of [f.feeds.atom, f.feeds.rss, f.feeds.json]) {
      const res = await fetch(local(server, url));
      assert.equal(res.status, 200, url);
      out.push(await res.text());
    }
  }
  return out;
}

/** Waits until no mail waits to become an entry. */
async function drained(server: TestServer): Promise<void> {
  await waitFor(async () => {
    const q = await server.app.stores.queue.queueStats('ingest');
    return q.ready === 0 && q.claimed === 0;
  }, 30_000, 'the ingest queue to drain');
}

/** Snapshot names are per second: the next one must not share the last one's second. */
async function nextSecond(): Promise<void> {
  await new Promise((r) => setTimeout(r, 1100 - (Date.now() % 1000)));
}

describe('feedmail backup and restore', { skip: sqliteOnlySuite('snapshots, restores and Litestream copy the SQLite files; PostgreSQL is backed up with its own tools (below)') }, () => {
  it('backs up while mail arrives, to a directory and to S3, and a restore into a deleted data directory gives back identical feeds', async () => {
    const dataDir = path.join(tempDir(), 'data');
    const snapDir = tempDir('feedmail-snapshots-');
    const s3Url = 's3://backups/feedmail/prod';
    let server = await startServer(dataDir);
    try {
      const feeds = [await createFeed(server.base, 'One'), await createFeed(server.base, 'Two')];
      await sendIssues(server, feeds, 0, 6);
      await waitForTitles(server, feeds[1]!, 6);

      // Both backups run while newsletters keep arriving over SMTP, from before they start until they end.
      let backingUp = true;
      const backupStarted = Date.now();
      const sending = sendIssues(server, feeds, 6, 195, () => backingUp);
      const [toDir, toS3] = await Promise.all([cli(['backup', '--to', snapDir], dataDir), cli(['backup', '--to', s3Url], dataDir)]);
      backingUp = false;
      const acked = await sending;
      const total = 6 + acked.size;
      assert.equal(toDir.code, 0, toDir.stderr);
      assert.equal(toS3.code, 0, toS3.stderr);
      assert.match(toDir.stdout, /Stored snapshot \d{4}-\d{2}-\d{2}T\d{2}-\d{2}-\d{2}Z in /);
      assert.match(toS3.stdout, /in s3:\/\/backups\/feedmail\/prod at http:\/\/127\.0\.0\.1:\d+/);
      assert.ok(!toS3.stdout.includes('S3RVER') && !toS3.stderr.includes('S3RVER'), 'no credentials in the output');
      const inFlight = [...acked.entries()].filter(([, at]) => at < backupStarted).map(([i]) => i);

      const verified = await cli(['backup', 'verify', '--to', snapDir], dataDir);
      assert.equal(verified.code, 0, verified.stdout + verified.stderr);
      assert.match(verified.stdout, /app\.db: ok .*integrity_check ok, checksums match/);
      assert.match(verified.stdout, /queue\.db: ok /);
      assert.match(verified.stdout, /is sound/);

      // A quiet snapshot once every message is an entry: the one whose documents are compared.
      await waitForTitles(server, feeds[0]!, total);
      await drained(server);
      await nextSecond();
      const quiet = await cli(['backup', '--to', s3Url], dataDir);
      assert.equal(quiet.code, 0, quiet.stderr);
      const before = await documents(server, feeds);
      const listed = await cli(['backup', 'list', '--to', s3Url], dataDir);
      assert.equal(listed.code, 0, listed.stderr);
      assert.match(listed.stdout, /2 snapshot\(s\) in s3:\/\/backups\/feedmail\/prod/);
      const verifiedS3 = await cli(['backup', 'verify', '--to', s3Url], dataDir);
      assert.equal(verifiedS3.code, 0, verifiedS3.stdout);

      await server.stop();
      fs.rmSync(dataDir, { recursive: true, force: true });

      const restored = await cli(['restore', '--from', s3Url], dataDir);
      assert.equal(restored.code, 0, restored.stdout + restored.stderr);
      assert.match(restored.stdout, /Restored app\.db and queue\.db into /);
      server = await startServer(dataDir);
      assert.deepEqual(await documents(server, feeds), before, 'the feed documents are identical');
      for (const f of feeds) assert.equal((await titles(server, f)).length, total);

      // The snapshot taken while mail arrived restores too (over a data directory that has files).
      await server.stop();
      const fromDir = await cli(['restore', '--from', snapDir], dataDir);
      assert.equal(fromDir.code, 0, fromDir.stdout + fromDir.stderr);
      assert.match(fromDir.stdout, /Moved the previous files aside to .*pre-restore-[^:]*: .*app\.db/);
      server = await startServer(dataDir);
      await drained(server);
      const all = Array.from({ length: total }, (_, i) => `Issue ${i}`);
      for (const f of feeds) {
        const t = await titles(server, f);
        assert.equal(new Set(t).size, t.length, 'no entry twice');
        assert.ok(t.every((x) => all.includes(x)), 'nothing that was not sent');
        for (const i of [0, 1, 2, 3, 4, 5, ...inFlight]) assert.ok(t.includes(`Issue ${i}`), `Issue ${i}, acknowledged before the backup started, is there`);
      }
    } finally {
      await server.stop();
    }
  });

  it('finds a flipped byte and refuses to restore it, and refuses to restore beside a running server', async () => {
    const dataDir = tempDir();
    const snapDir = tempDir('feedmail-snapshots-');
    const damagedDir = tempDir('feedmail-damaged-');
    const server = await startServer(dataDir);
    let stopped = false;
    try {
      const feed = await createFeed(server.base, 'Flip');
      await sendIssues(server, [feed], 0, 3);
      await waitForTitles(server, feed, 3);
      const backup = await cli(['backup', '--to', snapDir], dataDir);
      assert.equal(backup.code, 0, backup.stderr);
      const [snapshot] = await listSnapshots(openTarget(snapDir, s3Settings()));
      assert.ok(snapshot);

      const beside = await cli(['restore', '--from', snapDir], dataDir);
      assert.equal(beside.code, 1);
      assert.match(beside.stderr, /restore refused: a feedmail server or worker is using /);
      assert.deepEqual(fs.readdirSync(dataDir).filter((n) => n.startsWith('pre-restore')), [], 'nothing was moved');
      assert.equal((await titles(server, feed)).length, 3, 'the server kept serving');

      fs.cpSync(path.join(snapDir, snapshot), path.join(damagedDir, snapshot), { recursive: true });
      const gz = path.join(damagedDir, snapshot, 'app.db.gz');
      const bytes = fs.readFileSync(gz);
      bytes[Math.floor(bytes.length / 2)]! ^= 0x01;
      fs.writeFileSync(gz, bytes);

      const good = await cli(['backup', 'verify', snapshot, '--to', snapDir], dataDir);
      assert.equal(good.code, 0, good.stdout);
      const bad = await cli(['backup', 'verify', snapshot, '--to', damagedDir], dataDir);
      assert.equal(bad.code, 1, bad.stdout);
      assert.match(bad.stdout, /PROBLEM app\.db\.gz: checksum does not match the manifest/);
      assert.match(bad.stdout, /queue\.db: ok/);
      assert.match(bad.stdout, /is damaged: do not restore it/);

      // A manifest that is not one: the snapshot cannot be checked, so it is refused too.
      fs.writeFileSync(path.join(damagedDir, snapshot, 'manifest.json'), '{"format": 1, "files": [');
      const unreadable = await cli(['backup', 'verify', '--to', damagedDir], dataDir);
      assert.equal(unreadable.code, 1, unreadable.stdout);
      assert.match(unreadable.stdout, /PROBLEM .*manifest\.json is not valid JSON/);
      fs.cpSync(path.join(snapDir, snapshot, 'manifest.json'), path.join(damagedDir, snapshot, 'manifest.json'));

      await server.stop();
      stopped = true;
      const appDb = createHash('sha256').update(fs.readFileSync(path.join(dataDir, 'app.db'))).digest('hex');
      const refused = await cli(['restore', '--from', damagedDir], dataDir);
      assert.equal(refused.code, 1);
      assert.match(refused.stderr, /failed verification; nothing was changed:\n\s+app\.db\.gz: checksum does not match/);
      assert.equal(createHash('sha256').update(fs.readFileSync(path.join(dataDir, 'app.db'))).digest('hex'), appDb, 'app.db untouched');
      assert.deepEqual(fs.readdirSync(dataDir).filter((n) => n.startsWith('.') || n.startsWith('pre-restore')), [], 'no temporary files left');
    } finally {
      if (!stopped) await server.stop();
    }
  });

  it('replays the mail received after a snapshot exactly once when queue.db survived', async () => {
    const dataDir = tempDir();
    const snapDir = tempDir('feedmail-snapshots-');
    let server = await startServer(dataDir);
    try {
      const feed = await createFeed(server.base, 'Replay');
      await sendIssues(server, [feed], 0, 4);
      await waitForTitles(server, feed, 4);
      const backup = await cli(['backup', '--to', snapDir], dataDir);
      assert.equal(backup.code, 0, backup.stderr);
      const snapshot = /Stored snapshot (\S+) /.exec(backup.stdout)![1]!;
      await nextSecond();
      await sendIssues(server, [feed], 4, 9);
      await waitForTitles(server, feed, 9);
      await server.stop();

      // app.db is lost; queue.db, with the journal, survived.
      const restored = await cli(['restore', '--from', snapDir, '--only', 'app.db'], dataDir);
      assert.equal(restored.code, 0, restored.stdout + restored.stderr);
      assert.match(restored.stdout, new RegExp(`Run "feedmail replay --since ${snapshot}"`));
      const replay = await cli(['replay', '--since', snapshot], dataDir);
      assert.equal(replay.code, 0, replay.stderr);
      assert.match(replay.stdout, /Replayed 5 message\(s\) received since .*: 5 new entries stored, 0 message\(s\) already stored/);
      const again = await cli(['replay', '--since', snapshot], dataDir);
      assert.equal(again.code, 0, again.stderr);
      assert.match(again.stdout, /: 0 new entries stored, 5 message\(s\) already stored/);

      server = await startServer(dataDir);
      assert.deepEqual(await titles(server, feed), Array.from({ length: 9 }, (_, i) => `Issue ${i}`).sort());
    } finally {
      await server.stop();
    }
  });

  it('takes scheduled backups with retention, and /readyz reports their age', async () => {
    const dataDir = tempDir();
    const snapDir = tempDir('feedmail-snapshots-');
    const clock = new TestClock();
    const server = await startServer(dataDir, { backupTo: snapDir, backupEveryMs: '1h', backupKeepHourly: '2', backupKeepDaily: '1' }, clock);
    const target = openTarget(snapDir, s3Settings());
    try {
      const runner = server.app.runner!;
      const taken: string[] = [];
      for (const hours of [0, 1, 2, 3]) {
        clock.offsetMs = hours * 3600_000;
        await runner.scheduleRecurring();
        const expected = clock.now();
        const name = await waitFor(async () => (await listSnapshots(target)).find((n) => Math.abs(snapshotTime(n)! - expected) < 60_000), 20_000, `the backup at +${hours} h`);
        taken.push(name);
      }
      await waitFor(async () => (await listSnapshots(target)).length === 2, 10_000, 'retention');
      assert.deepEqual(await listSnapshots(target), taken.slice(2), 'the newest snapshot of each of the 2 newest hours is kept');

      let ready = await fetch(`${server.base}/readyz`);
      let body = (await ready.json()) as { ok: boolean; checks: Record<string, string> };
      assert.equal(ready.status, 200, JSON.stringify(body));
      assert.match(body.checks.backup!, new RegExp(`^last ${taken[3]}, \\d+ s ago$`));

      await runner.stop();
      clock.offsetMs = (3 + 2) * 3600_000 + 60_000;
      ready = await fetch(`${server.base}/readyz`);
      body = (await ready.json()) as { ok: boolean; checks: Record<string, string> };
      assert.equal(ready.status, 503);
      assert.match(body.checks.backup!, /older than twice FEEDMAIL_BACKUP_EVERY/);
    } finally {
      await server.stop();
    }
  });

  it('keeps /readyz failing across a restart when no scheduled backup ever succeeded', async () => {
    const dataDir = tempDir();
    // A target that cannot be written: a directory below a regular file.
    const blocker = path.join(tempDir(), 'not-a-directory');
    fs.writeFileSync(blocker, '');
    const settings = { backupTo: path.join(blocker, 'snapshots'), backupEveryMs: '1h' };
    const first = await startServer(dataDir, settings);
    try {
      await first.app.runner!.scheduleRecurring();
    } finally {
      await first.stop();
    }
    // Restarted (a reload, an upgrade) more than two periods later, still with no successful backup.
    const clock = new TestClock();
    clock.offsetMs = 2 * 3600_000 + 60_000;
    const second = await startServer(dataDir, settings, clock);
    try {
      const ready = await fetch(`${second.base}/readyz`);
      const body = (await ready.json()) as { ok: boolean; checks: Record<string, string> };
      assert.equal(ready.status, 503, JSON.stringify(body));
      assert.match(body.checks.backup!, /^none yet \(backups are configured; the first scheduled backup was due \d+ s ago\) \(older than twice FEEDMAIL_BACKUP_EVERY: backups are failing/);
    } finally {
      await second.stop();
    }
  });

  it('uploads large files to S3 in parts and reads them back intact', async () => {
    const target = openTarget('s3://backups/multipart', s3Settings(), { multipartThresholdBytes: 1024 * 1024, partBytes: 5 * 1024 * 1024 });
    const dir = tempDir();
    const file = path.join(dir, 'big.bin');
    fs.writeFileSync(file, randomBytes(11 * 1024 * 1024 + 17));
    let sent = 0;
    const name = snapshotName(Date.now());
    await target.putFile(`${name}/big.bin`, file, (n) => { sent += n; });
    assert.equal(sent, fs.statSync(file).size);
    await target.putText(`${name}/manifest.json`, '{}');
    assert.ok(await target.getFile(`${name}/big.bin`, path.join(dir, 'back.bin')));
    assert.ok(fs.readFileSync(path.join(dir, 'back.bin')).equals(fs.readFileSync(file)));
    assert.deepEqual(await listSnapshots(target), [name]);
    await target.removeSnapshot(name);
    assert.deepEqual(await listSnapshots(target), []);
  });

  it('refuses to back up or replay a missing, empty or partial data directory, and creates nothing there', async () => {
    const backupDir = tempDir();
    const missing = path.join(tempDir(), 'typo');
    const empty = tempDir();
    for (const dataDir of [missing, empty]) {
      const backup = await cli(['backup', '--to', backupDir], dataDir);
      assert.equal(backup.code, 1, backup.stdout);
      assert.match(backup.stderr, /feedmail: backup refused: .* holds no feedmail data \(no app\.db or queue\.db\): check FEEDMAIL_DATA_DIR/);
      const replay = await cli(['replay', '--since', '2026-01-01T00:00:00Z'], dataDir);
      assert.equal(replay.code, 1, replay.stdout);
      assert.match(replay.stderr, /feedmail: replay refused: .* holds no feedmail data/);
    }
    assert.ok(!fs.existsSync(missing), 'the mistyped directory is not created');
    assert.deepEqual(fs.readdirSync(empty), [], 'no database is created in the empty directory');
    assert.deepEqual(fs.readdirSync(backupDir), [], 'no snapshot is stored');

    // queue.db without app.db: backup, replay and serve refuse, and no empty app.db appears.
    const partial = await populatedDataDir();
    fs.rmSync(path.join(partial, 'app.db'));
    const backup = await cli(['backup', '--to', backupDir], partial);
    assert.equal(backup.code, 1);
    assert.match(backup.stderr, /is incomplete: app\.db missing beside queue\.db/);
    const serve = await cli(['serve', '--http-port', '0', '--smtp-port', '0'], partial);
    assert.notEqual(serve.code, 0);
    assert.match(serve.stderr, /refusing to start: .* is incomplete: app\.db missing beside queue\.db, and starting would create an empty app\.db\. Restore the data directory with "feedmail restore"/);
    await assert.rejects(startServer(partial), /app\.db missing beside queue\.db/);
    assert.ok(!fs.existsSync(path.join(partial, 'app.db')), 'no empty app.db is created');
    assert.deepEqual(fs.readdirSync(backupDir), []);
  });

  it('says in one line when the S3 store refuses, without credentials', async () => {
    const r = await cli(['backup', '--to', 's3://no-such-bucket/feedmail'], await populatedDataDir());
    assert.equal(r.code, 1);
    assert.match(r.stderr, /feedmail: backup failed: the S3 store answered 404 \(NoSuchBucket: /);
    assert.ok(!r.stderr.includes('S3RVER'), 'no credentials in the message');
  });

  it('refuses an endpoint with credentials in it without printing them, takes --to by the settings\' rule, and says in one line when S3 credentials are missing', async () => {
    const dataDir = tempDir();
    const withUserinfo = await cli(['backup', 'list', '--to', 's3://backups/fm'], dataDir, { FEEDMAIL_S3_ENDPOINT: 'http://admin:ENDPOINTPASS@127.0.0.1:4569' });
    assert.notEqual(withUserinfo.code, 0);
    assert.match(withUserinfo.stderr, /FEEDMAIL_S3_ENDPOINT.*without a user or password/);
    assert.ok(!`${withUserinfo.stdout}${withUserinfo.stderr}`.includes('ENDPOINTPASS'), 'the password is not printed');

    const shortBucket = await cli(['backup', 'list', '--to', 's3://b/fm'], dataDir);
    assert.equal(shortBucket.code, 2);
    assert.match(shortBucket.stderr, /--to must be s3:\/\/bucket or s3:\/\/bucket\/prefix, with a valid bucket name/);
    const shortFrom = await cli(['restore', '--from', 's3://b/fm'], dataDir);
    assert.equal(shortFrom.code, 2);
    assert.match(shortFrom.stderr, /--from must be s3:\/\/bucket/);

    const noCredentials = await cli(['backup', 'list', '--to', 's3://backups/fm'], dataDir, {
      FEEDMAIL_S3_ACCESS_KEY_ID: '', FEEDMAIL_S3_SECRET_ACCESS_KEY: '', AWS_ACCESS_KEY_ID: '', AWS_SECRET_ACCESS_KEY: '', AWS_PROFILE: '',
      AWS_SHARED_CREDENTIALS_FILE: path.join(dataDir, 'none'), AWS_CONFIG_FILE: path.join(dataDir, 'none'), AWS_EC2_METADATA_DISABLED: 'true',
    });
    assert.equal(noCredentials.code, 1);
    // (The AWS SDK may print its own Node.js version notice before.)
    assert.match(noCredentials.stderr, /^feedmail: backup failed: no S3 credentials: set FEEDMAIL_S3_ACCESS_KEY_ID and FEEDMAIL_S3_SECRET_ACCESS_KEY.*\n$/m);
    assert.doesNotMatch(noCredentials.stderr, /CredentialsProviderError|^\s+at /m, 'no stack trace');
  });

  it('writes a litestream.yml for app.db and queue.db without credentials', async () => {
    const dataDir = tempDir();
    const out = path.join(tempDir(), 'litestream.yml');
    const r = await cli(['litestream-config', '--to', 's3://backups/litestream', '--out', out], dataDir);
    assert.equal(r.code, 0, r.stderr);
    const yml = fs.readFileSync(out, 'utf8');
    assert.ok(yml.includes(`path: ${JSON.stringify(path.join(dataDir, 'app.db'))}`));
    assert.ok(yml.includes(`path: ${JSON.stringify(path.join(dataDir, 'queue.db'))}`));
    assert.ok(!yml.includes('cache.db"'), 'cache.db is not replicated');
    assert.ok(yml.includes('path: "litestream/queue.db"'));
    assert.ok(yml.includes('force-path-style: true'));
    assert.ok(yml.includes('secret-access-key: ${FEEDMAIL_S3_SECRET_ACCESS_KEY}') && !yml.includes('S3RVER'), 'credentials by reference only');
    const again = await cli(['litestream-config', '--to', 's3://backups/litestream', '--out', out], dataDir);
    assert.equal(again.code, 2);
    assert.match(again.stderr, /exists; pass --force/);
  });
});

describe('feedmail backup and restore on PostgreSQL', () => {
  it('explain that PostgreSQL backs the data up (pg_dump, base backups) and exit 1', async (t) => {
    if (postgresOnly(t, 'FEEDMAIL_DATABASE_URL set')) return;
    const dataDir = tempDir();
    for (const args of [['backup'], ['restore', '--from', tempDir()]]) {
      const r = await cli(args, dataDir);
      assert.equal(r.code, 1, r.stderr);
      assert.match(r.stdout, /FEEDMAIL_DATABASE_URL is set: .* in PostgreSQL/);
      assert.match(r.stdout, /pg_dump --format=custom --file=feedmail\.dump "\$FEEDMAIL_DATABASE_URL"/);
      assert.match(r.stdout, /pg_restore /);
      assert.doesNotMatch(r.stdout + r.stderr, /postgres:\/\/postgres@/, 'the URL itself is not printed');
    }
  });
});
