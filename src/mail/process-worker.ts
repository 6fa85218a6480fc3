/** Worker thread body: processes and redacts messages off the main thread so a pathological one can be stopped. */
import { parentPort } from 'node:worker_threads';
import type { FeedSecrets } from './redact.js';
import { fallbackForRecipients, processForRecipients, type ProcessOptions } from './process.js';
import type { ProcessMode } from './process-pool.js';

interface Request {
  id: number;
  raw: Uint8Array;
  options: ProcessOptions;
  recipients: FeedSecrets[];
  mode: ProcessMode;
}

parentPort?.on('message', (req: Request) => {
  const raw = Buffer.from(req.raw.buffer, req.raw.byteOffset, req.raw.byteLength);
  const work = req.mode.mode === 'full'
    ? processForRecipients(raw, req.options, req.recipients)
    : Promise.resolve().then(() => fallbackForRecipients(raw, (req.mode as { reason: string }).reason, req.recipients));
  work.then(
    (result) => parentPort?.postMessage({ id: req.id, result }),
    (err: unknown) => parentPort?.postMessage({ id: req.id, error: (err as Error)?.stack ?? String(err) }),
  );
});

// The pool starts a message's clock only once the thread is ready, so start-up time never counts.
parentPort?.postMessage({ ready: true });
