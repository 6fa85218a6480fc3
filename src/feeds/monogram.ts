/**
 * Generated icons: a letter on a colour derived from a seed (a sender's domain, a feed's
 * title), as a small PNG written here (zlib from Node, no image library). Feed readers
 * show it next to the feed; it never comes from, or points at, a sender's site.
 */
import { createHash } from 'node:crypto';
import { deflateSync } from 'node:zlib';

/** Width and height of a generated icon in pixels. */
export const MONOGRAM_SIZE = 128;

/** 5×7 glyphs, rows top to bottom separated by '/' ('#' is ink). '@' stands for any character without one. */
const GLYPHS: Record<string, string> = {
  A: '.###./#...#/#...#/#####/#...#/#...#/#...#', B: '####./#...#/#...#/####./#...#/#...#/####.', C: '.###./#...#/#..../#..../#..../#...#/.###.',
  D: '####./#...#/#...#/#...#/#...#/#...#/####.', E: '#####/#..../#..../####./#..../#..../#####', F: '#####/#..../#..../####./#..../#..../#....',
  G: '.###./#...#/#..../#.###/#...#/#...#/.####', H: '#...#/#...#/#...#/#####/#...#/#...#/#...#', I: '.###./..#../..#../..#../..#../..#../.###.',
  J: '..###/...#./...#./...#./...#./#..#./.##..', K: '#...#/#..#./#.#../##.../#.#../#..#./#...#', L: '#..../#..../#..../#..../#..../#..../#####',
  M: '#...#/##.##/#.#.#/#.#.#/#...#/#...#/#...#', N: '#...#/#...#/##..#/#.#.#/#..##/#...#/#...#', O: '.###./#...#/#...#/#...#/#...#/#...#/.###.',
  P: '####./#...#/#...#/####./#..../#..../#....', Q: '.###./#...#/#...#/#...#/#.#.#/#..#./.##.#', R: '####./#...#/#...#/####./#.#../#..#./#...#',
  S: '.####/#..../#..../.###./....#/....#/####.', T: '#####/..#../..#../..#../..#../..#../..#..', U: '#...#/#...#/#...#/#...#/#...#/#...#/.###.',
  V: '#...#/#...#/#...#/#...#/#...#/.#.#./..#..', W: '#...#/#...#/#...#/#.#.#/#.#.#/#.#.#/.#.#.', X: '#...#/#...#/.#.#./..#../.#.#./#...#/#...#',
  Y: '#...#/#...#/.#.#./..#../..#../..#../..#..', Z: '#####/....#/...#./..#../.#.../#..../#####', '0': '.###./#...#/#..##/#.#.#/##..#/#...#/.###.',
  '1': '..#../.##../..#../..#../..#../..#../.###.', '2': '.###./#...#/....#/...#./..#../.#.../#####', '3': '#####/...#./..#../...#./....#/#...#/.###.',
  '4': '...#./..##./.#.#./#..#./#####/...#./...#.', '5': '#####/#..../####./....#/....#/#...#/.###.', '6': '..##./.#.../#..../####./#...#/#...#/.###.',
  '7': '#####/....#/...#./..#../.#.../.#.../.#...', '8': '.###./#...#/#...#/.###./#...#/#...#/.###.', '9': '.###./#...#/#...#/.####/....#/...#./.##..',
  '@': '.###./#...#/#.###/#.#.#/#.##./#..../.###.',
};

/** The letter an icon shows for a text: its first letter or digit, accents dropped; '@' when it has none. */
export function monogramLetter(text: string): string {
  const folded = text.normalize('NFD').replace(/[\u0300-\u036f]/g, '').toUpperCase();
  const m = /[A-Z0-9]/.exec(folded);
  return m ? m[0] : '@';
}

/**
 * The name a domain is known by, for its letter: the label before the public suffix
 * (`news.example.co.uk` → `example`), guessed without a suffix list: a two-letter top
 * level with a short second level (`co.uk`, `com.au`) counts as one suffix.
 */
export function domainName(domain: string): string {
  const labels = domain.split('.').filter(Boolean);
  if (labels.length < 2) return labels[0] ?? '';
  const last = labels[labels.length - 1]!;
  const second = labels[labels.length - 2]!;
  if (labels.length >= 3 && last.length === 2 && second.length <= 3) return labels[labels.length - 3]!;
  return second;
}

function hslToRgb(h: number, s: number, l: number): [number, number, number] {
  const a = s * Math.min(l, 1 - l);
  const f = (n: number) => {
    const k = (n + h / 30) % 12;
    return Math.round(255 * (l - a * Math.max(-1, Math.min(k - 3, 9 - k, 1))));
  };
  return [f(0), f(8), f(4)];
}

/** A colour for a seed: any hue, saturation and lightness that keep white text readable. */
export function monogramColor(seed: string): [number, number, number] {
  const h = createHash('sha256').update(seed).digest();
  return hslToRgb(((h[0]! << 8) | h[1]!) % 360, 0.45 + (h[2]! % 20) / 100, 0.36 + (h[3]! % 8) / 100);
}

const CRC_TABLE = (() => {
  const t = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    t[n] = c >>> 0;
  }
  return t;
})();

function crc32(data: Buffer): number {
  let c = 0xffffffff;
  for (const b of data) c = CRC_TABLE[(c ^ b) & 0xff]! ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

function chunk(type: string, data: Buffer): Buffer {
  const head = Buffer.alloc(8);
  head.writeUInt32BE(data.length, 0);
  head.write(type, 4, 'ascii');
  const crc = Buffer.alloc(4);
  crc.writeUInt32BE(crc32(Buffer.concat([head.subarray(4), data])), 0);
  return Buffer.concat([head, data, crc]);
}

/** A PNG of `letter` (see monogramLetter) in white on the seed's colour. */
export function monogramPng(seed: string, letter: string): Buffer {
  const size = MONOGRAM_SIZE;
  const glyph = (GLYPHS[letter] ?? GLYPHS['@']!).replace(/\//g, '');
  const [r, g, b] = monogramColor(seed);
  const scale = Math.floor(size / 11);
  const x0 = Math.floor((size - 5 * scale) / 2);
  const y0 = Math.floor((size - 7 * scale) / 2);
  const stride = 1 + size * 3;
  const pixels = Buffer.alloc(stride * size);
  for (let y = 0; y < size; y++) {
    pixels[y * stride] = 0; // filter: none
    const gy = Math.floor((y - y0) / scale);
    for (let x = 0; x < size; x++) {
      const gx = Math.floor((x - x0) / scale);
      const ink = y >= y0 && x >= x0 && gx < 5 && gy < 7 && glyph[gy * 5 + gx] === '#';
      const at = y * stride + 1 + x * 3;
      pixels[at] = ink ? 255 : r;
      pixels[at + 1] = ink ? 255 : g;
      pixels[at + 2] = ink ? 255 : b;
    }
  }
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(size, 0);
  ihdr.writeUInt32BE(size, 4);
  ihdr[8] = 8; // bit depth
  ihdr[9] = 2; // colour type: RGB
  return Buffer.concat([
    Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
    chunk('IHDR', ihdr),
    chunk('IDAT', deflateSync(pixels, { level: 9 })),
    chunk('IEND', Buffer.alloc(0)),
  ]);
}
