/**
 * Composition root: opens the stores, starts the roles this process has (web,
 * SMTP, jobs) and shuts them down in order: stop taking new work, finish or
 * hand back what is in flight, then close the databases.
 */
import type { AddressInfo } from 'node:net';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import type { Config } from './config.js';
import { allTasks } from './jobs/tasks/index.js';
import type { TaskDefinition } from './jobs/task.js';
import { JobRunner } from './jobs/runner.js';
import type { Logger } from './log.js';
import { processPoolFor } from './mail/process-pool.js';
import { FeedmailSmtpServer } from './mail/smtp.js';
import { StartupError } from './errors.js';
import { startDataProblem } from './ops/data-dir.js';
import { spaceGuardFor, unsafeStorageReason } from './ops/storage-guard.js';
import { createCounters, createMetricsRegistry, type Counters } from './ops/metrics.js';
import { clusterWorkerMetrics } from './ops/cluster.js';
import { readiness } from './ops/readiness.js';
import { openStores, type Clock, type Stores } from './store/index.js';
import { holdDataDirShared } from './store/backup.js';
import { INGEST_PRIORITY } from './store/journal.js';
import { imageSignerFor } from './web/image-proxy.js';
import { publicBaseUrl } from './web/urls.js';
import { LiveHub } from './web/live.js';
import { connectionsPerNetwork, WebServer } from './web/server.js';

/**
 * How long a gracefully stopping process lets open connections carry on: busy HTTP keep-alive
 * connections (see WebServer.close) and SMTP sessions (see FeedmailSmtpServer.close).
 */
const GRACEFUL_HTTP_CLOSE_MS = 2_000;
const GRACEFUL_SMTP_CLOSE_MS = 5_000;

export interface Roles {
  web: boolean;
  smtp: boolean;
  jobs: boolean;
}

export interface App {
  config: Config;
  stores: Stores;
  runner: JobRunner | null;
  /** What this process's roles count, as /metrics shows it. */
  counters: Counters;
  http?: AddressInfo;
  smtp?: AddressInfo;
  /**
   * Reads the SMTP STARTTLS certificate and key again (what SIGHUP does in a single
   * process); false when the new pair does not load and the old one stays in use.
   * Does nothing (true) when this process has no SMTP server or no TLS configured.
   */
  reloadCertificates(): boolean;
  /** `graceful`: a worker leaving a rolling restart lets open connections finish their work (ops/cluster.ts). */
  stop(options?: { graceful?: boolean }): Promise<void>;
}


/** Checks that must pass before anything opens or listens. */
export function preflight(config: Config): void {
  // With FEEDMAIL_DATABASE_URL the data directory holds no database: its filesystem and files do not matter.
  if (config.databaseUrl) return;
  if (!config.allowUnsafeStorage) {
    const reason = unsafeStorageReason(config.dataDir);
    if (reason) {
      throw new StartupError(`refusing to start: ${reason}. Put the data directory on a local persistent disk, `
        + 'or set FEEDMAIL_ALLOW_UNSAFE_STORAGE=true (--allow-unsafe-storage) if this is meant.');
    }
  }
  // queue.db without app.db (or the reverse) would start as a working but empty server.
  const partial = startDataProblem(config.dataDir);
  if (partial) throw new StartupError(partial);
}

export interface StartOptions {
  /** Tasks to run besides feedmail's own (tests add probes). */
  extraTasks?: TaskDefinition[];
  /** The stores' clock; tests pass one they can move to age rows. */
  clock?: Clock;
}

export async function startApp(config: Config, log: Logger, roles: Roles, { extraTasks = [], clock }: StartOptions = {}): Promise<App> {
  preflight(config);
  // Held while this process runs, so `feedmail restore` refuses to run beside it (store/backup.ts).
  const dirLock = holdDataDirShared(config.dataDir);
  if (!dirLock) throw new StartupError(`refusing to start: "feedmail restore" is restoring ${config.dataDir}; start again once it finished`);
  let stores: Stores;
  try {
    stores = openStores(config.dataDir, { databaseUrl: config.databaseUrl, walMaxBytes: config.walMaxBytes, clock });
  } catch (err) {
    dirLock.release();
    throw err;
  }
  try {
    // PostgreSQL connects and migrates here (SQLite already did, synchronously): refuse to start without it.
    await stores.ready();
  } catch (err) {
    await stores.close();
    dirLock.release();
    throw err;
  }
  const counters = createCounters();
  const startedAt = stores.queue.clock.now();
  const processor = processPoolFor(config, counters.process);
  for (const h of [stores.app, stores.queue, stores.cache]) for (const warning of h.warnings) log.warn(warning);
  const disk = spaceGuardFor(stores.dialect, config.dataDir, config.minFreeBytes);
  if (roles.smtp && !disk.hasSpace()) {
    log.warn({ freeBytes: disk.freeBytes(), minFreeBytes: config.minFreeBytes },
      'disk: free space is below FEEDMAIL_MIN_FREE_BYTES; mail will be deferred with 452 until space is freed or the minimum lowered');
  }
  const runner = roles.jobs && config.workerConcurrency > 0
    ? new JobRunner({ queue: stores.queue, tasks: [...allTasks({ stores, config, processor, log, space: disk, counters: counters.jobs }), ...extraTasks], concurrency: config.workerConcurrency, log, reserveOneSlotForPriority: INGEST_PRIORITY, counters: counters.jobs })
    : null;
  const onAccepted = () => runner?.notify();
  const eventLoop = monitorEventLoopDelay({ resolution: 10 });
  eventLoop.enable();
  let smtp: FeedmailSmtpServer | null = null;
  let web: WebServer | null = null;
  const app: App = {
    config, stores, runner, counters,
    reloadCertificates: () => smtp?.tls?.reload('reload requested') ?? true,
    async stop({ graceful = false } = {}) {
      // New work stops while running jobs finish or are handed back; then the files close.
      await Promise.all([smtp?.close(graceful ? GRACEFUL_SMTP_CLOSE_MS : 0), web?.close(graceful ? GRACEFUL_HTTP_CLOSE_MS : 0), runner?.stop()]);
      eventLoop.disable();
      await processor.close();
      await stores.close();
      dirLock.release();
    },
  };

  try {
    if (roles.smtp) {
      smtp = new FeedmailSmtpServer({ config, stores, log, counters: counters.smtp, onAccepted, space: disk });
      app.smtp = await smtp.listen(config.smtpPort, config.smtpHost);
    }
    if (roles.web) {
      const registry = createMetricsRegistry({ stores, counters, running: { smtp: roles.smtp, jobs: runner !== null }, eventLoop });
      // A worker of `serve --processes N` answers with the counters of all workers, summed by the primary.
      const metrics = clusterWorkerMetrics(registry) ?? (() => registry.metrics());
      // A network's streams may take half of its connections, so its pages still load.
      const live = new LiveHub({
        stores, counters: counters.live, log, maxStreams: config.sseMaxStreams,
        maxStreamsPerNetwork: Math.max(1, Math.floor(connectionsPerNetwork(config.httpMaxConnections) / 2)),
      });
      web = new WebServer({
        config, stores, log, counters: counters.http, space: disk, onAccepted, live, images: await imageSignerFor(stores.app, config),
        metrics,
        readiness: () => readiness(stores, disk, config.minFreeBytes, config.backupTo ? { everyMs: config.backupEveryMs, since: startedAt } : undefined),
      });
      // With port 0 the real port is known only once bound; every link is made from it.
      app.http = await web.listen(config.httpPort, config.httpHost, (bound) => publicBaseUrl(config.baseUrl, config.httpHost, bound.port));
    }
    if (runner) processor.warm();
    runner?.start();
  } catch (err) {
    // The start's own error is what the caller must see; a failure to stop is only logged.
    await app.stop().catch((stopErr: unknown) => log.warn({ err: stopErr }, 'app: unable to stop cleanly after a failed start'));
    throw err;
  }
  return app;
}
