/**
 * `feedmail serve --processes N`: a primary process (node:cluster) that owns the HTTP and SMTP
 * listening sockets and runs N worker processes, each a whole `feedmail serve` (web, SMTP, jobs)
 * on the same data directory. Connections are handed to the workers in turn (cluster's
 * round-robin scheduling), for SMTP's net.Server as for HTTP.
 *
 * - Startup checks and migrations run once, here, before any worker starts.
 * - SIGHUP replaces the workers one at a time: a new one is started and waits until it is
 *   ready (its servers listen, its stores are open), then the old one drains: it stops
 *   accepting (new connections go to the others), finishes its HTTP requests and SMTP
 *   sessions and hands its jobs back, then exits. A worker that fails to become ready stops
 *   the rolling restart and the old workers stay.
 * - A worker that dies unexpectedly is replaced, after a delay that doubles with each death
 *   in the last minute (up to 30 s).
 * - SIGTERM / SIGINT drain every worker, then the primary exits.
 * - /metrics: the worker that receives the request asks the primary, which collects every
 *   ready worker's metrics and sums them (prom-client's AggregatorRegistry.aggregate). The
 *   sums of counters and histograms never go down: a worker that drains, exits or does not
 *   answer counts with the values it last reported, so a rolling restart or a dead worker is
 *   no counter reset for Prometheus (what a worker counted after its last scrape is lost).
 */
import cluster, { type Worker } from 'node:cluster';
import { AggregatorRegistry, type Registry } from 'prom-client';
import type { Config } from '../config.js';
import { preflight, type App } from '../app.js';
import type { Logger } from '../log.js';
import { openStores } from '../store/index.js';

/** The messages between the primary and its workers, besides node:cluster's own. */
type ClusterMessage =
  | { feedmail: 'ready' }
  | { feedmail: 'drain' }
  | { feedmail: 'metrics'; id: number }
  | { feedmail: 'metrics-text'; id: number; text?: string; error?: string }
  | { feedmail: 'collect'; id: number }
  | { feedmail: 'collected'; id: number; metrics?: MetricJson[]; error?: string };

/** One worker's metrics as getMetricsAsJSON() gives them, sent over IPC. */
type MetricJson = Awaited<ReturnType<Registry['getMetricsAsJSON']>>[number];

function isMessage(m: unknown): m is ClusterMessage {
  return typeof m === 'object' && m !== null && typeof (m as { feedmail?: unknown }).feedmail === 'string';
}

/** Longest wait for a new worker to become ready. */
const READY_TIMEOUT_MS = 60_000;
/** Longest wait for a draining worker to exit before it is killed. */
const DRAIN_TIMEOUT_MS = 60_000;
/** Longest wait for one worker's metrics; a worker that does not answer is left out of the scrape. */
const COLLECT_TIMEOUT_MS = 5_000;
const RESTART_DELAY_MS = 500;
const RESTART_DELAY_MAX_MS = 30_000;

// ---- In a worker ----

/**
 * In a cluster worker: /metrics asks the primary for every worker's metrics, and this worker
 * answers the primary's requests for its own. Outside a cluster: undefined (the registry answers).
 */
export function clusterWorkerMetrics(registry: Registry): (() => Promise<string>) | undefined {
  if (!cluster.isWorker) return undefined;
  const waiting = new Map<number, { resolve: (text: string) => void; reject: (err: Error) => void }>();
  let next = 0;
  process.on('message', (m: unknown) => {
    if (!isMessage(m)) return;
    if (m.feedmail === 'collect') {
      registry.getMetricsAsJSON().then(
        (metrics) => send({ feedmail: 'collected', id: m.id, metrics }),
        (err: unknown) => send({ feedmail: 'collected', id: m.id, error: String(err) }),
      );
    } else if (m.feedmail === 'metrics-text') {
      const w = waiting.get(m.id);
      waiting.delete(m.id);
      if (m.text !== undefined) w?.resolve(m.text);
      else w?.reject(new Error(`cluster: unable to collect metrics: ${m.error ?? 'unknown error'}`));
    }
  });
  return () => new Promise<string>((resolve, reject) => {
    const id = next++;
    const timer = setTimeout(() => {
      waiting.delete(id);
      reject(new Error('cluster: the primary did not answer for metrics'));
    }, COLLECT_TIMEOUT_MS * 2);
    waiting.set(id, {
      resolve: (text) => { clearTimeout(timer); resolve(text); },
      reject: (err) => { clearTimeout(timer); reject(err); },
    });
    send({ feedmail: 'metrics', id });
  });
}

function send(m: ClusterMessage): void {
  if (process.connected) process.send?.(m);
}

/**
 * In a cluster worker, once its app is started: tells the primary it is ready, drains
 * gracefully when told to (then exits 0), and ignores SIGHUP (meant for the primary; a
 * closed terminal sends it to the whole group). Outside a cluster: nothing.
 */
export function joinCluster(app: App, log: Logger): void {
  if (!cluster.isWorker) return;
  process.on('SIGHUP', () => undefined);
  let draining = false;
  process.on('message', (m: unknown) => {
    if (!isMessage(m) || m.feedmail !== 'drain' || draining) return;
    draining = true;
    log.info({ worker: cluster.worker?.id }, 'cluster: worker draining');
    app.stop({ graceful: true }).then(() => process.exit(0), (err: unknown) => {
      log.error({ err }, 'cluster: worker failed to drain');
      process.exit(1);
    });
  });
  send({ feedmail: 'ready' });
}

// ---- In the primary ----

interface Member {
  worker: Worker;
  state: 'starting' | 'ready' | 'draining';
  /**
   * Started by a rolling restart to take an old worker's place: until it is ready, its
   * failure is the roll's to handle (the old worker stays), not a crash to restart.
   */
  replacement: boolean;
  ready: Promise<void>;
  exited: Promise<void>;
}

/** Runs the primary of `serve --processes N`; resolves once the first N workers are ready. */
export async function runPrimary(config: Config, log: Logger): Promise<void> {
  preflight(config);
  // Migrations run once, here, before any worker opens the files.
  const stores = openStores(config.dataDir, { databaseUrl: config.databaseUrl, walMaxBytes: config.walMaxBytes });
  for (const h of [stores.app, stores.queue, stores.cache]) for (const warning of h.warnings) log.warn(warning);
  try {
    await stores.ready();
  } finally {
    await stores.close();
  }
  cluster.schedulingPolicy = cluster.SCHED_RR;
  const pool = new WorkerPool(config.processes, log);
  await pool.start();
  log.info({ processes: config.processes, pid: process.pid }, 'cluster: workers ready; SIGHUP restarts them one at a time');
  process.stderr.write(`feedmail is running with ${config.processes} worker processes (primary pid ${process.pid}); "kill -HUP ${process.pid}" restarts them one at a time\n`);
  process.on('SIGHUP', () => pool.roll());
  let stopping = false;
  const shutdown = (signal: string) => {
    if (stopping) return;
    stopping = true;
    log.info({ signal }, 'cluster: draining all workers');
    pool.stop().then(() => process.exit(0), (err: unknown) => {
      log.error({ err }, 'cluster: shutdown failed');
      process.exit(1);
    });
  };
  process.on('SIGTERM', () => shutdown('SIGTERM'));
  process.on('SIGINT', () => shutdown('SIGINT'));
}

class WorkerPool {
  readonly #members = new Set<Member>();
  #stopping = false;
  #rolling: Promise<void> | null = null;
  #rollAgain = false;
  /** Times of unexpected deaths in the last minute, for the restart delay. */
  #deaths: number[] = [];
  readonly #restartTimers = new Set<NodeJS.Timeout>();
  #nextCollect = 0;
  readonly #collecting = new Map<number, { pending: Set<number>; results: Map<number, MetricJson[]>; done: () => void }>();
  /** Each member's counters and histograms as it last reported them. */
  readonly #lastSeen = new Map<number, MetricJson[]>();
  /** The last reported counters and histograms of the workers that exited (folded now and then). */
  #departed: MetricJson[][] = [];
  #folding = false;

  constructor(private readonly size: number, private readonly log: Logger) {}

  /** Starts the workers; fails (stopping those started) when one cannot become ready. */
  async start(): Promise<void> {
    const first = Array.from({ length: this.size }, () => this.#fork());
    try {
      await Promise.all(first.map((m) => m.ready));
    } catch (err) {
      await this.stop();
      throw err;
    }
  }

  /** Replaces every worker, one at a time; a SIGHUP during a roll rolls again after it. */
  roll(): void {
    if (this.#stopping) return;
    if (this.#rolling) {
      this.#rollAgain = true;
      return;
    }
    this.#rolling = this.#rollAll().finally(() => { this.#rolling = null; });
  }

  async #rollAll(): Promise<void> {
    do {
      this.#rollAgain = false;
      const old = [...this.#members].filter((m) => m.state !== 'draining');
      this.log.info({ workers: old.length }, 'cluster: rolling restart');
      for (const m of old) {
        if (this.#stopping) return;
        // A worker that died meanwhile is replaced by #died, not here.
        if (!this.#members.has(m) || m.state === 'draining') continue;
        const fresh = this.#fork(true);
        try {
          await fresh.ready;
        } catch (err) {
          this.log.error({ err }, 'cluster: new worker did not become ready; rolling restart stopped, the running workers stay');
          await this.#drain(fresh);
          // An old worker that died while the new one was starting still needs its successor.
          if (this.#active() < this.size) this.#restartLater();
          return;
        }
        if (this.#members.has(m)) await this.#drain(m);
      }
      this.log.info('cluster: rolling restart done');
    } while (this.#rollAgain && !this.#stopping);
  }

  /** Drains every worker and waits for them to exit. */
  async stop(): Promise<void> {
    this.#stopping = true;
    for (const t of this.#restartTimers) clearTimeout(t);
    await Promise.all([...this.#members].map((m) => this.#drain(m)));
  }

  /** The workers that serve or are about to: every one not draining. */
  #active(): number {
    return [...this.#members].filter((m) => m.state !== 'draining').length;
  }

  #fork(replacement = false): Member {
    const worker = cluster.fork();
    let markReady!: () => void;
    let failReady!: (err: Error) => void;
    const ready = new Promise<void>((resolve, reject) => { markReady = resolve; failReady = reject; });
    // Only the caller that waits for readiness sees a failure; the exit handler deals with the rest.
    ready.catch(() => undefined);
    const readyTimer = setTimeout(() => failReady(new Error(`worker ${worker.id} was not ready within ${READY_TIMEOUT_MS / 1000} s`)), READY_TIMEOUT_MS);
    const member: Member = {
      worker, state: 'starting', replacement, ready,
      exited: new Promise<void>((resolve) => worker.once('exit', (code, signal) => {
        clearTimeout(readyTimer);
        failReady(new Error(`worker ${worker.id} exited (code ${code}, signal ${signal}) before it was ready`));
        this.#members.delete(member);
        this.#forget(worker.id);
        const last = this.#lastSeen.get(worker.id);
        this.#lastSeen.delete(worker.id);
        if (last) this.#departed.push(last);
        const failedReplacement = member.replacement && member.state === 'starting';
        if (member.state !== 'draining' && !failedReplacement && !this.#stopping) this.#died(worker, code, signal);
        resolve();
      })),
    };
    this.#members.add(member);
    worker.on('message', (m: unknown) => {
      if (!isMessage(m)) return;
      if (m.feedmail === 'ready') {
        clearTimeout(readyTimer);
        if (member.state === 'starting') member.state = 'ready';
        member.replacement = false;
        this.log.info({ worker: worker.id, workerPid: worker.process.pid }, 'cluster: worker ready');
        markReady();
      } else if (m.feedmail === 'metrics') {
        this.#clusterMetrics().then(
          (text) => safeSend(worker, { feedmail: 'metrics-text', id: m.id, text }),
          (err: unknown) => safeSend(worker, { feedmail: 'metrics-text', id: m.id, error: String(err) }),
        );
      } else if (m.feedmail === 'collected') {
        this.#collected(worker.id, m.id, m.metrics);
      }
    });
    return member;
  }

  async #drain(member: Member): Promise<void> {
    member.state = 'draining';
    if (!safeSend(member.worker, { feedmail: 'drain' })) member.worker.kill('SIGTERM');
    let timer: NodeJS.Timeout | undefined;
    const timedOut = await Promise.race([
      member.exited.then(() => false),
      new Promise<boolean>((resolve) => { timer = setTimeout(() => resolve(true), DRAIN_TIMEOUT_MS); }),
    ]);
    clearTimeout(timer);
    if (timedOut) {
      this.log.warn({ worker: member.worker.id }, 'cluster: worker did not drain in time; killing it');
      member.worker.kill('SIGKILL');
      await member.exited;
    }
  }

  #died(worker: Worker, code: number | null, signal: string | null): void {
    const now = Date.now();
    this.#deaths = this.#deaths.filter((t) => now - t < 60_000);
    this.#deaths.push(now);
    const delay = this.#restartLater();
    this.log.error({ worker: worker.id, workerPid: worker.process.pid, code, signal, restartInMs: delay }, 'cluster: worker died; starting another');
  }

  /**
   * Starts a worker after the restart delay if there are then fewer than N (a rolling
   * restart may have started one meanwhile): never more than N besides a roll's one new worker.
   */
  #restartLater(): number {
    const delay = Math.min(RESTART_DELAY_MAX_MS, RESTART_DELAY_MS * 2 ** Math.max(0, this.#deaths.length - 1));
    const timer = setTimeout(() => {
      this.#restartTimers.delete(timer);
      if (!this.#stopping && this.#active() < this.size) this.#fork();
    }, delay);
    this.#restartTimers.add(timer);
    return delay;
  }

  /**
   * Every ready worker's metrics, summed (gauges with their own aggregator: see ops/metrics.ts),
   * plus the last reported counters and histograms of the workers that did not answer
   * (draining, gone, or too slow), so the sums never go down.
   */
  async #clusterMetrics(): Promise<string> {
    await this.#foldDeparted();
    const id = this.#nextCollect++;
    const asked = [...this.#members].filter((m) => m.state === 'ready' && safeSend(m.worker, { feedmail: 'collect', id }));
    const results = await new Promise<Map<number, MetricJson[]>>((resolve) => {
      const results = new Map<number, MetricJson[]>();
      const pending = new Set(asked.map((m) => m.worker.id));
      const timer = setTimeout(() => finish(), COLLECT_TIMEOUT_MS);
      const finish = () => {
        clearTimeout(timer);
        this.#collecting.delete(id);
        resolve(results);
      };
      this.#collecting.set(id, { pending, results, done: finish });
      if (pending.size === 0) finish();
    });
    const stale = [...this.#lastSeen].filter(([workerId]) => !results.has(workerId)).map(([, m]) => m);
    return AggregatorRegistry.aggregate([...results.values(), ...stale, ...this.#departed]).metrics();
  }

  /** Sums the departed workers' counters into one set, so they take no more room as workers come and go. */
  async #foldDeparted(): Promise<void> {
    if (this.#departed.length < 2 || this.#folding) return;
    this.#folding = true;
    try {
      const folding = this.#departed.length;
      const sum = monotonic(await AggregatorRegistry.aggregate(this.#departed.slice(0, folding)).getMetricsAsJSON());
      this.#departed.splice(0, folding, sum);
    } finally {
      this.#folding = false;
    }
  }

  #collected(workerId: number, id: number, metrics: MetricJson[] | undefined): void {
    const c = this.#collecting.get(id);
    if (!c || !c.pending.delete(workerId)) return;
    if (metrics) {
      c.results.set(workerId, metrics);
      if ([...this.#members].some((m) => m.worker.id === workerId)) this.#lastSeen.set(workerId, monotonic(metrics));
    }
    if (c.pending.size === 0) c.done();
  }

  /** A worker that exited answers no collection it was asked for. */
  #forget(workerId: number): void {
    for (const c of this.#collecting.values()) {
      if (c.pending.delete(workerId) && c.pending.size === 0) c.done();
    }
  }
}

/** The metrics whose sums only grow (counters and histograms); gauges of a worker that is gone mean nothing. */
function monotonic(metrics: MetricJson[]): MetricJson[] {
  return metrics.filter((m) => String(m.type) === 'counter' || String(m.type) === 'histogram');
}

function safeSend(worker: Worker, m: ClusterMessage): boolean {
  if (!worker.isConnected()) return false;
  try {
    worker.send(m);
    return true;
  } catch {
    return false;
  }
}
