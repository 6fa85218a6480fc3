/**
 * With the image proxy on, a newly stored newsletter's remote images are fetched into the
 * image cache at once, by this job (enqueued by mail/ingest.ts), so the sender sees
 * feedmail fetch them when the mail arrives, not when someone first reads it. Fetching is
 * the image proxy's own (web/routes/image.ts: checks, bounds, single flight, a few at once
 * and at most a couple per remote host). A few images are fetched in parallel, the hosts
 * taken in turn, and the job gives a message PREFETCH_DEADLINE_MS at most, so a sender
 * whose images never answer cannot hold a job slot for long (fetches still running then go
 * on in the background, within the proxy's own bounds). An image that fails, times out or
 * is not reached is fetched when viewed later, and its sender can then see when that was.
 */
import { InvalidJobPayloadError, TemporaryFailureError } from '../../errors.js';
import { proxiedImage } from '../../web/routes/image.js';
import type { TaskDefinition } from '../task.js';
import type { TaskDeps } from './deps.js';

export const PREFETCH_IMAGES_TASK = 'prefetch-images';

/** Images fetched ahead per message at most; the rest are fetched when first viewed. */
export const PREFETCH_MAX_IMAGES = 100;
/** Fetches one message's prefetch runs at once (each still takes the proxy's global and per-host slots). */
export const PREFETCH_PARALLEL = 4;
/** The time one message's prefetch may take; images not fetched by then are fetched when first viewed. */
export const PREFETCH_DEADLINE_MS = 60_000;

export interface PrefetchPayload {
  urls: string[];
}

function parsePrefetch(payload: unknown): PrefetchPayload {
  const urls = (payload as Partial<PrefetchPayload> | null)?.urls;
  if (!Array.isArray(urls) || !urls.every((u) => typeof u === 'string')) throw new InvalidJobPayloadError(`${PREFETCH_IMAGES_TASK} job: malformed payload`);
  return { urls };
}

/** `urls` with their hosts taken in turn (a, b, c, a, b, a, …), so one slow host does not hold back the others' images. */
export function hostsInTurn(urls: string[]): string[] {
  const byHost = new Map<string, string[]>();
  for (const url of urls) {
    let host = '';
    try {
      host = new URL(url).hostname.toLowerCase();
    } catch { /* one group for what does not parse; the fetch refuses it */ }
    let list = byHost.get(host);
    if (!list) byHost.set(host, list = []);
    list.push(url);
  }
  const lists = [...byHost.values()];
  const ordered: string[] = [];
  for (let i = 0; ordered.length < urls.length; i++) {
    for (const list of lists) if (i < list.length) ordered.push(list[i]!);
  }
  return ordered;
}

export function prefetchImagesTask({ stores, config, log }: TaskDeps): TaskDefinition {
  return {
    name: PREFETCH_IMAGES_TASK,
    handler: async (payload, { signal }) => {
      if (!config.imageProxy) return;
      const urls = hostsInTurn(parsePrefetch(payload).urls.slice(0, PREFETCH_MAX_IMAGES));
      const stop = AbortSignal.any([signal, AbortSignal.timeout(PREFETCH_DEADLINE_MS)]);
      let next = 0;
      const worker = async (): Promise<void> => {
        while (next < urls.length && !stop.aborted) {
          const url = urls[next++]!;
          try {
            // A failure is cached like any other (and never fails the job): there is nothing to retry here.
            await proxiedImage({ stores, config, log }, url);
          } catch (err) {
            // Too many fetches waiting (for this host or all): this one is fetched when first viewed.
            if (!(err instanceof TemporaryFailureError)) throw err;
          }
        }
      };
      const stopped = new Promise<void>((resolve) => stop.addEventListener('abort', () => resolve(), { once: true }));
      await Promise.race([Promise.all(Array.from({ length: PREFETCH_PARALLEL }, worker)), stopped]);
    },
  };
}
