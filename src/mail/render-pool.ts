/**
 * Runs message rendering (parse, sanitize, redact) in worker threads, one per
 * core by default, with a time bound per message. Each thread renders one
 * message at a time and each message's clock starts when a thread takes it, so
 * a slow message never eats into another's time, and while one thread is stuck
 * on a hostile message the others keep mail flowing.
 *
 * A message that takes too long gets its thread terminated (the only way to stop
 * runaway synchronous code) and is rendered again in the cheap fallback mode
 * (its raw text, redacted) under the same bound; if even that fails, it gets a
 * minimal entry that says so. Nothing CPU-bound in proportion to the input runs
 * on the main thread.
 */
import { Worker } from 'node:worker_threads';
import { RenderPoolClosedError } from '../errors.js';
import { createCounters, type RenderCounters } from '../ops/metrics.js';
import type { FeedSecrets } from './redact.js';
import { minimalRendering, type RenderedForRecipients, type RenderOptions } from './render.js';

const RUNNING_FROM_SOURCE = import.meta.url.endsWith('.ts');
const WORKER_URL = new URL(RUNNING_FROM_SOURCE ? './render-worker.ts' : './render-worker.js', import.meta.url);
/** Threads that die before they are ready this many times in a row mean threads cannot work here. */
const MAX_START_FAILURES = 3;
const FALLBACK_MIN_MS = 10_000;

/**
 * Worker threads do not inherit tsx's loader hooks, so when running from the
 * TypeScript sources (tests, development) the thread registers them itself.
 */
function spawnWorker(): Worker {
  const options = { resourceLimits: { maxOldGenerationSizeMb: 512 } };
  if (!RUNNING_FROM_SOURCE) return new Worker(WORKER_URL, options);
  const tsx = import.meta.resolve('tsx/esm/api');
  const code = `import(${JSON.stringify(tsx)}).then((m) => { m.register(); return import(${JSON.stringify(WORKER_URL.href)}); })`;
  return new Worker(code, { ...options, eval: true });
}

/** The pool a process renders mail with, as its settings say. */
export function renderPoolFor(
  config: { maxPartBytes: number; keepTrackingPixels: boolean; processingTimeoutMs: number; renderThreads: number },
  counters?: RenderCounters,
): RenderPool {
  return new RenderPool({ maxPartBytes: config.maxPartBytes, keepTrackingPixels: config.keepTrackingPixels }, config.processingTimeoutMs, config.renderThreads, counters);
}

/**
 * The message's bytes in shared memory: posting a SharedArrayBuffer hands the thread a view
 * instead of serializing megabytes on the main thread (one memcpy here instead).
 */
function shared(raw: Buffer): Uint8Array {
  const view = new Uint8Array(new SharedArrayBuffer(raw.length));
  view.set(raw);
  return view;
}

export type RenderMode = { mode: 'full' } | { mode: 'fallback'; reason: string };

interface Job {
  id: number;
  raw: Buffer;
  recipients: FeedSecrets[];
  mode: RenderMode;
  resolve: (r: RenderedForRecipients) => void;
  reject: (err: Error) => void;
}


type WorkerMessage = { ready: true } | { id: number; result?: RenderedForRecipients; error?: string };

/** One thread and the message it is working on. */
interface Slot {
  worker: Worker | null;
  ready: boolean;
  current: { job: Job; timer: NodeJS.Timeout } | null;
}

export class RenderPool {
  readonly #slots: Slot[];
  #startFailures = 0;
  #queue: Job[] = [];
  #nextId = 1;
  #closed = false;
  readonly #counters: RenderCounters;

  /** `counters`: where the pool counts for /metrics; a pool without them (a test, a one-off command) counts for nobody. */
  constructor(private readonly options: RenderOptions, private readonly timeoutMs: number, threads = 1, counters = createCounters().render) {
    this.#slots = Array.from({ length: Math.max(1, threads) }, () => ({ worker: null, ready: false, current: null }));
    this.#counters = counters;
    counters.threads = () => this.threads;
    counters.waiting = () => this.waiting;
  }

  /** Starts the threads now, so the first messages do not wait for (or stall the process with) their start-up. */
  warm(): void {
    for (const slot of this.#slots) this.#ensureWorker(slot);
  }

  get threads(): number {
    return this.#slots.length;
  }

  /** Messages waiting for a thread. */
  get waiting(): number {
    return this.#queue.length;
  }

  /**
   * Renders a message and redacts every recipient's secrets from it; a timeout
   * or crash yields a fallback rendering with a note. Rejects when the pool is
   * closing (RenderPoolClosedError) or when no render thread can start: the
   * ingest job then runs again later.
   */
  render(raw: Buffer, recipients: FeedSecrets[] = []): Promise<RenderedForRecipients> {
    if (this.#closed) return Promise.reject(new RenderPoolClosedError('render pool is closed'));
    return new Promise((resolve, reject) => {
      this.#queue.push({ id: this.#nextId++, raw, recipients, mode: { mode: 'full' }, resolve, reject });
      this.#pump();
    });
  }

  #pump(): void {
    if (this.#closed) return;
    if (this.#startFailures >= MAX_START_FAILURES && this.#queue.length > 0) {
      // Rendering without the time bound could hang the server on one message; fail instead,
      // so the jobs retry later (and the error says why in `feedmail jobs`).
      this.#startFailures = 0;
      const err = new Error(`render threads failed to start ${MAX_START_FAILURES} times in a row`);
      for (const job of this.#queue.splice(0)) job.reject(err);
      return;
    }
    for (const slot of this.#slots) {
      if (this.#queue.length === 0) return;
      if (slot.current) continue;
      const worker = this.#ensureWorker(slot);
      if (!slot.ready) continue; // pumped again on 'ready'
      const job = this.#queue.shift()!;
      // The fallback's work is bounded by its own input cap (1 MB of text), so it gets at least
      // FALLBACK_MIN_MS even when the full rendering's budget is set very low.
      const bound = job.mode.mode === 'full' ? this.timeoutMs : Math.max(this.timeoutMs, FALLBACK_MIN_MS);
      const timer = setTimeout(() => this.#timedOut(slot, bound), bound);
      slot.current = { job, timer };
      worker.postMessage({ id: job.id, raw: shared(job.raw), options: this.options, recipients: job.recipients, mode: job.mode });
    }
  }

  /** The thread is stuck on its message: replace the thread and degrade the message one step. */
  #timedOut(slot: Slot, bound: number): void {
    const current = slot.current;
    if (!current) return;
    this.#counters.timedOut++;
    slot.current = null;
    this.#dropWorker(slot);
    this.#degrade(current.job, `took longer than ${bound} ms`);
    this.#pump();
  }

  /** A full rendering that failed is tried once more as plain text; a failed fallback gets the minimal entry. */
  #degrade(job: Job, reason: string): void {
    if (job.mode.mode === 'full') {
      // First in line: its sender has waited long enough already.
      this.#queue.unshift({ ...job, mode: { mode: 'fallback', reason } });
    } else {
      job.resolve(minimalRendering(`${job.mode.reason}; then ${reason}`, job.recipients.length));
    }
  }

  #finish(slot: Slot, result: RenderedForRecipients): void {
    const current = slot.current;
    if (!current) return;
    clearTimeout(current.timer);
    slot.current = null;
    this.#counters.rendered++;
    current.job.resolve(result);
    this.#pump();
  }

  #ensureWorker(slot: Slot): Worker {
    if (slot.worker) return slot.worker;
    const worker = spawnWorker();
    worker.unref();
    slot.ready = false;
    worker.on('message', (msg: WorkerMessage) => {
      if (slot.worker !== worker) return;
      if ('ready' in msg) {
        slot.ready = true;
        this.#startFailures = 0;
        this.#pump();
        return;
      }
      const current = slot.current;
      if (!current || current.job.id !== msg.id) return;
      if (msg.error !== undefined || !msg.result) {
        clearTimeout(current.timer);
        slot.current = null;
        this.#degrade(current.job, (msg.error ?? 'render failed').split('\n')[0]!);
        this.#pump();
        return;
      }
      const r = msg.result;
      r.parts = r.parts.map((part) => ({
        ...part,
        content: part.content ? Buffer.from(part.content.buffer, part.content.byteOffset, part.content.byteLength) : null,
      }));
      this.#finish(slot, r);
    });
    const died = (reason: string) => {
      if (slot.worker !== worker) return;
      if (!slot.ready) this.#startFailures++;
      const current = slot.current;
      slot.current = null;
      this.#dropWorker(slot);
      if (current) {
        clearTimeout(current.timer);
        this.#degrade(current.job, reason);
      }
      this.#pump();
    };
    worker.on('error', (err) => died(`the render thread failed: ${err.message}`));
    worker.on('exit', (code) => died(`the render thread exited with code ${code}`));
    slot.worker = worker;
    return worker;
  }

  #dropWorker(slot: Slot): void {
    const old = slot.worker;
    slot.worker = null;
    slot.ready = false;
    if (old) void old.terminate();
  }

  async close(): Promise<void> {
    this.#closed = true;
    const closing = new RenderPoolClosedError('render pool is closed');
    const workers: Worker[] = [];
    for (const slot of this.#slots) {
      if (slot.current) {
        clearTimeout(slot.current.timer);
        slot.current.job.reject(closing);
        slot.current = null;
      }
      if (slot.worker) workers.push(slot.worker);
      slot.worker = null;
    }
    for (const job of this.#queue.splice(0)) job.reject(closing);
    await Promise.all(workers.map((w) => w.terminate()));
  }
}
