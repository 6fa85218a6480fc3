/** /metrics in Prometheus text format. */
import type { IntervalHistogram } from 'node:perf_hooks';
import type { JobRunner } from '../jobs/runner.js';
import type { RenderPool } from '../mail/render-pool.js';
import type { FeedmailSmtpServer } from '../mail/smtp.js';
import type { Stores } from '../store/index.js';
import type { WebServer } from '../web/server.js';

export interface MetricSources {
  stores: Stores;
  runner: JobRunner | null;
  renderer?: RenderPool;
  eventLoop?: IntervalHistogram;
  smtp: FeedmailSmtpServer | null;
  web: WebServer | null;
}

export async function renderMetrics(s: MetricSources): Promise<string> {
  const lines: string[] = [];
  const metric = (name: string, type: 'gauge' | 'counter', help: string, value: number, labels = '') => {
    if (!lines.some((l) => l.startsWith(`# HELP ${name} `))) lines.push(`# HELP ${name} ${help}`, `# TYPE ${name} ${type}`);
    lines.push(`${name}${labels} ${value}`);
  };
  const q = await s.stores.queue.queueStats();
  for (const state of ['ready', 'claimed', 'failed'] as const) metric('feedmail_jobs', 'gauge', 'Jobs by state', q[state], `{state="${state}"}`);
  metric('feedmail_queue_lag_seconds', 'gauge', 'Age of the oldest due job not yet claimed', q.oldestReadyAgeMs / 1000);
  for (const h of [s.stores.app, s.stores.queue, s.stores.cache]) {
    const name = h.file.split('/').pop() ?? h.file;
    metric('feedmail_wal_bytes', 'gauge', 'Size of each WAL file', h.walBytes(), `{db="${name}"}`);
  }
  metric('feedmail_cache_bytes', 'gauge', 'Bytes of rendered documents in cache.db', await s.stores.cache.cacheBytes());
  if (s.runner) {
    metric('feedmail_jobs_succeeded_total', 'counter', 'Jobs finished by this process', s.runner.stats.succeeded);
    metric('feedmail_jobs_retried_total', 'counter', 'Job attempts that failed and will retry', s.runner.stats.retried);
    metric('feedmail_jobs_failed_total', 'counter', 'Jobs that failed for good', s.runner.stats.failed);
  }
  if (s.eventLoop) {
    // Since the previous scrape: how long timers and I/O callbacks waited for the event loop.
    metric('feedmail_event_loop_delay_seconds', 'gauge', 'Event-loop delay since the last scrape', s.eventLoop.percentile(99) / 1e9, '{quantile="0.99"}');
    metric('feedmail_event_loop_delay_seconds', 'gauge', 'Event-loop delay since the last scrape', s.eventLoop.max / 1e9, '{quantile="1"}');
    s.eventLoop.reset();
  }
  if (s.renderer) {
    metric('feedmail_render_threads', 'gauge', 'Threads that parse, sanitize and redact mail', s.renderer.threads);
    metric('feedmail_render_waiting', 'gauge', 'Messages waiting for a render thread', s.renderer.waiting);
    metric('feedmail_render_messages_total', 'counter', 'Messages rendered', s.renderer.stats.rendered);
    metric('feedmail_render_timeouts_total', 'counter', 'Renderings stopped at the processing time bound', s.renderer.stats.timedOut);
  }
  if (s.smtp) {
    metric('feedmail_smtp_messages_accepted_total', 'counter', 'Messages journaled and acknowledged with 250', s.smtp.stats.accepted);
    metric('feedmail_smtp_recipients_rejected_total', 'counter', 'Recipients refused with 550', s.smtp.stats.rejectedRecipients);
    metric('feedmail_smtp_messages_too_large_total', 'counter', 'Messages refused with 552', s.smtp.stats.tooLarge);
    metric('feedmail_smtp_temporary_failures_total', 'counter', 'Transactions deferred with 4xx', s.smtp.stats.tempFailed);
    metric('feedmail_smtp_inflight_bytes', 'gauge', 'Message bytes held in memory by SMTP sessions now', s.smtp.stats.inflightBytes);
    metric('feedmail_smtp_inflight_bytes_peak', 'gauge', 'Most message bytes held in memory at once since start', s.smtp.stats.inflightBytesPeak);
    metric('feedmail_smtp_data_bytes_total', 'counter', 'Bytes received in DATA, kept or not', s.smtp.stats.dataBytes);
    metric('feedmail_smtp_inflight_refused_total', 'counter', 'Messages deferred with 451 4.3.1 because the in-flight byte cap was reached', s.smtp.stats.inflightRefused);
    metric('feedmail_smtp_data_deadline_exceeded_total', 'counter', 'Sessions closed with 421 because DATA ran past its deadline', s.smtp.stats.dataDeadlineExceeded);
    metric('feedmail_smtp_data_too_slow_total', 'counter', 'Sessions closed with 421 because DATA was below the minimum rate', s.smtp.stats.dataTooSlow);
    metric('feedmail_smtp_message_start_timeouts_total', 'counter', 'Sessions closed with 421 for not starting a message in time', s.smtp.stats.messageStartTimedOut);
    metric('feedmail_smtp_network_connections_refused_total', 'counter', 'Connections refused because their network holds too many', s.smtp.stats.networkConnectionsRefused);
    metric('feedmail_smtp_recipients_feed_full_total', 'counter', 'Recipients deferred with 452 4.2.2 because their feed is full', s.smtp.stats.feedFull);
  }
  if (s.web) {
    metric('feedmail_http_requests_total', 'counter', 'HTTP requests', s.web.stats.requests);
    metric('feedmail_http_errors_total', 'counter', 'HTTP requests that failed with 500', s.web.stats.errors);
    metric('feedmail_http_network_connections_refused_total', 'counter', 'Connections closed because their network holds too many', s.web.stats.networkConnectionsRefused);
  }
  return `${lines.join('\n')}\n`;
}
