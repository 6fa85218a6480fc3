/**
 * Fetching one remote image for the image proxy (web/routes/image.ts) with safeFetch: every
 * hop's address is checked after DNS resolution, a few redirects are followed (each checked
 * again), the whole fetch is bounded in time and bytes, and nothing of the reader is sent:
 * no cookies, no Referer, a neutral User-Agent. Only raster images whose bytes are what
 * they are served as come back; SVG and everything else is refused.
 */
import { RefusedAddressError, safeFetch } from './safe-fetch.js';

/** Why an image was not fetched, in words fit for the proxy's answer and a debug log line. */
export class ImageFetchError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'ImageFetchError';
  }
}

export interface ImageFetchOptions {
  maxBytes: number;
  /** The whole fetch, redirects included. */
  timeoutMs: number;
  allowPrivate: boolean;
}

/** Redirects followed at most. */
export const MAX_REDIRECTS = 3;

const USER_AGENT = 'Mozilla/5.0 (compatible; feedmail image proxy)';
const ACCEPT = 'image/avif,image/webp,image/png,image/jpeg,image/gif,image/bmp;q=0.9';

function ascii(bytes: Buffer, start: number, end: number): string {
  return bytes.subarray(start, end).toString('latin1');
}

/** The raster type the bytes are, by their magic numbers: PNG, GIF, JPEG, WebP, AVIF or BMP; undefined for anything else. */
export function sniffImageType(b: Buffer): string | undefined {
  if (b.length >= 8 && b.subarray(0, 8).equals(Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]))) return 'image/png';
  if (b.length >= 6 && /^GIF8[79]a$/.test(ascii(b, 0, 6))) return 'image/gif';
  if (b.length >= 3 && b[0] === 0xff && b[1] === 0xd8 && b[2] === 0xff) return 'image/jpeg';
  if (b.length >= 12 && ascii(b, 0, 4) === 'RIFF' && ascii(b, 8, 12) === 'WEBP') return 'image/webp';
  if (b.length >= 16 && ascii(b, 4, 8) === 'ftyp') {
    // An ISO-BMFF file whose major or compatible brands say AVIF.
    const boxEnd = Math.min(b.readUInt32BE(0), b.length);
    for (let i = 8; i + 4 <= boxEnd; i += 4) {
      if (i === 12) continue; // the minor version, not a brand
      if (/^avi[fs]$/.test(ascii(b, i, i + 4))) return 'image/avif';
    }
    return undefined;
  }
  if (b.length >= 26 && ascii(b, 0, 2) === 'BM' && [12, 40, 52, 56, 64, 108, 124].includes(b.readUInt32LE(14))) return 'image/bmp';
  return undefined;
}

/**
 * GETs `target` and returns the image's sniffed type and bytes; throws ImageFetchError for a
 * refused address, a non-image, SVG, an image over maxBytes, an error status or a timeout.
 */
export async function fetchImage(target: string, options: ImageFetchOptions): Promise<{ type: string; body: Buffer }> {
  const deadline = Date.now() + options.timeoutMs;
  let url = target;
  for (let hop = 0; ; hop++) {
    const timeoutMs = deadline - Date.now();
    if (timeoutMs <= 0) throw new ImageFetchError(`no image within ${options.timeoutMs} ms`);
    let res;
    try {
      // No cookie and no Referer are ever set here; safeFetch sends only these headers and Host.
      res = await safeFetch(url, {
        method: 'GET', headers: { 'User-Agent': USER_AGENT, Accept: ACCEPT },
        timeoutMs, maxBytes: options.maxBytes, allowPrivate: options.allowPrivate,
      });
    } catch (err) {
      if (err instanceof RefusedAddressError) throw new ImageFetchError('the image\'s address is loopback, private, link-local or otherwise reserved, or not http(s)');
      // The network's own words (addresses, error codes) stay out of the answer.
      throw new ImageFetchError('the image could not be fetched (no connection, or no answer in time)', { cause: err });
    }
    const location = res.headers.location;
    if ([301, 302, 303, 307, 308].includes(res.status) && location) {
      if (hop >= MAX_REDIRECTS) throw new ImageFetchError(`more than ${MAX_REDIRECTS} redirects`);
      try {
        url = new URL(location, url).href;
      } catch {
        throw new ImageFetchError('the image\'s server redirected to an invalid URL');
      }
      continue;
    }
    if (res.status !== 200) throw new ImageFetchError(`the image's server answered ${res.status}`);
    if (res.truncated) throw new ImageFetchError(`the image is larger than ${options.maxBytes} bytes`);
    const declared = String(res.headers['content-type'] ?? '').split(';')[0]!.trim().toLowerCase();
    const type = sniffImageType(res.body);
    if (!declared.startsWith('image/') || declared.includes('svg') || type === undefined) {
      throw new ImageFetchError(`not a raster image (served as ${declared || 'no type'})`);
    }
    return { type, body: res.body };
  }
}
