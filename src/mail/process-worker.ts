/** Worker thread body: processes and redacts messages off the main thread so a pathological one can be stopped. */
import fs from 'node:fs';
import os from 'node:os';
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

/**
 * Processing yields the CPU to the main thread, which answers SMTP and HTTP: on a machine with
 * no core to spare, a backlog being processed otherwise delays every `250` and every feed read.
 * Linux gives each thread its own nice value; /proc/thread-self names this thread's id.
 * Elsewhere (or when refused) the thread keeps the process's priority.
 */
function lowerThreadPriority(): void {
  try {
    const tid = Number(/task\/(\d+)$/.exec(fs.readlinkSync('/proc/thread-self'))?.[1]);
    if (tid > 0) os.setPriority(tid, Math.min(19, os.getPriority(tid) + 10));
  } catch {
    // Not Linux, or not allowed: nothing to do.
  }
}
lowerThreadPriority();

// The pool starts a message's clock only once the thread is ready, so start-up time never counts.
parentPort?.postMessage({ ready: true });
