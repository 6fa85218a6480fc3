/** Worker thread body: renders messages off the main thread so a pathological one can be stopped. */
import { parentPort } from 'node:worker_threads';
import { renderMessage, type RenderOptions } from './render.js';

interface Request {
  id: number;
  raw: Uint8Array;
  options: RenderOptions;
}

parentPort?.on('message', (req: Request) => {
  const raw = Buffer.from(req.raw.buffer, req.raw.byteOffset, req.raw.byteLength);
  renderMessage(raw, req.options).then(
    (result) => parentPort?.postMessage({ id: req.id, result }),
    (err: unknown) => parentPort?.postMessage({ id: req.id, error: (err as Error)?.stack ?? String(err) }),
  );
});

// The pool starts a message's clock only once the thread is ready, so start-up time never counts.
parentPort?.postMessage({ ready: true });
