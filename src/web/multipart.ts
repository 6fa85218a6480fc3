/**
 * A small multipart/form-data reader (RFC 7578) for the one upload feedmail takes (a
 * feed icon), so forms work without JavaScript and without a parsing library. The
 * whole body is read under a byte limit first; parts, their headers and their number
 * are bounded; anything malformed is a 400, never a guess.
 */
import type { IncomingMessage } from 'node:http';
import { BadRequestError, BodyTooLargeError } from '../errors.js';
import { readBody } from './http.js';

export interface FormPart {
  name: string;
  /** Set for file inputs (possibly ''), undefined for plain fields. */
  filename?: string;
  contentType?: string;
  data: Buffer;
}

const MAX_PARTS = 16;
const MAX_HEADER_BYTES = 4096;
const CRLF = Buffer.from('\r\n');
const HEADER_END = Buffer.from('\r\n\r\n');

/** The boundary a Content-Type names, when it is multipart/form-data with a valid one. */
export function multipartBoundary(contentType: string | undefined): string | undefined {
  if (!contentType || !/^\s*multipart\/form-data\s*(;|$)/i.test(contentType)) return undefined;
  const m = /;\s*boundary\s*=\s*(?:"([^"]{1,70})"|([^";\s]{1,70}))\s*(?:;|$)/i.exec(contentType);
  const boundary = m?.[1] ?? m?.[2];
  // RFC 2046: 1 to 70 characters from a small set, not ending in a space.
  return boundary && /^[0-9A-Za-z'()+_,\-./:=? ]*[0-9A-Za-z'()+_,\-./:=?]$/.test(boundary) ? boundary : undefined;
}

/** A header parameter (`name="x"`, `filename=x`), quoted-string escapes undone. */
function param(header: string, name: string): string | undefined {
  const m = new RegExp(`;\\s*${name}\\s*=\\s*(?:"((?:[^"\\\\]|\\\\.)*)"|([^;\\s]*))`, 'i').exec(header);
  if (!m) return undefined;
  return m[1] !== undefined ? m[1].replace(/\\(.)/g, '$1') : m[2];
}

/** Splits a multipart body into its parts. */
export function parseMultipart(body: Buffer, boundary: string): FormPart[] {
  const delimiter = Buffer.from(`--${boundary}`);
  const bad = (why: string) => new BadRequestError(`The form upload is malformed (${why})`);
  // The first delimiter starts the body or a line (whatever precedes it is a preamble, ignored).
  let at = body.subarray(0, delimiter.length).equals(delimiter) ? 0 : body.indexOf(Buffer.concat([CRLF, delimiter]));
  if (at < 0) throw bad('no boundary');
  if (at > 0) at += CRLF.length;
  const parts: FormPart[] = [];
  for (;;) {
    at += delimiter.length;
    if (body[at] === 0x2d && body[at + 1] === 0x2d) return parts; // "--": the last delimiter
    // Transport padding (spaces, tabs) may follow a delimiter before its line break.
    while (body[at] === 0x20 || body[at] === 0x09) at++;
    if (body[at] !== 0x0d || body[at + 1] !== 0x0a) throw bad('a boundary is not followed by a line break');
    at += CRLF.length;
    if (parts.length >= MAX_PARTS) throw bad(`more than ${MAX_PARTS} parts`);
    const headerEnd = body.indexOf(HEADER_END, at);
    if (headerEnd < 0 || headerEnd - at > MAX_HEADER_BYTES) throw bad('part headers too long or unterminated');
    const headers = body.subarray(at, headerEnd).toString('utf8').split('\r\n');
    const next = body.indexOf(Buffer.concat([CRLF, delimiter]), headerEnd + HEADER_END.length);
    if (next < 0) throw bad('the last part is not closed');
    const data = body.subarray(headerEnd + HEADER_END.length, next);
    let disposition: string | undefined;
    let contentType: string | undefined;
    for (const line of headers) {
      const colon = line.indexOf(':');
      if (colon <= 0) continue;
      const field = line.slice(0, colon).trim().toLowerCase();
      const value = line.slice(colon + 1).trim();
      if (field === 'content-disposition') disposition = value;
      else if (field === 'content-type') contentType = value;
    }
    if (!disposition || !/^form-data\s*(;|$)/i.test(disposition)) throw bad('a part is not form-data');
    const name = param(disposition, 'name');
    if (name === undefined) throw bad('a part has no name');
    parts.push({ name, filename: param(disposition, 'filename'), contentType, data: Buffer.from(data) });
    at = next + CRLF.length;
  }
}

/**
 * Reads a multipart/form-data request of at most `limit` bytes. Throws BadRequestError when
 * it is not multipart or is malformed, and BodyTooLargeError (as readBody) past the limit,
 * before reading more than the limit when the declared length says so.
 */
export async function readMultipart(req: IncomingMessage, limit: number): Promise<FormPart[]> {
  const boundary = multipartBoundary(req.headers['content-type']);
  if (!boundary) throw new BadRequestError('Expected a multipart/form-data upload (a form with enctype="multipart/form-data")');
  const declared = Number(req.headers['content-length'] ?? NaN);
  if (Number.isFinite(declared) && declared > limit) throw new BodyTooLargeError(limit);
  return parseMultipart(await readBody(req, limit), boundary);
}
