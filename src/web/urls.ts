import type { ImageSigner } from './image-proxy.js';

/** Every public URL feedmail hands out, built in one place. */
export class Urls {
  /**
   * `base`: the public URL without a trailing slash, fixed for the life of the server.
   * `images`: signs image proxy URLs; undefined when the proxy is off.
   */
  constructor(readonly base: string, readonly images?: ImageSigner) {}
  /** What every URL built here depends on, for cache keys and ETags: the base, and the image key in use. */
  get variant(): string {
    return this.images ? `${this.base} img:${this.images.tag}` : this.base;
  }
  /** A remote image, served by the image proxy (web/routes/image.ts); only when `images` is set. */
  image(target: string): string | undefined {
    return this.images ? `${this.base}/img/${this.images.path(target)}` : undefined;
  }
  feed(feedToken: string, format: 'atom' | 'rss' | 'json'): string {
    return `${this.base}/feeds/${feedToken}.${format}`;
  }
  /** One sender's entries of a feed (see feeds/senders.ts for the key). */
  senderFeed(feedToken: string, senderKey: string, format: 'atom' | 'rss' | 'json'): string {
    return `${this.base}/feeds/${feedToken}/senders/${senderKey}.${format}`;
  }
  /** The feed's icon; `version` changes with the icon, so readers and caches may keep each one long. */
  feedIcon(feedToken: string, version: string): string {
    return `${this.base}/feeds/${feedToken}/icon?v=${encodeURIComponent(version)}`;
  }
  /** The generated icon of a sender domain (a plain host name, see feeds/senders.ts). */
  domainIcon(domain: string): string {
    return `${this.base}/icons/${domain}.png`;
  }
  /** The WebSub hub every feed document names (web/routes/websub.ts). */
  websubHub(): string {
    return `${this.base}/websub`;
  }
  feedPage(feedToken: string): string {
    return `${this.base}/feeds/${feedToken}`;
  }
  manage(manageToken: string): string {
    return `${this.base}/manage/${manageToken}`;
  }
  entry(shareToken: string): string {
    return `${this.base}/e/${shareToken}`;
  }
  entryBody(shareToken: string): string {
    return `${this.base}/e/${shareToken}/body`;
  }
  part(shareToken: string, idx: number, filename: string): string {
    return `${this.base}/e/${shareToken}/parts/${idx}/${encodeURIComponent(filename)}`;
  }
}

/**
 * The URL links start with: FEEDMAIL_BASE_URL when set, else the web server's own
 * address on the port it bound (a wildcard host is shown as the loopback address).
 */
export function publicBaseUrl(baseUrl: string, httpHost: string, boundPort: number): string {
  if (baseUrl) return baseUrl;
  const shownHost = httpHost === '0.0.0.0' || httpHost === '::' ? '127.0.0.1' : httpHost;
  return `http://${shownHost.includes(':') ? `[${shownHost}]` : shownHost}:${boundPort}`;
}
