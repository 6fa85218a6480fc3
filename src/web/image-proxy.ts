/**
 * The image proxy's URLs: a newsletter's remote images are shown from feedmail's own
 * `/img/<signature>/<url>` (web/routes/image.ts), so a reader's browser or feed reader never
 * asks the sender for them. Only URLs signed here are fetched: the signature is an
 * HMAC-SHA256 of the image URL with a key made once and kept in app.db, never shown or
 * logged. The stored HTML keeps the sender's URLs; they are rewritten whenever an entry is
 * shown (presenters.ts, proxiedImages), so the proxy can be turned off and on again.
 */
import { createHash, createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import type { Config } from '../config.js';
import type { AppStore } from '../store/index.js';

/** The name of the signing key in app.db's server_keys. */
const KEY_NAME = 'image-proxy';

export class ImageSigner {
  /** Names the key without revealing it, for cache keys and ETags: a new key changes every URL. */
  readonly tag: string;
  readonly #key: Buffer;

  constructor(key: Buffer) {
    this.#key = key;
    this.tag = createHash('sha256').update('feedmail-image-key:').update(key).digest('hex').slice(0, 8);
  }

  #signature(target: string): Buffer {
    return createHmac('sha256', this.#key).update(`feedmail-image:${target}`).digest();
  }

  /** `<signature>/<url>`, both base64url: the path of `target` under /img/. */
  path(target: string): string {
    return `${this.#signature(target).toString('base64url')}/${Buffer.from(target).toString('base64url')}`;
  }

  /** The image URL a path signed with this key names, or undefined for anything else. */
  verify(signature: string, encoded: string): string | undefined {
    const target = Buffer.from(encoded, 'base64url').toString('utf8');
    // Only the one spelling path() writes: anything decoded from another is refused.
    if (Buffer.from(target).toString('base64url') !== encoded) return undefined;
    const given = Buffer.from(signature, 'base64url');
    if (given.toString('base64url') !== signature) return undefined;
    const expected = this.#signature(target);
    return given.length === expected.length && timingSafeEqual(given, expected) ? target : undefined;
  }
}

const signers = new WeakMap<AppStore, Promise<ImageSigner>>();

/** The signer for a data directory's key (made on first use), or undefined when the proxy is off. */
export function imageSignerFor(app: AppStore, config: Pick<Config, 'imageProxy'>): Promise<ImageSigner | undefined> {
  if (!config.imageProxy) return Promise.resolve(undefined);
  let signer = signers.get(app);
  if (!signer) {
    signer = app.serverKey(KEY_NAME, randomBytes(32).toString('base64url')).then((key) => new ImageSigner(Buffer.from(key, 'base64url')));
    signers.set(app, signer);
    signer.catch(() => signers.delete(app));
  }
  return signer;
}
