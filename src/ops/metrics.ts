/**
 * /metrics in Prometheus text format (prom-client), read from the counters the roles push
 * into (created once by the composition root) and from the stores. This module knows
 * nothing of the roles themselves: SMTP, web, the job runner and the process pool each get
 * their own section of the counters and keep it up to date; the histograms are part of
 * those sections. With `serve --processes N` each worker has its own counters and the
 * primary sums them (ops/cluster.ts); gauges read from the shared databases are not summed.
 */
import type { IntervalHistogram } from 'node:perf_hooks';
import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry, type Aggregator } from 'prom-client';
import type { Stores } from '../store/index.js';

export interface SmtpCounters {
  /** Messages journaled and acknowledged with 250. */
  accepted: number;
  /** Recipients refused with 550. */
  rejectedRecipients: number;
  /** Recipients deferred with 452 4.2.2 because their feed is over its quota. */
  feedFull: number;
  /** Recipients refused with 550 5.7.1 by their feed's sender rules (at RCPT TO, or at the end of DATA by the From: header). */
  blocked: number;
  /** Recipients deferred with 452 4.2.2 because their feed took its messages per day. */
  overDailyLimit: number;
  /** Messages refused with 552. */
  tooLarge: number;
  /** Transactions deferred with 4xx. */
  tempFailed: number;
  /** Gauge: message bytes held in memory by all sessions now. */
  inflightBytes: number;
  /** Gauge: the most inflightBytes has been since start, to size FEEDMAIL_SMTP_MAX_INFLIGHT_BYTES. */
  inflightBytesPeak: number;
  /** Bytes read in DATA by all sessions, kept or thrown away. */
  dataBytes: number;
  /** Messages dropped and deferred with 451 4.3.1 because the in-flight cap was reached. */
  inflightRefused: number;
  /** Sessions closed with 421 because DATA ran past FEEDMAIL_SMTP_DATA_TIMEOUT_MS. */
  dataDeadlineExceeded: number;
  /** Sessions closed with 421 because DATA averaged below FEEDMAIL_SMTP_MIN_DATA_RATE. */
  dataTooSlow: number;
  /** Sessions closed with 421 because they started no message in time. */
  messageStartTimedOut: number;
  /** Connections refused with 421 because their network held its share of connections. */
  networkConnectionsRefused: number;
  /** Seconds from the start of DATA to the reply, by outcome: accepted (250), deferred (4xx), rejected (5xx). */
  transactionDuration: Histogram<'outcome'>;
}

export interface HttpCounters {
  requests: number;
  /** Requests that failed with 500. */
  errors: number;
  /** Connections closed on accept because their client network held its share already. */
  networkConnectionsRefused: number;
  /**
   * Webhook deliveries journaled (2xx), and those that could not be (the relay was told to retry);
   * recipients refused by their feed's sender rules, and deferred at their feed's quota or messages per day.
   */
  webhook: { accepted: number; tempFailed: number; blocked: number; feedFull: number; overDailyLimit: number };
  /** Seconds to answer, by the route's pattern (never the path: paths carry secrets) and status. */
  requestDuration: Histogram<'route' | 'status'>;
  /** The image proxy (web/routes/image.ts): answers from cache.db, fetches, and refusals (bad signature, or no image to serve). */
  imageProxy: { hits: number; misses: number; refused: number };
}

export interface JobCounters {
  /** Jobs finished by this process. */
  succeeded: number;
  /** Job attempts that failed and will run again. */
  retried: number;
  /** Jobs that failed for good. */
  failed: number;
  /** Seconds one run of a job took, by task, whatever its outcome. */
  duration: Histogram<'task'>;
  /** Seconds from a message's journaling (its 250) to its entry being stored, observed by the ingest job. */
  mailToEntry: Histogram;
}

export interface ProcessCounters {
  processed: number;
  /** Renderings stopped at the processing time bound. */
  timedOut: number;
  /** Gauge, read at each scrape from the pool that registers it: its threads. */
  threads: () => number;
  /** Gauge, read at each scrape from the pool that registers it: messages waiting for a thread. */
  waiting: () => number;
}

/** Live updates over server-sent events (web/live.ts). */
export interface LiveCounters {
  /** Gauge: streams open now. */
  openStreams: number;
  /** Entry events written to streams (a backlog sent on reconnection included). */
  eventsSent: number;
  /** Streams refused with 503 at the global or per-network cap. */
  refused: number;
  /** Queries of queue.db's notifications by the poller: flat while no stream is open. */
  polls: number;
}

/** Everything the roles of one process count, one section per role. */
export interface Counters {
  smtp: SmtpCounters;
  live: LiveCounters;
  http: HttpCounters;
  jobs: JobCounters;
  process: ProcessCounters;
}

/** Buckets in seconds: from a cached feed read (about a millisecond) to a slow job (a minute). */
const SECONDS_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60];

/** A histogram in no registry yet: the registry of the process that renders /metrics takes it in. */
function histogram<L extends string>(name: string, help: string, labelNames: readonly L[] = []): Histogram<L> {
  return new Histogram<L>({ name, help, labelNames, buckets: SECONDS_BUCKETS, registers: [] });
}

export function createCounters(): Counters {
  return {
    smtp: {
      accepted: 0, rejectedRecipients: 0, feedFull: 0, blocked: 0, overDailyLimit: 0, tooLarge: 0, tempFailed: 0, inflightBytes: 0, inflightBytesPeak: 0,
      dataBytes: 0, inflightRefused: 0, dataDeadlineExceeded: 0, dataTooSlow: 0, messageStartTimedOut: 0, networkConnectionsRefused: 0,
      transactionDuration: histogram('feedmail_smtp_transaction_duration_seconds', 'Time from the start of DATA to the reply, by outcome (accepted, deferred, rejected)', ['outcome']),
    },
    http: {
      requests: 0, errors: 0, networkConnectionsRefused: 0, webhook: { accepted: 0, tempFailed: 0, blocked: 0, feedFull: 0, overDailyLimit: 0 },
      imageProxy: { hits: 0, misses: 0, refused: 0 },
      requestDuration: histogram('feedmail_http_request_duration_seconds', 'Time to answer an HTTP request, by route pattern and status', ['route', 'status']),
    },
    live: { openStreams: 0, eventsSent: 0, refused: 0, polls: 0 },
    jobs: {
      succeeded: 0, retried: 0, failed: 0,
      duration: histogram('feedmail_job_duration_seconds', 'Time one run of a job took, by task', ['task']),
      mailToEntry: histogram('feedmail_mail_to_entry_seconds', 'Time from a message\'s 250 (its journaling) to its stored entry'),
    },
    process: { processed: 0, timedOut: 0, threads: () => 0, waiting: () => 0 },
  };
}

export interface MetricSources {
  stores: Stores;
  counters: Counters;
  /** A role's counters are shown only by a process that runs it. */
  running: { smtp: boolean; jobs: boolean };
  eventLoop?: IntervalHistogram;
}

/** What the databases say, read once per scrape however many gauges show it. */
interface DatabaseStats {
  queue: { ready: number; claimed: number; failed: number; oldestReadyAgeMs: number };
  walBytes: { db: string; bytes: number }[];
  cacheBytes: number;
  imageCacheBytes: number;
}

/**
 * The registry behind /metrics: today's counters and gauges (same names as before prom-client),
 * the histograms, and prom-client's default process metrics. Values pushed into `counters`
 * are read at each scrape. Aggregation across processes: counters and histograms are summed,
 * gauges read from the shared databases take the largest value (every process reads the same
 * rows), per-process gauges are summed or, for peaks and delays, take the largest.
 */
export function createMetricsRegistry(s: MetricSources): Registry {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry });
  const { smtp, http, jobs, live, process: processing } = s.counters;

  let reading: Promise<DatabaseStats> | undefined;
  const databaseStats = (): Promise<DatabaseStats> => {
    if (!reading) {
      reading = readDatabaseStats(s.stores);
      // Every collect of one scrape starts in the same turn and shares this reading.
      const forget = () => setImmediate(() => { reading = undefined; });
      reading.then(forget, forget);
    }
    return reading;
  };

  const counter = (name: string, help: string, read: () => number) => {
    new Counter({
      name, help, registers: [registry],
      collect() {
        this.reset();
        this.inc(read());
      },
    });
  };
  const gauge = (name: string, help: string, read: () => number, aggregator: Aggregator = 'sum') => {
    new Gauge({ name, help, registers: [registry], aggregator, collect() { this.set(read()); } });
  };

  new Gauge({
    name: 'feedmail_jobs', help: 'Jobs by state', labelNames: ['state'], registers: [registry], aggregator: 'max',
    async collect() {
      const q = (await databaseStats()).queue;
      for (const state of ['ready', 'claimed', 'failed'] as const) this.set({ state }, q[state]);
    },
  });
  new Gauge({
    name: 'feedmail_queue_lag_seconds', help: 'Age of the oldest due job not yet claimed', registers: [registry], aggregator: 'max',
    async collect() { this.set((await databaseStats()).queue.oldestReadyAgeMs / 1000); },
  });
  new Gauge({
    name: 'feedmail_wal_bytes', help: 'Size of each WAL file', labelNames: ['db'], registers: [registry], aggregator: 'max',
    async collect() { for (const w of (await databaseStats()).walBytes) this.set({ db: w.db }, w.bytes); },
  });
  new Gauge({
    name: 'feedmail_cache_bytes', help: 'Bytes of rendered documents in cache.db', registers: [registry], aggregator: 'max',
    async collect() { this.set((await databaseStats()).cacheBytes); },
  });
  new Gauge({
    name: 'feedmail_image_cache_bytes', help: 'Bytes of images (and remembered failures) the image proxy keeps in cache.db', registers: [registry], aggregator: 'max',
    async collect() { this.set((await databaseStats()).imageCacheBytes); },
  });
  if (s.running.jobs) {
    counter('feedmail_jobs_succeeded_total', 'Jobs finished by this process', () => jobs.succeeded);
    counter('feedmail_jobs_retried_total', 'Job attempts that failed and will retry', () => jobs.retried);
    counter('feedmail_jobs_failed_total', 'Jobs that failed for good', () => jobs.failed);
    registry.registerMetric(jobs.duration);
    registry.registerMetric(jobs.mailToEntry);
  }
  const eventLoop = s.eventLoop;
  if (eventLoop) {
    new Gauge({
      name: 'feedmail_event_loop_delay_seconds', help: 'Event-loop delay since the last scrape', labelNames: ['quantile'], registers: [registry], aggregator: 'max',
      collect() {
        // Since the previous scrape: how long timers and I/O callbacks waited for the event loop
        // (no sample yet, right after the previous scrape: 0 rather than NaN).
        const sampled = eventLoop.count > 0;
        this.set({ quantile: '0.99' }, sampled ? eventLoop.percentile(99) / 1e9 : 0);
        this.set({ quantile: '1' }, sampled ? eventLoop.max / 1e9 : 0);
        eventLoop.reset();
      },
    });
  }
  counter('feedmail_journal_commits_total', 'Durable commits of received mail to the journal (messages arriving together share one)', () => s.stores.queue.journalCommitStats().commits);
  counter('feedmail_journal_messages_total', 'Messages those journal commits held', () => s.stores.queue.journalCommitStats().messages);
  gauge('feedmail_render_threads', 'Threads that parse, sanitize and redact mail', () => processing.threads());
  gauge('feedmail_render_waiting', 'Messages waiting for a render thread', () => processing.waiting());
  counter('feedmail_render_messages_total', 'Messages rendered', () => processing.processed);
  counter('feedmail_render_timeouts_total', 'Renderings stopped at the processing time bound', () => processing.timedOut);
  if (s.running.smtp) {
    counter('feedmail_smtp_messages_accepted_total', 'Messages journaled and acknowledged with 250', () => smtp.accepted);
    counter('feedmail_smtp_recipients_rejected_total', 'Recipients refused with 550', () => smtp.rejectedRecipients);
    counter('feedmail_smtp_messages_too_large_total', 'Messages refused with 552', () => smtp.tooLarge);
    counter('feedmail_smtp_temporary_failures_total', 'Transactions deferred with 4xx', () => smtp.tempFailed);
    gauge('feedmail_smtp_inflight_bytes', 'Message bytes held in memory by SMTP sessions now', () => smtp.inflightBytes);
    gauge('feedmail_smtp_inflight_bytes_peak', 'Most message bytes held in memory at once since start', () => smtp.inflightBytesPeak, 'max');
    counter('feedmail_smtp_data_bytes_total', 'Bytes received in DATA, kept or not', () => smtp.dataBytes);
    counter('feedmail_smtp_inflight_refused_total', 'Messages deferred with 451 4.3.1 because the in-flight byte cap was reached', () => smtp.inflightRefused);
    counter('feedmail_smtp_data_deadline_exceeded_total', 'Sessions closed with 421 because DATA ran past its deadline', () => smtp.dataDeadlineExceeded);
    counter('feedmail_smtp_data_too_slow_total', 'Sessions closed with 421 because DATA was below the minimum rate', () => smtp.dataTooSlow);
    counter('feedmail_smtp_message_start_timeouts_total', 'Sessions closed with 421 for not starting a message in time', () => smtp.messageStartTimedOut);
    counter('feedmail_smtp_network_connections_refused_total', 'Connections refused because their network holds too many', () => smtp.networkConnectionsRefused);
    counter('feedmail_smtp_recipients_feed_full_total', 'Recipients deferred with 452 4.2.2 because their feed is full', () => smtp.feedFull);
    counter('feedmail_smtp_recipients_blocked_total', 'Recipients refused with 550 5.7.1 by their feed\'s sender rules', () => smtp.blocked);
    counter('feedmail_smtp_recipients_daily_limit_total', 'Recipients deferred with 452 4.2.2 because their feed took its messages per day', () => smtp.overDailyLimit);
    registry.registerMetric(smtp.transactionDuration);
  }
  // /metrics is served by the web role, so its counters are always there.
  counter('feedmail_http_requests_total', 'HTTP requests', () => http.requests);
  counter('feedmail_http_errors_total', 'HTTP requests that failed with 500', () => http.errors);
  counter('feedmail_http_network_connections_refused_total', 'Connections closed because their network holds too many', () => http.networkConnectionsRefused);
  registry.registerMetric(http.requestDuration);
  counter('feedmail_webhook_messages_accepted_total', 'Webhook deliveries journaled and acknowledged', () => http.webhook.accepted);
  counter('feedmail_webhook_messages_tempfailed_total', 'Webhook deliveries that could not be journaled (the relay retries)', () => http.webhook.tempFailed);
  counter('feedmail_webhook_recipients_blocked_total', 'Webhook recipients refused by their feed\'s sender rules', () => http.webhook.blocked);
  counter('feedmail_webhook_recipients_feed_full_total', 'Webhook recipients deferred because their feed is full', () => http.webhook.feedFull);
  counter('feedmail_webhook_recipients_daily_limit_total', 'Webhook recipients deferred because their feed took its messages per day', () => http.webhook.overDailyLimit);
  counter('feedmail_image_proxy_hits_total', 'Image proxy answers from cache.db (images and remembered failures)', () => http.imageProxy.hits);
  counter('feedmail_image_proxy_misses_total', 'Image proxy requests that needed a fetch', () => http.imageProxy.misses);
  counter('feedmail_image_proxy_refused_total', 'Image proxy requests refused: bad signature, or no raster image to serve', () => http.imageProxy.refused);
  gauge('feedmail_live_streams', 'Live-update streams (server-sent events) open now', () => live.openStreams);
  counter('feedmail_live_events_sent_total', 'Entry events sent to live-update streams', () => live.eventsSent);
  counter('feedmail_live_streams_refused_total', 'Live-update streams refused at the global or per-network cap', () => live.refused);
  counter('feedmail_live_polls_total', 'Reads of new entry notifications (none while no stream is open)', () => live.polls);
  return registry;
}

async function readDatabaseStats(stores: Stores): Promise<DatabaseStats> {
  return {
    queue: await stores.queue.queueStats(),
    walBytes: [stores.app, stores.queue, stores.cache].map((h) => ({ db: h.file.split('/').pop() ?? h.file, bytes: h.walBytes() })),
    cacheBytes: await stores.cache.cacheBytes(),
    imageCacheBytes: await stores.cache.imageCacheBytes(),
  };
}
