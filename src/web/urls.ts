/** Every public URL feedmail hands out, built in one place. */
export class Urls {
  constructor(public base: string) {}
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
