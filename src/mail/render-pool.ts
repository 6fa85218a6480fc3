/**
 * Runs `renderMessage` in a worker thread with a time bound. A message that
 * takes too long gets its thread terminated (the only way to stop runaway
 * synchronous code) and a fresh thread takes over the rest.
 */
import { Worker } from 'node:worker_threads';
import { fallbackRendering, renderMessage, type RenderedMessage, type RenderOptions } from './render.js';

export class RenderTimeoutError extends Error {
  readonly code = 'render_timeout';
}

interface Pending {
  resolve: (r: RenderedMessage) => void;
  reject: (e: Error) => void;
  timer: NodeJS.Timeout;
}

const RUNNING_FROM_SOURCE = import.meta.url.endsWith('.ts');
const WORKER_URL = new URL(RUNNING_FROM_SOURCE ? './render-worker.ts' : './render-worker.js', import.meta.url);

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

export class RenderPool {
  #worker: Worker | null = null;
  #pending = new Map<number, Pending>();
  #nextId = 1;
  #closed = false;

  constructor(private readonly options: RenderOptions, private readonly timeoutMs: number) {}

  /** Renders a message; a timeout or crash yields a fallback rendering with a note, never an exception. */
  async render(raw: Buffer): Promise<RenderedMessage> {
    try {
      return await this.#run(raw);
    } catch (err) {
      if (err instanceof RenderTimeoutError) return fallbackRendering(raw, err.message);
      // A crash of the thread itself: try once in-process, then fall back.
      try {
        return await renderMessage(raw, this.options);
      } catch (inner) {
        return fallbackRendering(raw, (inner as Error).message);
      }
    }
  }

  #run(raw: Buffer): Promise<RenderedMessage> {
    if (this.#closed) return Promise.reject(new Error('render pool is closed'));
    const worker = this.#ensureWorker();
    const id = this.#nextId++;
    return new Promise<RenderedMessage>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#pending.delete(id);
        reject(new RenderTimeoutError(`took longer than ${this.timeoutMs} ms`));
        // Other messages in flight on this thread are retried by their callers' fallback path.
        this.#restart(new Error('render thread restarted after a timeout'));
      }, this.timeoutMs);
      this.#pending.set(id, { resolve, reject, timer });
      worker.postMessage({ id, raw: new Uint8Array(raw), options: this.options });
    });
  }

  #ensureWorker(): Worker {
    if (this.#worker) return this.#worker;
    const worker = spawnWorker();
    worker.unref();
    worker.on('message', (msg: { id: number; result?: RenderedMessage; error?: string }) => {
      const p = this.#pending.get(msg.id);
      if (!p) return;
      this.#pending.delete(msg.id);
      clearTimeout(p.timer);
      if (msg.error !== undefined || !msg.result) {
        p.reject(new Error(msg.error ?? 'render failed'));
        return;
      }
      const r = msg.result;
      r.parts = r.parts.map((part) => ({
        ...part,
        content: part.content ? Buffer.from(part.content.buffer, part.content.byteOffset, part.content.byteLength) : null,
      }));
      p.resolve(r);
    });
    worker.on('error', (err) => this.#restart(err));
    worker.on('exit', () => {
      if (this.#worker === worker) this.#restart(new Error('render thread exited'));
    });
    this.#worker = worker;
    return worker;
  }

  #restart(reason: Error): void {
    const old = this.#worker;
    this.#worker = null;
    for (const [id, p] of this.#pending) {
      clearTimeout(p.timer);
      p.reject(reason);
      this.#pending.delete(id);
    }
    if (old) void old.terminate();
  }

  async close(): Promise<void> {
    this.#closed = true;
    const w = this.#worker;
    this.#restart(new Error('render pool closed'));
    if (w) await w.terminate();
  }
}
