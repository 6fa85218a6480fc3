/**
 * With the image proxy on, a newly stored newsletter's remote images are fetched into the
 * image cache at once, by this job (enqueued by mail/ingest.ts), so the sender sees
 * feedmail fetch them when the mail arrives, not when someone first reads it: no open
 * event, not even the first one, reaches the sender. Fetching is the image proxy's own
 * (web/routes/image.ts: checks, bounds, single flight, at most a few at once); an image that
 * fails is remembered as failed like any other and tried again when viewed later.
 */
import { InvalidJobPayloadError, TemporaryFailureError } from '../../errors.js';
import { proxiedImage } from '../../web/routes/image.js';
import type { TaskDefinition } from '../task.js';
import type { TaskDeps } from './deps.js';

export const PREFETCH_IMAGES_TASK = 'prefetch-images';

/** Images fetched ahead per message at most; the rest are fetched when first viewed. */
export const PREFETCH_MAX_IMAGES = 100;

export interface PrefetchPayload {
  urls: string[];
}

function parsePrefetch(payload: unknown): PrefetchPayload {
  const urls = (payload as Partial<PrefetchPayload> | null)?.urls;
  if (!Array.isArray(urls) || !urls.every((u) => typeof u === 'string')) throw new InvalidJobPayloadError(`${PREFETCH_IMAGES_TASK} job: malformed payload`);
  return { urls };
}

export function prefetchImagesTask({ stores, config, log }: TaskDeps): TaskDefinition {
  return {
    name: PREFETCH_IMAGES_TASK,
    handler: async (payload, { signal }) => {
      if (!config.imageProxy) return;
      for (const url of parsePrefetch(payload).urls.slice(0, PREFETCH_MAX_IMAGES)) {
        if (signal.aborted) return;
        try {
          // A failure is cached like any other (and never fails the job): there is nothing to retry here.
          await proxiedImage({ stores, config, log }, url);
        } catch (err) {
          // Too many fetches waiting: the rest are fetched when first viewed.
          if (err instanceof TemporaryFailureError) return;
          throw err;
        }
      }
    },
  };
}
