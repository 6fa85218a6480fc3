/** Every public URL feedmail hands out, built in one place. */
export class Urls {
  /** `base`: the public URL without a trailing slash, fixed for the life of the server. */
  constructor(readonly base: string) {}
  feed(feedToken: string, format: 'atom' | 'rss' | 'json'): string {
    return `${this.base}/feeds/${feedToken}.${format}`;
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
