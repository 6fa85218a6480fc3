/**
 * Fidelity of one message, measured against a mail client (issue 9).
 *
 * Reference: the message's own HTML part, decoded by mailparser (after the same MIME repair a
 * tolerant client does: boundaries, charsets), `cid:` images resolved to their parts, shown by
 * Chromium at 700 px with JavaScript off. A text-only message is shown the way a desktop mail
 * client shows plain text: preformatted, wrapped, in a fixed-width font.
 * Candidate: feedmail's entry body document (`<entry>/body`), from a real server that received
 * the message by SMTP, shown by the same Chromium at the same width.
 * Every remote image on both sides (an `<img>`, a CSS background, a `background=` attribute) is
 * answered with one and the same grey placeholder; every other remote request is refused.
 *
 * Four figures, each from 0 to 1:
 * - text: multiset Dice coefficient of the visible text's words (CJK counted per character);
 * - links: share of the reference's distinct http(s) link targets present in the candidate;
 * - images: share of the reference's visible images present in the candidate (remote ones by
 *   URL, inline ones by count);
 * - visual: full-page screenshots, downscaled 4x (a 4x4 box blur), cut into 40 px bands; each
 *   band is compared with the best-matching band of the other side within ±160 px of where the
 *   previous band matched (so an offset does not count twice), similarity 1 - mean absolute
 *   RGB difference; both directions averaged, then scaled down when the page heights differ by
 *   more than 10%.
 */
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { deflateSync } from 'node:zlib';
import { simpleParser, type Attachment } from 'mailparser';
import { type Browser, type BrowserContext, type Page } from 'playwright-core';
import { launchChromium } from './browser.js';
import { repairMime } from '../../src/mail/mime-repair.js';
import { createFeed, sendRaw, startTestServer, waitForEntries, type TestServer } from './helpers.js';

export const WIDTH = 700;
const VIEW_HEIGHT = 900;
/** Pages longer than this are compared over their first MAX_HEIGHT pixels (heights still count in full). */
const MAX_HEIGHT = 12_000;
const SCALE = 4;
const BAND = 40;
const WINDOW = 160;
const REFERENCE_ORIGIN = 'http://reference.fidelity.invalid';

export interface Scores {
  text: number;
  links: number;
  images: number;
  visual: number;
  mean: number;
}

export interface Measurement extends Scores {
  name: string;
  referenceHeight: number;
  candidateHeight: number;
  /** Reference links missing from the candidate, and images, for the report. */
  missingLinks: string[];
  missingImages: string[];
  ms: number;
}

interface PageFacts {
  text: string;
  links: string[];
  images: string[];
  height: number;
}

/** tsx keeps function names with a `__name` helper that the page does not have; evaluated functions need it. */
const NAME_SHIM = 'globalThis.__name = globalThis.__name || ((f) => f)';


/** A PNG of one colour, written by hand so that no image library is needed. */
export function solidPng(width: number, height: number, rgb: [number, number, number]): Buffer {
  const crcTable = Array.from({ length: 256 }, (_, n) => {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    return c >>> 0;
  });
  const crc = (buf: Buffer) => {
    let c = 0xffffffff;
    for (const b of buf) c = crcTable[(c ^ b) & 0xff]! ^ (c >>> 8);
    return (c ^ 0xffffffff) >>> 0;
  };
  const chunk = (type: string, data: Buffer) => {
    const len = Buffer.alloc(4);
    len.writeUInt32BE(data.length);
    const body = Buffer.concat([Buffer.from(type, 'ascii'), data]);
    const sum = Buffer.alloc(4);
    sum.writeUInt32BE(crc(body));
    return Buffer.concat([len, body, sum]);
  };
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(width, 0);
  ihdr.writeUInt32BE(height, 4);
  ihdr[8] = 8; // bit depth
  ihdr[9] = 2; // truecolour
  const row = Buffer.alloc(1 + width * 3);
  for (let x = 0; x < width; x++) row.set(rgb, 1 + x * 3);
  const raw = Buffer.concat(Array.from({ length: height }, () => row));
  return Buffer.concat([
    Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
    chunk('IHDR', ihdr), chunk('IDAT', deflateSync(raw)), chunk('IEND', Buffer.alloc(0)),
  ]);
}

/** The sender's URL of an image proxy URL (web/image-proxy.ts: /img/<signature>/<base64url of the URL>); any other URL as it is. */
export function senderImageUrl(url: string): string {
  const m = /\/img\/[A-Za-z0-9_-]{43}\/([A-Za-z0-9_-]+)$/.exec(url);
  return m ? Buffer.from(m[1]!, 'base64url').toString('utf8') : url;
}

/** The one placeholder every remote image becomes, on both sides. */
export const PLACEHOLDER = solidPng(120, 80, [200, 200, 200]);

const escapeHtml = (s: string) => s.replace(/[&<>"]/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;' })[c]!);

/** How a desktop mail client shows plain text: preformatted, wrapped, fixed-width. */
function plainTextBlock(text: string): string {
  return `<pre style="white-space:pre-wrap;word-wrap:break-word;font-family:monospace">${escapeHtml(text)}</pre>`;
}

function plainTextDocument(text: string): string {
  return `<!doctype html><html><head><meta charset="utf-8"></head><body>${plainTextBlock(text)}</body></html>`;
}

/** What a desktop client shows for a message part that is itself a message: its headers, then its body. */
async function nestedMessages(attachments: Attachment[], parts: Map<string, Attachment>): Promise<string> {
  let out = '';
  for (const a of attachments) {
    if (a.contentType.toLowerCase() !== 'message/rfc822') continue;
    const inner = await simpleParser(repairMime(a.content), { skipTextToHtml: true });
    collectParts(inner.attachments, parts);
    const header = (label: string, value: string | undefined) => value ? `<tr><th style="text-align:right;padding-right:6px">${label}:</th><td>${escapeHtml(value)}</td></tr>` : '';
    const from = inner.from?.text;
    const to = Array.isArray(inner.to) ? inner.to.map((t) => t.text).join(', ') : inner.to?.text;
    const body = typeof inner.html === 'string' && inner.html.trim() !== ''
      ? inner.html.replace(/^[\s\S]*?<body[^>]*>|<\/body>[\s\S]*$/gi, '')
      : plainTextBlock(inner.text ?? '');
    out += `<hr><table>${header('Subject', inner.subject)}${header('From', from)}${header('Date', inner.date?.toUTCString())}${header('To', to)}</table>${body}`
      + await nestedMessages(inner.attachments, parts);
  }
  return out;
}

function collectParts(attachments: Attachment[], parts: Map<string, Attachment>): void {
  for (const a of attachments) {
    const id = (a.contentId ?? '').replace(/^<|>$/g, '');
    if (id) parts.set(id.toLowerCase(), a);
  }
}

/**
 * The reference document of a message and the inline parts its cid: URLs point to. Parts that
 * are messages (forwards, digests) are shown after the body with their headers, as Thunderbird does.
 */
export async function referenceOf(raw: Buffer): Promise<{ html: string; parts: Map<string, Attachment> }> {
  const mail = await simpleParser(repairMime(raw), { skipTextToHtml: true });
  const parts = new Map<string, Attachment>();
  collectParts(mail.attachments, parts);
  let html = typeof mail.html === 'string' && mail.html.trim() !== '' ? mail.html : plainTextDocument(mail.text ?? '');
  const nested = await nestedMessages(mail.attachments, parts);
  if (nested) html = /<\/body>/i.test(html) ? html.replace(/<\/body>(?![\s\S]*<\/body>)/i, `${nested}</body>`) : html + nested;
  const cidUrl = (cid: string) => `${REFERENCE_ORIGIN}/cid/${encodeURIComponent(cid)}`;
  return {
    html: html.replace(/\bcid:([^"'()\s>]+)/gi, (_, cid: string) => cidUrl(cid)),
    parts,
  };
}

/** Words of visible text: letters and digits, lower-cased; CJK characters one by one. */
export function words(text: string): string[] {
  const out: string[] = [];
  for (const w of text.toLowerCase().normalize('NFKC').match(/[\p{L}\p{N}]+/gu) ?? []) {
    if (/[\p{sc=Han}\p{sc=Hiragana}\p{sc=Katakana}\p{sc=Hangul}]/u.test(w)) out.push(...w.split(/(?:)/u));
    else out.push(w);
  }
  return out;
}

/** Multiset Dice coefficient of two word lists. */
export function dice(a: string[], b: string[]): number {
  if (a.length === 0 && b.length === 0) return 1;
  const counts = new Map<string, number>();
  for (const w of a) counts.set(w, (counts.get(w) ?? 0) + 1);
  let common = 0;
  for (const w of b) {
    const n = counts.get(w) ?? 0;
    if (n > 0) {
      common++;
      counts.set(w, n - 1);
    }
  }
  return (2 * common) / (a.length + b.length);
}

function normalUrl(u: string): string {
  try {
    const url = new URL(u);
    return url.href;
  } catch {
    return u.trim();
  }
}

export class FidelityHarness {
  private constructor(private readonly server: TestServer, private readonly browser: Browser, private readonly comparer: Page) {}

  static async start(): Promise<FidelityHarness> {
    const server = await startTestServer();
    try {
      const browser = await launchChromium();
      const comparer = await (await browser.newContext({ serviceWorkers: 'block' })).newPage();
      await comparer.route('**/*', (route) => route.abort('blockedbyclient'));
      await comparer.evaluate(NAME_SHIM);
      return new FidelityHarness(server, browser, comparer);
    } catch (e) {
      await server.stop();
      throw e;
    }
  }

  async stop(): Promise<void> {
    await this.browser.close().catch(() => undefined);
    await this.server.stop();
  }

  /** Delivers a message to a fresh feed and returns the URL of its entry body document. */
  async deliver(raw: Buffer, name: string): Promise<string> {
    const feed = await createFeed(this.server.base, name);
    const info = await sendRaw(this.server.smtpPort, feed.address, raw);
    if (!/^250 /.test(info.response)) throw new Error(`${name}: SMTP answered ${info.response}`);
    const [entry] = await waitForEntries(feed.feeds.json, 'json', 1, 20_000, name);
    return `${entry!.link.replace(/\/$/, '')}/body`;
  }

  /** A context at 700 px with JavaScript off, in which remote images are the placeholder and nothing else remote loads. */
  private async context(reference?: { html: string; parts: Map<string, Attachment> }): Promise<BrowserContext> {
    const context = await this.browser.newContext({ viewport: { width: WIDTH, height: VIEW_HEIGHT }, javaScriptEnabled: false, serviceWorkers: 'block', deviceScaleFactor: 1 });
    const own = new URL(this.server.base).origin;
    await context.route('**/*', async (route) => {
      const req = route.request();
      const url = new URL(req.url());
      if (reference && url.origin === REFERENCE_ORIGIN) {
        if (url.pathname === '/') return route.fulfill({ status: 200, contentType: 'text/html; charset=utf-8', body: reference.html });
        const part = reference.parts.get(decodeURIComponent(url.pathname.replace(/^\/cid\//, '')).toLowerCase());
        if (part) return route.fulfill({ status: 200, contentType: part.contentType, body: part.content });
        return route.fulfill({ status: 404, body: '' });
      }
      if (!reference && url.origin === own) {
        // The image proxy's URLs stand for the sender's images: the placeholder, as for any remote image.
        if (url.pathname.startsWith('/img/')) return route.fulfill({ status: 200, contentType: 'image/png', body: PLACEHOLDER });
        return route.continue();
      }
      if (req.resourceType() === 'image' && /^https?:$/.test(url.protocol)) return route.fulfill({ status: 200, contentType: 'image/png', body: PLACEHOLDER });
      return route.abort('blockedbyclient');
    });
    return context;
  }

  /** Loads a URL in a context, takes the full-page screenshot and reads text, links and images. */
  private async shoot(context: BrowserContext, url: string): Promise<{ png: Buffer; facts: PageFacts }> {
    const page = await context.newPage();
    await page.goto(url, { waitUntil: 'load', timeout: 30_000 });
    await page.evaluate(NAME_SHIM);
    // JavaScript is off for the page; the utility world Playwright evaluates in still runs.
    const facts = await page.evaluate(() => {
      const visible = (el: Element) => {
        const r = el.getBoundingClientRect();
        const s = getComputedStyle(el);
        return r.width > 2 && r.height > 2 && s.visibility !== 'hidden' && s.display !== 'none';
      };
      return {
        text: document.body?.innerText ?? '',
        // Links as written: absolute http(s) targets only (a relative "#" means nothing in a mail client).
        links: [...document.querySelectorAll('a[href]')].map((a) => a.getAttribute('href')!.trim()).filter((h) => /^https?:\/\//i.test(h)),
        images: [...document.querySelectorAll('img')].filter(visible).map((i) => (i as HTMLImageElement).currentSrc || (i as HTMLImageElement).src),
        height: Math.max(document.documentElement.scrollHeight, document.body?.scrollHeight ?? 0),
      };
    });
    // An image shown through the image proxy is the sender's image it names.
    facts.images = facts.images.map(senderImageUrl);
    const png = await page.screenshot({ fullPage: true, clip: { x: 0, y: 0, width: WIDTH, height: Math.min(facts.height, MAX_HEIGHT) } });
    await page.close();
    return { png, facts };
  }

  /** The visual similarity of two screenshots (see the file's comment). */
  async visual(referencePng: Buffer, candidatePng: Buffer, referenceHeight: number, candidateHeight: number): Promise<number> {
    const score = await this.comparer.evaluate(async ({ a, b, scale, band, window, width }) => {
      const load = async (b64: string) => {
        const img = new Image();
        img.src = `data:image/png;base64,${b64}`;
        await img.decode();
        return img;
      };
      const [ia, ib] = await Promise.all([load(a), load(b)]);
      const w = Math.ceil(width / scale);
      const rows = Math.ceil(Math.max(ia.naturalHeight, ib.naturalHeight) / scale);
      const pixels = (img: HTMLImageElement) => {
        const c = document.createElement('canvas');
        c.width = w;
        c.height = rows;
        const g = c.getContext('2d')!;
        g.fillStyle = '#fff';
        g.fillRect(0, 0, w, rows);
        g.imageSmoothingEnabled = true;
        g.imageSmoothingQuality = 'high';
        const h = Math.ceil(img.naturalHeight / scale);
        g.drawImage(img, 0, 0, Math.min(img.naturalWidth, width), img.naturalHeight, 0, 0, Math.min(img.naturalWidth, width) / scale, h);
        return { data: g.getImageData(0, 0, w, rows).data, rows: h };
      };
      const pa = pixels(ia);
      const pb = pixels(ib);
      const bandRows = band / scale;
      const win = window / scale;
      // Band of `from` at row y against `to` at row y2: 1 - mean absolute difference.
      const similarity = (from: Uint8ClampedArray, y: number, to: Uint8ClampedArray, y2: number) => {
        let diff = 0;
        let n = 0;
        for (let r = 0; r < bandRows; r++) {
          const ry = y + r;
          const ry2 = y2 + r;
          if (ry >= rows) break;
          for (let x = 0; x < w; x++) {
            const i = (ry * w + x) * 4;
            const j = ry2 >= 0 && ry2 < rows ? (ry2 * w + x) * 4 : -1;
            for (let k = 0; k < 3; k++) diff += Math.abs(from[i + k]! - (j < 0 ? 255 : to[j + k]!));
            n += 3;
          }
        }
        return n === 0 ? 1 : 1 - diff / (255 * n);
      };
      const direction = (from: { data: Uint8ClampedArray; rows: number }, to: { data: Uint8ClampedArray; rows: number }) => {
        let total = 0;
        let bands = 0;
        let offset = 0;
        for (let y = 0; y < Math.max(from.rows, 1); y += bandRows) {
          let best = -1;
          let bestOffset = offset;
          // Only where the other page has content: its white padding below must not match.
          const lo = Math.max(offset - win, -y);
          const hi = Math.max(lo, Math.min(offset + win, to.rows - bandRows - y));
          for (let d = lo; d <= hi; d++) {
            const s = similarity(from.data, y, to.data, y + d);
            if (s > best || (s === best && Math.abs(d - offset) < Math.abs(bestOffset - offset))) {
              best = s;
              bestOffset = d;
            }
          }
          offset = bestOffset;
          total += best;
          bands++;
        }
        return bands === 0 ? 1 : total / bands;
      };
      return (direction(pb, pa) + direction(pa, pb)) / 2;
    }, { a: referencePng.toString('base64'), b: candidatePng.toString('base64'), scale: SCALE, band: BAND, window: WINDOW, width: WIDTH });
    const ratio = Math.min(referenceHeight, candidateHeight) / Math.max(referenceHeight, candidateHeight, 1);
    return score * Math.min(1, ratio / 0.9);
  }

  /** Measures one message; `bodyUrl` when it was delivered already. */
  async measure(name: string, raw: Buffer, bodyUrl?: string): Promise<Measurement & { referencePng: Buffer; candidatePng: Buffer }> {
    const started = Date.now();
    const url = bodyUrl ?? await this.deliver(raw, name);
    const reference = await referenceOf(raw);
    const refContext = await this.context(reference);
    const candContext = await this.context();
    try {
      const ref = await this.shoot(refContext, `${REFERENCE_ORIGIN}/`);
      const cand = await this.shoot(candContext, url);
      const text = dice(words(ref.facts.text), words(cand.facts.text));
      const refLinks = [...new Set(ref.facts.links.map(normalUrl))];
      const candLinks = new Set(cand.facts.links.map(normalUrl));
      const missingLinks = refLinks.filter((l) => !candLinks.has(l));
      const links = refLinks.length === 0 ? 1 : 1 - missingLinks.length / refLinks.length;
      const remote = (u: string) => /^https?:/i.test(u) && !u.startsWith(REFERENCE_ORIGIN) && !u.startsWith(this.server.base);
      const refRemote = ref.facts.images.filter(remote).map(normalUrl);
      const candRemote = new Set(cand.facts.images.filter(remote).map(normalUrl));
      const missingImages = refRemote.filter((u) => !candRemote.has(u));
      const refInline = ref.facts.images.length - refRemote.length;
      const candInline = cand.facts.images.length - cand.facts.images.filter(remote).length;
      const inlineMissing = Math.max(0, refInline - candInline);
      for (let i = 0; i < inlineMissing; i++) missingImages.push('(an inline cid: image)');
      const images = ref.facts.images.length === 0 ? 1 : 1 - missingImages.length / ref.facts.images.length;
      const visual = await this.visual(ref.png, cand.png, ref.facts.height, cand.facts.height);
      return {
        name, text, links, images, visual, mean: (text + links + images + visual) / 4,
        referenceHeight: ref.facts.height, candidateHeight: cand.facts.height,
        missingLinks, missingImages: [...new Set(missingImages)], ms: Date.now() - started,
        referencePng: ref.png, candidatePng: cand.png,
      };
    } finally {
      await refContext.close();
      await candContext.close();
    }
  }
}

export interface CorpusEntry {
  file: string;
  sender: string;
  licence: string;
  classes: number[];
  knownBad: string | null;
  path: string;
}

export const CORPUS_DIR = new URL('../fixtures/newsletters/', import.meta.url);

/** The rows of test/fixtures/newsletters/MANIFEST.md. */
export function readCorpus(): CorpusEntry[] {
  const text = readFileSync(new URL('MANIFEST.md', CORPUS_DIR), 'utf8');
  const rows: CorpusEntry[] = [];
  for (const line of text.split('\n')) {
    const cells = line.split(/(?<!\\)\|/).slice(1, -1).map((c) => c.trim());
    if (cells.length !== 7 || !cells[0]!.endsWith('.eml')) continue;
    const [file, sender, , licence, classes, , knownBad] = cells as [string, string, string, string, string, string, string];
    rows.push({
      file, sender, licence,
      classes: (classes.match(/\b\d+\b/g) ?? []).map(Number),
      knownBad: knownBad === '-' ? null : knownBad,
      path: fileURLToPath(new URL(file, CORPUS_DIR)),
    });
  }
  return rows;
}

/** The thresholds the test holds every message to (unless the manifest marks it knownBad). */
export const THRESHOLDS = { mean: 0.75, text: 0.98, links: 1, images: 1, visual: 0.75 };

export function failures(m: Scores): string[] {
  return (Object.keys(THRESHOLDS) as (keyof typeof THRESHOLDS)[])
    .filter((k) => m[k] < THRESHOLDS[k] - 1e-9)
    .map((k) => `${k} ${m[k].toFixed(3)} < ${THRESHOLDS[k]}`);
}

export function median(values: number[]): number {
  const s = [...values].sort((a, b) => a - b);
  if (s.length === 0) return NaN;
  const mid = Math.floor(s.length / 2);
  return s.length % 2 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
}

/** One line per message and the median/min lines, as the bench prints and records them. */
export function table(results: Measurement[]): string {
  const f = (n: number) => n.toFixed(3);
  const lines = [`${'message'.padEnd(44)} ${'text'.padStart(6)} ${'links'.padStart(6)} ${'images'.padStart(6)} ${'visual'.padStart(6)} ${'mean'.padStart(6)}  heights (ref/feedmail)`];
  for (const r of results) {
    lines.push(`${r.name.padEnd(44)} ${f(r.text).padStart(6)} ${f(r.links).padStart(6)} ${f(r.images).padStart(6)} ${f(r.visual).padStart(6)} ${f(r.mean).padStart(6)}  ${r.referenceHeight}/${r.candidateHeight}`);
  }
  for (const [label, fn] of [['median', median], ['min', (v: number[]) => Math.min(...v)]] as const) {
    const col = (k: keyof Scores) => f(fn(results.map((r) => r[k]))).padStart(6);
    lines.push(`${label.padEnd(44)} ${col('text')} ${col('links')} ${col('images')} ${col('visual')} ${col('mean')}`);
  }
  return lines.join('\n');
}
