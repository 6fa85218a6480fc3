/**
 * Runs `renderMessage` in a worker thread with a time bound per message. The
 * thread renders one message at a time and each message's clock starts when
 * the thread takes it, so a slow message never eats into another's time. A
 * message that takes too long gets the thread terminated (the only way to stop
 * runaway synchronous code) and a fallback rendering; a fresh thread takes
 * over the rest of the queue.
 */
import { Worker } from 'node:worker_threads';
import { fallbackRendering, type RenderedMessage, type RenderOptions } from './render.js';

const RUNNING_FROM_SOURCE = import.meta.url.endsWith('.ts');
const WORKER_URL = new URL(RUNNING_FROM_SOURCE ? './render-worker.ts' : './render-worker.js', import.meta.url);
/** Threads that die before they are ready this many times in a row mean threads cannot work here. */
const MAX_START_FAILURES = 3;

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

interface Job {
  id: number;
  raw: Buffer;
  resolve: (r: RenderedMessage) => void;
  reject: (err: Error) => void;
}

/** Rendering stopped because the process is shutting down: the job must run again later, not store a fallback. */
export class RenderPoolClosedError extends Error {
  readonly code = 'render_pool_closed';
}

type WorkerMessage = { ready: true } | { id: number; result?: RenderedMessage; error?: string };

export class RenderPool {
  #worker: Worker | null = null;
  #ready = false;
  #startFailures = 0;
  #queue: Job[] = [];
  #current: { job: Job; timer: NodeJS.Timeout } | null = null;
  #nextId = 1;
  #closed = false;

  constructor(private readonly options: RenderOptions, private readonly timeoutMs: number) {}

  /**
   * Renders a message; a timeout or crash yields a fallback rendering with a
   * note. Rejects when the pool is closing (RenderPoolClosedError) or when no
   * render thread can start: the ingest job then runs again later.
   */
  render(raw: Buffer): Promise<RenderedMessage> {
    if (this.#closed) return Promise.reject(new RenderPoolClosedError('render pool is closed'));
    return new Promise((resolve, reject) => {
      this.#queue.push({ id: this.#nextId++, raw, resolve, reject });
      this.#pump();
    });
  }

  #pump(): void {
    if (this.#current || this.#queue.length === 0 || this.#closed) return;
    if (this.#startFailures >= MAX_START_FAILURES) {
      // Rendering without the time bound could hang the server on one message; fail instead,
      // so the jobs retry later (and the error says why in `feedmail jobs`).
      this.#startFailures = 0;
      const err = new Error(`render threads failed to start ${MAX_START_FAILURES} times in a row`);
      for (const job of this.#queue.splice(0)) job.reject(err);
      return;
    }
    const worker = this.#ensureWorker();
    if (!this.#ready) return; // pumped again on 'ready'
    const job = this.#queue.shift()!;
    const timer = setTimeout(() => this.#finish(fallbackRendering(job.raw, `took longer than ${this.timeoutMs} ms`), true), this.timeoutMs);
    this.#current = { job, timer };
    worker.postMessage({ id: job.id, raw: new Uint8Array(job.raw), options: this.options });
  }

  /** Resolves the current message and moves on; `restart` replaces the thread first. */
  #finish(result: RenderedMessage, restart: boolean): void {
    const current = this.#current;
    if (!current) return;
    clearTimeout(current.timer);
    this.#current = null;
    if (restart) this.#dropWorker();
    current.job.resolve(result);
    this.#pump();
  }

  #ensureWorker(): Worker {
    if (this.#worker) return this.#worker;
    const worker = spawnWorker();
    worker.unref();
    this.#ready = false;
    worker.on('message', (msg: WorkerMessage) => {
      if ('ready' in msg) {
        this.#ready = true;
        this.#startFailures = 0;
        this.#pump();
        return;
      }
      const current = this.#current;
      if (!current || current.job.id !== msg.id) return;
      if (msg.error !== undefined || !msg.result) {
        this.#finish(fallbackRendering(current.job.raw, (msg.error ?? 'render failed').split('\n')[0]!), false);
        return;
      }
      const r = msg.result;
      r.parts = r.parts.map((part) => ({
        ...part,
        content: part.content ? Buffer.from(part.content.buffer, part.content.byteOffset, part.content.byteLength) : null,
      }));
      this.#finish(r, false);
    });
    const died = (reason: string) => {
      if (this.#worker !== worker) return;
      if (!this.#ready) this.#startFailures++;
      const current = this.#current;
      this.#dropWorker();
      if (current) this.#finish(fallbackRendering(current.job.raw, reason), false);
      else this.#pump();
    };
    worker.on('error', (err) => died(`the render thread failed: ${err.message}`));
    worker.on('exit', (code) => died(`the render thread exited with code ${code}`));
    this.#worker = worker;
    return worker;
  }

  #dropWorker(): void {
    const old = this.#worker;
    this.#worker = null;
    this.#ready = false;
    if (old) void old.terminate();
  }

  async close(): Promise<void> {
    this.#closed = true;
    const w = this.#worker;
    this.#worker = null;
    const closing = new RenderPoolClosedError('render pool is closed');
    if (this.#current) {
      clearTimeout(this.#current.timer);
      this.#current.job.reject(closing);
      this.#current = null;
    }
    for (const job of this.#queue.splice(0)) job.reject(closing);
    if (w) await w.terminate();
  }
}
