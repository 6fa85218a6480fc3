/**
 * Runs message processing (parse, sanitize, redact) in worker threads, one per
 * core by default, with a time bound per message. Each thread processes one
 * message at a time and each message's clock starts when a thread takes it, so
 * a slow message never eats into another's time, and while one thread is stuck
 * on a hostile message the others keep mail flowing.
 *
 * A message that takes too long gets its thread terminated (the only way to stop
 * runaway synchronous code) and is processed again in the cheap fallback mode
 * (its raw text, redacted) under the same bound; if even that fails, it gets a
 * minimal entry that says so. Nothing CPU-bound in proportion to the input runs
 * on the main thread.
 */
import { Worker } from 'node:worker_threads';
import { ProcessPoolClosedError } from '../errors.js';
import { createCounters, type ProcessCounters } from '../ops/metrics.js';
import type { FeedSecrets } from './redact.js';
import { minimalContent, type ProcessedForRecipients, type ProcessOptions } from './process.js';

const RUNNING_FROM_SOURCE = import.meta.url.endsWith('.ts');
const WORKER_URL = new URL(RUNNING_FROM_SOURCE ? './process-worker.ts' : './process-worker.js', import.meta.url);
/** Threads that die before they are ready this many times in a row mean threads cannot work here. */
const MAX_START_FAILURES = 3;
const FALLBACK_MIN_MS = 10_000;

/**
 * Worker threads do not inherit tsx's loader hooks, so when running from the
 * TypeScript sources (tests, development) the thread registers them itself.
 */
function spawnWorker(): Worker {
  // A young generation of 8 MB instead of V8's default: each thread's heap then grows by
  // about 20 MB under a steady stream of newsletters instead of about 50 (measured with 2
  // threads and 600 newsletters of 20 KB: RSS +38 MB instead of +100), for no measurable time.
  const options = { resourceLimits: { maxOldGenerationSizeMb: 512, maxYoungGenerationSizeMb: 8 } };
  if (!RUNNING_FROM_SOURCE) return new Worker(WORKER_URL, options);
  const tsx = import.meta.resolve('tsx/esm/api');
  const code = `import(${JSON.stringify(tsx)}).then((m) => { m.register(); return import(${JSON.stringify(WORKER_URL.href)}); })`;
  return new Worker(code, { ...options, eval: true });
}

/** The pool a process processes mail with, as its settings say. */
export function processPoolFor(
  config: { maxPartBytes: number; keepTrackingPixels: boolean; processingTimeoutMs: number; renderThreads: number },
  counters?: ProcessCounters,
): ProcessPool {
  return new ProcessPool({ maxPartBytes: config.maxPartBytes, keepTrackingPixels: config.keepTrackingPixels }, config.processingTimeoutMs, config.renderThreads, counters);
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

export type ProcessMode = { mode: 'full' } | { mode: 'fallback'; reason: string };

/** One message waiting for, or in, a processing thread. */
interface Request {
  id: number;
  raw: Buffer;
  recipients: FeedSecrets[];
  mode: ProcessMode;
  resolve: (r: ProcessedForRecipients) => void;
  reject: (err: Error) => void;
}


type WorkerMessage = { ready: true } | { id: number; result?: ProcessedForRecipients; error?: string };

/** One thread and the message it is working on. */
interface Slot {
  worker: Worker | null;
  ready: boolean;
  current: { request: Request; timer: NodeJS.Timeout } | null;
}

export class ProcessPool {
  readonly #slots: Slot[];
  #startFailures = 0;
  #queue: Request[] = [];
  #nextId = 1;
  #closed = false;
  readonly #counters: ProcessCounters;

  /** `counters`: where the pool counts for /metrics; a pool without them (a test, a one-off command) counts for nobody. */
  constructor(private readonly options: ProcessOptions, private readonly timeoutMs: number, threads = 1, counters = createCounters().process) {
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
   * Processes a message (parse, sanitize) and redacts every recipient's secrets from it; a timeout
   * or crash yields a fallback with a note. Rejects when the pool is
   * closing (ProcessPoolClosedError) or when no processing thread can start: the
   * ingest job then runs again later.
   */
  process(raw: Buffer, recipients: FeedSecrets[] = []): Promise<ProcessedForRecipients> {
    if (this.#closed) return Promise.reject(new ProcessPoolClosedError('the processing pool is closed'));
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
      const err = new Error(`processing threads failed to start ${MAX_START_FAILURES} times in a row`);
      for (const request of this.#queue.splice(0)) request.reject(err);
      return;
    }
    for (const slot of this.#slots) {
      if (this.#queue.length === 0) return;
      if (slot.current) continue;
      const worker = this.#ensureWorker(slot);
      if (!slot.ready) continue; // pumped again on 'ready'
      const request = this.#queue.shift()!;
      // The fallback's work is bounded by its own input cap (1 MB of text), so it gets at least
      // FALLBACK_MIN_MS even when the full processing's budget is set very low.
      const bound = request.mode.mode === 'full' ? this.timeoutMs : Math.max(this.timeoutMs, FALLBACK_MIN_MS);
      const timer = setTimeout(() => this.#timedOut(slot, bound), bound);
      slot.current = { request, timer };
      worker.postMessage({ id: request.id, raw: shared(request.raw), options: this.options, recipients: request.recipients, mode: request.mode });
    }
  }

  /** The thread is stuck on its message: replace the thread and degrade the message one step. */
  #timedOut(slot: Slot, bound: number): void {
    const current = slot.current;
    if (!current) return;
    this.#counters.timedOut++;
    slot.current = null;
    this.#dropWorker(slot);
    this.#degrade(current.request, `took longer than ${bound} ms`);
    this.#pump();
  }

  /** A full processing that failed is tried once more as plain text; a failed fallback gets the minimal entry. */
  #degrade(request: Request, reason: string): void {
    if (request.mode.mode === 'full') {
      // First in line: its sender has waited long enough already.
      this.#queue.unshift({ ...request, mode: { mode: 'fallback', reason } });
    } else {
      request.resolve(minimalContent(`${request.mode.reason}; then ${reason}`, request.recipients.length));
    }
  }

  #finish(slot: Slot, result: ProcessedForRecipients): void {
    const current = slot.current;
    if (!current) return;
    clearTimeout(current.timer);
    slot.current = null;
    this.#counters.processed++;
    current.request.resolve(result);
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
      if (!current || current.request.id !== msg.id) return;
      if (msg.error !== undefined || !msg.result) {
        clearTimeout(current.timer);
        slot.current = null;
        this.#degrade(current.request, (msg.error ?? 'processing failed').split('\n')[0]!);
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
        this.#degrade(current.request, reason);
      }
      this.#pump();
    };
    worker.on('error', (err) => died(`the processing thread failed: ${err.message}`));
    worker.on('exit', (code) => died(`the processing thread exited with code ${code}`));
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
    const closing = new ProcessPoolClosedError('the processing pool is closed');
    const workers: Worker[] = [];
    for (const slot of this.#slots) {
      if (slot.current) {
        clearTimeout(slot.current.timer);
        slot.current.request.reject(closing);
        slot.current = null;
      }
      if (slot.worker) workers.push(slot.worker);
      slot.worker = null;
    }
    for (const request of this.#queue.splice(0)) request.reject(closing);
    await Promise.all(workers.map((w) => w.terminate()));
  }
}
