/**
 * The form bodies of Mailgun and SendGrid (multipart/form-data, or urlencoded),
 * read with busboy from the body the route has already read under its size cap,
 * and the JSON in them and in Postmark's body read with zod schemas. Anything
 * malformed, or past a limit, is a 400: never a guess, never a crash.
 */
import type { IncomingHttpHeaders } from 'node:http';
import busboy from 'busboy';
import type { z } from 'zod';
import { BadRequestError } from '../../errors.js';

export interface FormFile {
  /** The form field it came in (`attachment-1`, `attachment1`). */
  field: string;
  filename: string;
  contentType: string;
  data: Buffer;
}

export interface Form {
  /**
   * Fields by name, as bytes (each part read as latin1, so its bytes come back
   * unchanged): the raw message of `body-mime` / `email` must stay byte for byte what
   * the provider sent, and SendGrid names other charsets for its text fields.
   */
  fields: Map<string, Buffer>;
  files: FormFile[];
}

/** Enough for every field Mailgun and SendGrid send, and a newsletter's attachments. */
const LIMITS = { fields: 200, files: 100, parts: 300, fieldNameSize: 200, headerPairs: 20 };

/** A field as text (UTF-8), or undefined when it is absent. */
export function fieldText(form: Form, name: string): string | undefined {
  return form.fields.get(name)?.toString('utf8');
}

export function readForm(body: Buffer, headers: IncomingHttpHeaders): Promise<Form> {
  const bad = (why: string) => new BadRequestError(`The form is malformed (${why})`);
  return new Promise((resolve, reject) => {
    let parser: busboy.Busboy;
    try {
      // fieldSize and fileSize: the whole body is already within FEEDMAIL_MAX_MESSAGE_BYTES.
      parser = busboy({ headers, limits: { ...LIMITS, fieldSize: body.length, fileSize: body.length }, defCharset: 'latin1', defParamCharset: 'utf8' });
    } catch (err) {
      reject(bad((err as Error).message));
      return;
    }
    const form: Form = { fields: new Map(), files: [] };
    let failed = false;
    const fail = (why: string) => {
      if (failed) return;
      failed = true;
      reject(bad(why));
    };
    parser.on('field', (name, value, info) => {
      if (info.nameTruncated || info.valueTruncated) return fail('a field is too long');
      // Busboy decodes a part that names its own charset with it: those come back as UTF-8.
      form.fields.set(name, /[^\x00-\xff]/.test(value) ? Buffer.from(value, 'utf8') : Buffer.from(value, 'latin1'));
    });
    parser.on('file', (field, stream, info) => {
      const chunks: Buffer[] = [];
      stream.on('data', (chunk: Buffer) => chunks.push(chunk));
      stream.on('limit', () => fail('a file is too large'));
      stream.on('end', () => form.files.push({ field, filename: info.filename ?? '', contentType: info.mimeType, data: Buffer.concat(chunks) }));
    });
    parser.on('fieldsLimit', () => fail(`more than ${LIMITS.fields} fields`));
    parser.on('filesLimit', () => fail(`more than ${LIMITS.files} files`));
    parser.on('partsLimit', () => fail(`more than ${LIMITS.parts} parts`));
    parser.on('error', (err: Error) => fail(err.message));
    parser.on('close', () => {
      if (!failed) resolve(form);
    });
    parser.end(body);
  });
}

/** JSON text read with its schema, or BadRequestError (400) saying what was expected. */
export function parseJson<T>(text: string, schema: z.ZodType<T>, what: string): T {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    throw new BadRequestError(`Not JSON: expected ${what}`);
  }
  const parsed = schema.safeParse(value);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw new BadRequestError(`Not ${what}${issue ? ` (${issue.path.join('.') || 'top level'}: ${issue.message})` : ''}`);
  }
  return parsed.data;
}

/** A JSON field of a form read with its schema; undefined when the form has no such field. */
export function jsonField<T>(form: Form, name: string, schema: z.ZodType<T>): T | undefined {
  const text = fieldText(form, name);
  return text === undefined ? undefined : parseJson(text, schema, `the ${name} field as the provider sends it`);
}
