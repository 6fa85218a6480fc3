/**
 * Seeded mutations of real-looking mail, shared by the fuzz test (in-process
 * rendering) and the end-to-end fuzz run through SMTP and ingest.
 */
import { XSS_VECTORS } from './html-safety.js';

/** mulberry32: small, fast, and the same sequence everywhere for a given seed. */
export function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

type Rng = () => number;
const int = (rng: Rng, n: number) => Math.floor(rng() * n);
const pick = <T>(rng: Rng, list: readonly T[]): T => list[int(rng, list.length)]!;

const CHARSETS = ['utf-8', 'iso-8859-1', 'windows-1252', 'shift_jis', 'iso-2022-jp', 'gb18030', 'koi8-r', 'utf-16', 'utf-7', 'x-unknown', ''];
const HEADER_GARBAGE = ['', '=?utf-8?B?', '=?x?Q?=FF=FE?=', '<<>>', '"', 'multipart/mixed; boundary=', 'text/html; charset="', '\u00ff\u00fe', ';;;;', 'a'.repeat(5000)];

function latin1(b: Buffer): string {
  return b.toString('latin1');
}

/** Lines that start a MIME boundary, as [start, end) byte offsets. */
function boundaryLines(s: string): [number, number][] {
  return [...s.matchAll(/^--[^\r\n]+\r?\n?/gm)].map((m) => [m.index, m.index + m[0].length]);
}

const MUTATIONS: Record<string, (raw: Buffer, rng: Rng) => Buffer> = {
  truncate: (raw, rng) => raw.subarray(0, int(rng, raw.length + 1)),
  flipBytes: (raw, rng) => {
    const out = Buffer.from(raw);
    for (let n = 1 + int(rng, 8); n > 0 && out.length > 0; n--) {
      const at = int(rng, out.length);
      out[at] = out[at]! ^ (1 << int(rng, 8));
    }
    return out;
  },
  insertBytes: (raw, rng) => {
    const at = int(rng, raw.length + 1);
    const bytes = Buffer.from(Array.from({ length: 1 + int(rng, 16) }, () => pick(rng, [0, 0x0a, 0x0d, 0x3d, 0x3c, 0x3e, 0x22, 0x2d, 0xff, int(rng, 256)])));
    return Buffer.concat([raw.subarray(0, at), bytes, raw.subarray(at)]);
  },
  deleteBytes: (raw, rng) => {
    const at = int(rng, raw.length + 1);
    return Buffer.concat([raw.subarray(0, at), raw.subarray(at + 1 + int(rng, 64))]);
  },
  duplicateBoundary: (raw, rng) => {
    const s = latin1(raw);
    const lines = boundaryLines(s);
    if (lines.length === 0) return raw;
    const [a, b] = pick(rng, lines);
    const at = int(rng, s.length + 1);
    return Buffer.from(s.slice(0, at) + s.slice(a, b) + s.slice(at), 'latin1');
  },
  dropBoundary: (raw, rng) => {
    const s = latin1(raw);
    const lines = boundaryLines(s);
    if (lines.length === 0) return raw;
    const [a, b] = pick(rng, lines);
    return Buffer.from(s.slice(0, a) + s.slice(b), 'latin1');
  },
  corruptHeader: (raw, rng) => {
    const s = latin1(raw);
    const headerLines = [...s.matchAll(/^([A-Za-z-]+):[^\r\n]*/gm)];
    if (headerLines.length === 0) return raw;
    const m = pick(rng, headerLines);
    const replacement = pick(rng, [`${m[1]}: ${pick(rng, HEADER_GARBAGE)}`, `${m[1]}${pick(rng, HEADER_GARBAGE)}`, '', `${m[0]}\r\n${m[0]}`, `${m[0]}${pick(rng, HEADER_GARBAGE)}`]);
    return Buffer.from(s.slice(0, m.index) + replacement + s.slice(m.index + m[0].length), 'latin1');
  },
  swapCharset: (raw, rng) => {
    const s = latin1(raw);
    const replaced = s.replace(/charset=("?)[^";\r\n]*\1/gi, () => (rng() < 0.5 ? `charset="${pick(rng, CHARSETS)}"` : `charset=${pick(rng, CHARSETS)}`));
    return Buffer.from(replaced === s ? s.replace(/^(Content-Type: text\/[a-z]+)/im, `$1; charset=${pick(rng, CHARSETS)}`) : replaced, 'latin1');
  },
  injectIntoHtml: (raw, rng) => {
    // Raw snippets dropped where HTML sits (after a tag), whatever the transfer encoding.
    const s = latin1(raw);
    const tags = [...s.matchAll(/<[a-z][^>]*>/gi)];
    const snippet = Array.from({ length: 1 + int(rng, 3) }, () => pick(rng, XSS_VECTORS)).join('');
    const at = tags.length ? (() => { const m = pick(rng, tags); return m.index + m[0].length; })() : int(rng, s.length + 1);
    return Buffer.from(s.slice(0, at) + snippet + s.slice(at), 'utf8');
  },
  hostileHtmlPart: (raw, rng) => {
    // A fresh HTML part full of vectors next to the original body, so the sanitizer surely sees them.
    const html = Array.from({ length: 2 + int(rng, 6) }, () => pick(rng, XSS_VECTORS)).join(pick(rng, ['', '\r\n', '<p>x</p>', '<td>']));
    const encoding = pick(rng, ['8bit', 'base64', 'quoted-printable']);
    const body = encoding === 'base64' ? Buffer.from(html).toString('base64') : encoding === 'quoted-printable' ? html.replace(/=/g, '=3D') : html;
    const s = latin1(raw);
    const split = s.search(/\r?\n\r?\n/);
    const head = split === -1 ? s : s.slice(0, split);
    const rest = split === -1 ? '' : s.slice(split).replace(/^\r?\n\r?\n/, '');
    const headers = head.replace(/^Content-(Type|Transfer-Encoding):[^\r\n]*(\r?\n[ \t][^\r\n]*)*\r?\n?/gim, '');
    return Buffer.from(`${headers.trimEnd()}\r\nContent-Type: multipart/mixed; boundary="fz"\r\n\r\n--fz\r\nContent-Type: text/html; charset=utf-8\r\nContent-Transfer-Encoding: ${encoding}\r\n\r\n${body}\r\n--fz\r\nContent-Type: text/plain\r\n\r\n${rest}\r\n--fz--\r\n`, 'utf8');
  },
  nestDeep: (raw, rng) => {
    const s = latin1(raw);
    const split = s.search(/\r?\n\r?\n/);
    if (split === -1) return raw;
    const head = s.slice(0, split);
    const body = s.slice(split).replace(/^\r?\n\r?\n/, '');
    const depth = 1 + int(rng, 120);
    const type = /^Content-Type:[^\r\n]*(\r?\n[ \t][^\r\n]*)*/im.exec(head)?.[0] ?? 'Content-Type: text/plain';
    let inner = `${type}\r\n\r\n${body}`;
    for (let d = 0; d < depth; d++) {
      const kind = pick(rng, ['mixed', 'related', 'alternative']);
      inner = `Content-Type: multipart/${kind}; boundary="n${d}"\r\n\r\n--n${d}\r\n${inner}\r\n--n${d}--\r\n`;
    }
    const headers = head.replace(/^Content-Type:[^\r\n]*(\r?\n[ \t][^\r\n]*)*\r?\n?/gim, '');
    return Buffer.from(`${headers.trimEnd()}\r\n${inner}`, 'latin1');
  },
};
const MUTATION_NAMES = Object.keys(MUTATIONS);

export interface Case {
  id: number;
  fixture: string;
  mutations: string[];
  raw: Buffer;
}

export function* cases(fixtures: { name: string; raw: Buffer }[], count: number, seed: number): Generator<Case> {
  const rng = prng(seed);
  for (let id = 0; id < count; id++) {
    const f = pick(rng, fixtures);
    const mutations = Array.from({ length: 1 + int(rng, 3) }, () => pick(rng, MUTATION_NAMES));
    let raw = f.raw;
    for (const m of mutations) raw = MUTATIONS[m]!(raw, rng);
    yield { id, fixture: f.name, mutations, raw };
  }
}

