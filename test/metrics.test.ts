/**
 * /metrics as Prometheus reads it: parsed by the Prometheus project's own Python parser
 * (prometheus_client.parser, Debian's python3-prometheus-client), with today's counters and
 * gauges, prom-client's default process metrics and the four histograms, whose counts move
 * when mail arrives and feeds are read; no secret of a feed ever appears in it. With
 * --processes 2 the counters of both workers are summed.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import http from 'node:http';
import { after, before, test } from 'node:test';
import { createFeed, sendRaw, startTestServer, waitFor, waitForEntries, type TestServer } from './support/helpers.js';
import { startServeProcess } from './support/serve-process.js';

interface Sample { name: string; labels: Record<string, string>; value: number }
interface Family { name: string; type: string; samples: Sample[] }

const PARSER = `
import json, sys
from prometheus_client.parser import text_string_to_metric_families
# Values as text: NaN and +Inf are valid Prometheus values but not JSON.
families = [{"name": f.name, "type": f.type, "samples": [{"name": s.name, "labels": s.labels, "value": repr(s.value)} for s in f.samples]}
            for f in text_string_to_metric_families(sys.stdin.read())]
print(json.dumps(families))
`;

/** Parses the exposition text with prometheus_client; throws on anything it refuses. */
function parse(text: string): Map<string, Family> {
  const out = execFileSync('/usr/bin/python3', ['-c', PARSER], { input: text, encoding: 'utf8' });
  const families = JSON.parse(out) as (Omit<Family, 'samples'> & { samples: (Omit<Sample, 'value'> & { value: string })[] })[];
  return new Map(families.map((f) => [f.name, { ...f, samples: f.samples.map((s) => ({ ...s, value: Number(s.value.replace(/^(-?)inf$/, '$1Infinity')) })) }]));
}

async function scrape(base: string): Promise<{ text: string; families: Map<string, Family> }> {
  const res = await fetch(`${base}/metrics`);
  assert.equal(res.status, 200);
  assert.match(res.headers.get('content-type') ?? '', /^text\/plain; version=0\.0\.4/);
  const text = await res.text();
  return { text, families: parse(text) };
}

/** The sum of a histogram's _count samples whose labels include `labels`. */
function count(families: Map<string, Family>, histogram: string, labels: Record<string, string> = {}): number {
  const family = families.get(histogram);
  assert.ok(family, `${histogram} is exposed`);
  assert.equal(family.type, 'histogram', `${histogram} is a histogram`);
  return family.samples
    .filter((s) => s.name === `${histogram}_count` && Object.entries(labels).every(([k, v]) => s.labels[k] === v))
    .reduce((sum, s) => sum + s.value, 0);
}

function value(families: Map<string, Family>, name: string, sample = name): number | undefined {
  return families.get(name)?.samples.find((s) => s.name === sample)?.value;
}

/** A GET on a connection of its own (no keep-alive agent); resolves with the status. */
function getOnNewConnection(url: string): Promise<number> {
  return new Promise((resolve, reject) => {
    http.get(url, { agent: false }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode ?? 0));
    }).on('error', reject);
  });
}

const FEED_DOCUMENT_ROUTE = 'GET /feeds/:secret.(atom|rss|json)';

let server: TestServer;
before(async () => { server = await startTestServer(); });
after(() => server.stop());

test('/metrics parses as Prometheus text, keeps the metrics it had, adds the default process metrics', async () => {
  const { families } = await scrape(server.base);
  for (const [name, type] of [
    ['feedmail_jobs', 'gauge'], ['feedmail_queue_lag_seconds', 'gauge'], ['feedmail_wal_bytes', 'gauge'], ['feedmail_cache_bytes', 'gauge'],
    ['feedmail_jobs_succeeded', 'counter'], ['feedmail_smtp_messages_accepted', 'counter'], ['feedmail_http_requests', 'counter'],
    ['feedmail_smtp_inflight_bytes', 'gauge'], ['feedmail_render_threads', 'gauge'], ['feedmail_event_loop_delay_seconds', 'gauge'],
    ['feedmail_webhook_messages_accepted', 'counter'], ['feedmail_live_streams', 'gauge'], ['feedmail_live_polls', 'counter'],
    // prom-client's default metrics.
    ['process_cpu_user_seconds', 'counter'], ['process_resident_memory_bytes', 'gauge'], ['nodejs_heap_size_used_bytes', 'gauge'],
  ] as const) {
    // The parser names a counter family without its _total suffix.
    assert.equal(families.get(name)?.type, type, `${name} is a ${type}`);
  }
  for (const histogram of ['feedmail_http_request_duration_seconds', 'feedmail_smtp_transaction_duration_seconds', 'feedmail_mail_to_entry_seconds', 'feedmail_job_duration_seconds']) {
    assert.equal(families.get(histogram)?.type, 'histogram', `${histogram} is a histogram`);
  }
  const states = families.get('feedmail_jobs')!.samples.map((s) => s.labels.state).sort();
  assert.deepEqual(states, ['claimed', 'failed', 'ready']);
});

test('the histograms count mail as it arrives and feeds as they are read; no secret appears', async () => {
  const feed = await createFeed(server.base, 'Metrics');
  const before = (await scrape(server.base)).families;
  await sendRaw(server.smtpPort, feed.address, 'From: news@example.com\r\nSubject: Counted\r\n\r\nHello.\r\n');
  await waitForEntries(feed.feeds.atom, 'atom', 1);
  // The job is finished (and timed) just after the entry is visible.
  await waitFor(async () => count((await scrape(server.base)).families, 'feedmail_job_duration_seconds', { task: 'ingest' }) > count(before, 'feedmail_job_duration_seconds', { task: 'ingest' }), 5000, 'the ingest job to be timed');
  for (const format of ['atom', 'rss', 'json'] as const) assert.equal((await fetch(feed.feeds[format])).status, 200);
  const { text, families: afterwards } = await scrape(server.base);

  assert.equal(count(afterwards, 'feedmail_smtp_transaction_duration_seconds', { outcome: 'accepted' }) - count(before, 'feedmail_smtp_transaction_duration_seconds', { outcome: 'accepted' }), 1);
  assert.equal(count(afterwards, 'feedmail_mail_to_entry_seconds') - count(before, 'feedmail_mail_to_entry_seconds'), 1);
  assert.ok(count(afterwards, 'feedmail_http_request_duration_seconds', { route: FEED_DOCUMENT_ROUTE, status: '200' })
    >= count(before, 'feedmail_http_request_duration_seconds', { route: FEED_DOCUMENT_ROUTE, status: '200' }) + 3, 'the three feed reads are counted under the route pattern');
  assert.equal(value(afterwards, 'feedmail_smtp_messages_accepted', 'feedmail_smtp_messages_accepted_total'), 1);

  // The feed's secrets: its inbox address, feed URL and manage link.
  const secrets = [feed.address.split('@')[0]!, new URL(feed.feeds.atom).pathname.split('/')[2]!.replace(/\.atom$/, ''), new URL(feed.manage).pathname.split('/')[2]!];
  for (const secret of secrets) {
    assert.ok(secret.length >= 16, 'a secret was found to look for');
    assert.ok(!text.includes(secret), 'no secret in /metrics');
  }
  // Route labels are patterns: none is a path.
  for (const s of afterwards.get('feedmail_http_request_duration_seconds')!.samples) assert.match(s.labels.route!, /^(GET|POST) |^unmatched$/);
});

test('with --processes 2 the counters of both workers are summed', async () => {
  const cluster = await startServeProcess({ processes: 2 });
  try {
    const feed = await createFeed(cluster.base, 'Both');
    // A new connection per read: the primary hands connections to the workers in turn.
    for (let i = 0; i < 10; i++) assert.equal(await getOnNewConnection(feed.feeds.json), 200);
    const { families } = await scrape(cluster.base);
    assert.ok(count(families, 'feedmail_http_request_duration_seconds', { route: FEED_DOCUMENT_ROUTE }) >= 10, 'reads served by either worker are counted');
    // Database gauges are read by each worker from the same files: not summed.
    const states = families.get('feedmail_jobs')!.samples.map((s) => s.labels.state).sort();
    assert.deepEqual(states, ['claimed', 'failed', 'ready']);
  } finally {
    assert.equal(await cluster.stop(), 0);
  }
});

test('with --processes 2 the summed counters do not go down when the workers are replaced', async () => {
  const cluster = await startServeProcess({ processes: 2 });
  try {
    const feed = await createFeed(cluster.base, 'Replaced');
    for (let i = 0; i < 10; i++) assert.equal(await getOnNewConnection(feed.feeds.json), 200);
    const reads = (families: Map<string, Family>) => count(families, 'feedmail_http_request_duration_seconds', { route: FEED_DOCUMENT_ROUTE });
    const before = reads((await scrape(cluster.base)).families);
    assert.ok(before >= 10, `both workers' reads are counted (${before})`);

    const from = cluster.logs.length;
    process.kill(cluster.pid, 'SIGHUP');
    await cluster.waitForLog((l) => l.msg === 'cluster: rolling restart done', 120_000, from);
    const afterRoll = reads((await scrape(cluster.base)).families);
    assert.ok(afterRoll >= before, `the departed workers' reads still count after a rolling restart (${afterRoll} >= ${before})`);

    for (let i = 0; i < 4; i++) assert.equal(await getOnNewConnection(feed.feeds.json), 200);
    const more = reads((await scrape(cluster.base)).families);
    assert.ok(more >= afterRoll + 4, `new reads add to them (${more} >= ${afterRoll} + 4)`);
  } finally {
    assert.equal(await cluster.stop(), 0);
  }
});
