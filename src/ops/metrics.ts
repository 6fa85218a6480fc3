/**
 * /metrics in Prometheus text format, read from the counters the roles push into
 * (created once by the composition root) and from the stores. This module knows
 * nothing of the roles themselves: SMTP, web, the job runner and the process pool
 * each get their own section of the counters and keep it up to date.
 */
import type { IntervalHistogram } from 'node:perf_hooks';
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

export function createCounters(): Counters {
  return {
    smtp: {
      accepted: 0, rejectedRecipients: 0, feedFull: 0, blocked: 0, overDailyLimit: 0, tooLarge: 0, tempFailed: 0, inflightBytes: 0, inflightBytesPeak: 0,
      dataBytes: 0, inflightRefused: 0, dataDeadlineExceeded: 0, dataTooSlow: 0, messageStartTimedOut: 0, networkConnectionsRefused: 0,
    },
    http: { requests: 0, errors: 0, networkConnectionsRefused: 0, webhook: { accepted: 0, tempFailed: 0, blocked: 0, feedFull: 0, overDailyLimit: 0 }, imageProxy: { hits: 0, misses: 0, refused: 0 } },
    live: { openStreams: 0, eventsSent: 0, refused: 0, polls: 0 },
    jobs: { succeeded: 0, retried: 0, failed: 0 },
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

export async function renderMetrics(s: MetricSources): Promise<string> {
  const lines: string[] = [];
  const metric = (name: string, type: 'gauge' | 'counter', help: string, value: number, labels = '') => {
    if (!lines.some((l) => l.startsWith(`# HELP ${name} `))) lines.push(`# HELP ${name} ${help}`, `# TYPE ${name} ${type}`);
    lines.push(`${name}${labels} ${value}`);
  };
  const { smtp, http, jobs, process: processing } = s.counters;
  const q = await s.stores.queue.queueStats();
  for (const state of ['ready', 'claimed', 'failed'] as const) metric('feedmail_jobs', 'gauge', 'Jobs by state', q[state], `{state="${state}"}`);
  metric('feedmail_queue_lag_seconds', 'gauge', 'Age of the oldest due job not yet claimed', q.oldestReadyAgeMs / 1000);
  for (const h of [s.stores.app, s.stores.queue, s.stores.cache]) {
    const name = h.file.split('/').pop() ?? h.file;
    metric('feedmail_wal_bytes', 'gauge', 'Size of each WAL file', h.walBytes(), `{db="${name}"}`);
  }
  metric('feedmail_cache_bytes', 'gauge', 'Bytes of rendered documents in cache.db', await s.stores.cache.cacheBytes());
  metric('feedmail_image_cache_bytes', 'gauge', 'Bytes of images (and remembered failures) the image proxy keeps in cache.db', await s.stores.cache.imageCacheBytes());
  if (s.running.jobs) {
    metric('feedmail_jobs_succeeded_total', 'counter', 'Jobs finished by this process', jobs.succeeded);
    metric('feedmail_jobs_retried_total', 'counter', 'Job attempts that failed and will retry', jobs.retried);
    metric('feedmail_jobs_failed_total', 'counter', 'Jobs that failed for good', jobs.failed);
  }
  if (s.eventLoop) {
    // Since the previous scrape: how long timers and I/O callbacks waited for the event loop.
    metric('feedmail_event_loop_delay_seconds', 'gauge', 'Event-loop delay since the last scrape', s.eventLoop.percentile(99) / 1e9, '{quantile="0.99"}');
    metric('feedmail_event_loop_delay_seconds', 'gauge', 'Event-loop delay since the last scrape', s.eventLoop.max / 1e9, '{quantile="1"}');
    s.eventLoop.reset();
  }
  metric('feedmail_render_threads', 'gauge', 'Threads that parse, sanitize and redact mail', processing.threads());
  metric('feedmail_render_waiting', 'gauge', 'Messages waiting for a render thread', processing.waiting());
  metric('feedmail_render_messages_total', 'counter', 'Messages rendered', processing.processed);
  metric('feedmail_render_timeouts_total', 'counter', 'Renderings stopped at the processing time bound', processing.timedOut);
  if (s.running.smtp) {
    metric('feedmail_smtp_messages_accepted_total', 'counter', 'Messages journaled and acknowledged with 250', smtp.accepted);
    metric('feedmail_smtp_recipients_rejected_total', 'counter', 'Recipients refused with 550', smtp.rejectedRecipients);
    metric('feedmail_smtp_messages_too_large_total', 'counter', 'Messages refused with 552', smtp.tooLarge);
    metric('feedmail_smtp_temporary_failures_total', 'counter', 'Transactions deferred with 4xx', smtp.tempFailed);
    metric('feedmail_smtp_inflight_bytes', 'gauge', 'Message bytes held in memory by SMTP sessions now', smtp.inflightBytes);
    metric('feedmail_smtp_inflight_bytes_peak', 'gauge', 'Most message bytes held in memory at once since start', smtp.inflightBytesPeak);
    metric('feedmail_smtp_data_bytes_total', 'counter', 'Bytes received in DATA, kept or not', smtp.dataBytes);
    metric('feedmail_smtp_inflight_refused_total', 'counter', 'Messages deferred with 451 4.3.1 because the in-flight byte cap was reached', smtp.inflightRefused);
    metric('feedmail_smtp_data_deadline_exceeded_total', 'counter', 'Sessions closed with 421 because DATA ran past its deadline', smtp.dataDeadlineExceeded);
    metric('feedmail_smtp_data_too_slow_total', 'counter', 'Sessions closed with 421 because DATA was below the minimum rate', smtp.dataTooSlow);
    metric('feedmail_smtp_message_start_timeouts_total', 'counter', 'Sessions closed with 421 for not starting a message in time', smtp.messageStartTimedOut);
    metric('feedmail_smtp_network_connections_refused_total', 'counter', 'Connections refused because their network holds too many', smtp.networkConnectionsRefused);
    metric('feedmail_smtp_recipients_feed_full_total', 'counter', 'Recipients deferred with 452 4.2.2 because their feed is full', smtp.feedFull);
    metric('feedmail_smtp_recipients_blocked_total', 'counter', 'Recipients refused with 550 5.7.1 by their feed\'s sender rules', smtp.blocked);
    metric('feedmail_smtp_recipients_daily_limit_total', 'counter', 'Recipients deferred with 452 4.2.2 because their feed took its messages per day', smtp.overDailyLimit);
  }
  // /metrics is served by the web role, so its counters are always there.
  metric('feedmail_http_requests_total', 'counter', 'HTTP requests', http.requests);
  metric('feedmail_http_errors_total', 'counter', 'HTTP requests that failed with 500', http.errors);
  metric('feedmail_http_network_connections_refused_total', 'counter', 'Connections closed because their network holds too many', http.networkConnectionsRefused);
  metric('feedmail_webhook_messages_accepted_total', 'counter', 'Webhook deliveries journaled and acknowledged', http.webhook.accepted);
  metric('feedmail_webhook_messages_tempfailed_total', 'counter', 'Webhook deliveries that could not be journaled (the relay retries)', http.webhook.tempFailed);
  metric('feedmail_webhook_recipients_blocked_total', 'counter', 'Webhook recipients refused by their feed\'s sender rules', http.webhook.blocked);
  metric('feedmail_webhook_recipients_feed_full_total', 'counter', 'Webhook recipients deferred because their feed is full', http.webhook.feedFull);
  metric('feedmail_webhook_recipients_daily_limit_total', 'counter', 'Webhook recipients deferred because their feed took its messages per day', http.webhook.overDailyLimit);
  metric('feedmail_image_proxy_hits_total', 'counter', 'Image proxy answers from cache.db (images and remembered failures)', http.imageProxy.hits);
  metric('feedmail_image_proxy_misses_total', 'counter', 'Image proxy requests that needed a fetch', http.imageProxy.misses);
  metric('feedmail_image_proxy_refused_total', 'counter', 'Image proxy requests refused: bad signature, or no raster image to serve', http.imageProxy.refused);
  const { live } = s.counters;
  metric('feedmail_live_streams', 'gauge', 'Live-update streams (server-sent events) open now', live.openStreams);
  metric('feedmail_live_events_sent_total', 'counter', 'Entry events sent to live-update streams', live.eventsSent);
  metric('feedmail_live_streams_refused_total', 'counter', 'Live-update streams refused at the global or per-network cap', live.refused);
  metric('feedmail_live_polls_total', 'counter', 'Reads of new entry notifications (none while no stream is open)', live.polls);
  return `${lines.join('\n')}\n`;
}
