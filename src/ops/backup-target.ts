/**
 * Where snapshots are kept (issue 13): a directory, or an S3-compatible bucket under a
 * prefix. Both hold `<snapshot>/<object>` keys; a snapshot is complete once its
 * `manifest.json` is there, which is always written last.
 */
import fs from 'node:fs';
import path from 'node:path';
import { pipeline } from 'node:stream/promises';
import type { Readable } from 'node:stream';
import type { S3Client, S3ClientConfig } from '@aws-sdk/client-s3';
import type { Config } from '../config.js';

type S3Sdk = typeof import('@aws-sdk/client-s3');
let s3Sdk: Promise<S3Sdk> | undefined;
/** The AWS SDK takes about 100 ms and tens of MB to load: it is loaded when an s3:// target is first used, not at every start of every command. */
function loadS3Sdk(): Promise<S3Sdk> {
  return s3Sdk ??= import('@aws-sdk/client-s3');
}

export const MANIFEST = 'manifest.json';

export interface BackupTarget {
  /** Where it is, for people and logs (never with credentials). */
  readonly description: string;
  /** Stores a local file as `key`; `onBytes` hears of the bytes sent. */
  putFile(key: string, file: string, onBytes?: (bytes: number) => void): Promise<void>;
  putText(key: string, text: string): Promise<void>;
  /** Writes `key` into a local file; false when there is no such object. */
  getFile(key: string, file: string): Promise<boolean>;
  getText(key: string): Promise<string | undefined>;
  /** The snapshot names (first path segments) that have a manifest, any order. */
  completeSnapshots(): Promise<string[]>;
  /** Deletes every object of a snapshot, its manifest first (so it stops counting at once). */
  removeSnapshot(snapshot: string): Promise<void>;
}

export function isS3Url(target: string): boolean {
  return target.startsWith('s3://');
}

export type S3Settings = Pick<Config, 's3Endpoint' | 's3Region' | 's3AccessKeyId' | 's3SecretAccessKey' | 's3ForcePathStyle'>;

export interface TargetOptions {
  /** Files larger than this are uploaded in parts (S3). */
  multipartThresholdBytes?: number;
  partBytes?: number;
}

export function openTarget(target: string, s3: S3Settings, options: TargetOptions = {}): BackupTarget {
  return isS3Url(target) ? new S3Target(target, s3, options) : new DirectoryTarget(path.resolve(target));
}

function checkKey(key: string): string {
  if (key.split('/').some((p) => p === '' || p === '.' || p === '..')) throw new Error(`backup: invalid object name "${key}"`);
  return key;
}

/** Writes and renames into place, synced, so a crash never leaves a half-written object under its real name. */
class DirectoryTarget implements BackupTarget {
  readonly description: string;
  constructor(private readonly dir: string) {
    this.description = dir;
  }

  #path(key: string): string {
    return path.join(this.dir, checkKey(key));
  }

  async #place(key: string, write: (tmp: string) => Promise<void>): Promise<void> {
    const dest = this.#path(key);
    await fs.promises.mkdir(path.dirname(dest), { recursive: true });
    const tmp = `${dest}.partial`;
    await write(tmp);
    const fh = await fs.promises.open(tmp, 'r+');
    try {
      await fh.sync();
    } finally {
      await fh.close();
    }
    await fs.promises.rename(tmp, dest);
    const dirHandle = await fs.promises.open(path.dirname(dest), 'r');
    try {
      await dirHandle.sync();
    } finally {
      await dirHandle.close();
    }
  }

  async putFile(key: string, file: string, onBytes?: (bytes: number) => void): Promise<void> {
    await this.#place(key, async (tmp) => {
      const input = fs.createReadStream(file);
      input.on('data', (chunk) => onBytes?.(chunk.length));
      await pipeline(input, fs.createWriteStream(tmp));
    });
  }

  async putText(key: string, text: string): Promise<void> {
    await this.#place(key, (tmp) => fs.promises.writeFile(tmp, text));
  }

  async getFile(key: string, file: string): Promise<boolean> {
    try {
      await pipeline(fs.createReadStream(this.#path(key)), fs.createWriteStream(file));
      return true;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return false;
      throw err;
    }
  }

  async getText(key: string): Promise<string | undefined> {
    try {
      return await fs.promises.readFile(this.#path(key), 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw err;
    }
  }

  async completeSnapshots(): Promise<string[]> {
    let names: string[];
    try {
      names = await fs.promises.readdir(this.dir);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
      throw err;
    }
    return names.filter((n) => fs.existsSync(path.join(this.dir, n, MANIFEST)));
  }

  async removeSnapshot(snapshot: string): Promise<void> {
    const dir = this.#path(snapshot);
    await fs.promises.rm(path.join(dir, MANIFEST), { force: true });
    await fs.promises.rm(dir, { recursive: true, force: true });
  }
}

const DEFAULT_MULTIPART_THRESHOLD = 64 * 1024 * 1024;
const DEFAULT_PART_BYTES = 16 * 1024 * 1024;

class S3Target implements BackupTarget {
  readonly description: string;
  readonly #clientConfig: S3ClientConfig;
  #s3?: Promise<{ client: S3Client; sdk: S3Sdk }>;
  readonly #bucket: string;
  readonly #prefix: string;
  readonly #threshold: number;
  readonly #partBytes: number;

  constructor(url: string, s3: S3Settings, options: TargetOptions) {
    const m = /^s3:\/\/([^/]+)(?:\/(.*))?$/.exec(url);
    if (!m) throw new Error(`backup: "${url}" is not an s3://bucket/prefix URL`);
    this.#bucket = m[1]!;
    this.#prefix = (m[2] ?? '').replace(/^\/+|\/+$/g, '');
    this.description = `s3://${this.#bucket}${this.#prefix ? `/${this.#prefix}` : ''}${s3.s3Endpoint ? ` at ${s3.s3Endpoint}` : ''}`;
    this.#threshold = options.multipartThresholdBytes ?? DEFAULT_MULTIPART_THRESHOLD;
    // S3 refuses parts below 5 MiB (all but the last).
    this.#partBytes = Math.max(5 * 1024 * 1024, options.partBytes ?? DEFAULT_PART_BYTES);
    this.#clientConfig = {
      region: s3.s3Region,
      endpoint: s3.s3Endpoint || undefined,
      forcePathStyle: s3.s3ForcePathStyle,
      credentials: s3.s3AccessKeyId ? { accessKeyId: s3.s3AccessKeyId, secretAccessKey: s3.s3SecretAccessKey } : undefined,
      // Checksums only where the API requires them: many S3-compatible stores do not take
      // the SDK's newer default trailing checksums. Snapshots carry their own SHA-256s.
      requestChecksumCalculation: 'WHEN_REQUIRED',
      responseChecksumValidation: 'WHEN_REQUIRED',
    };
  }

  /** The client, made on first use. */
  #connect(): Promise<{ client: S3Client; sdk: S3Sdk }> {
    return this.#s3 ??= loadS3Sdk().then((sdk) => ({ sdk, client: new sdk.S3Client(this.#clientConfig) }));
  }

  #key(key: string): string {
    return this.#prefix ? `${this.#prefix}/${checkKey(key)}` : checkKey(key);
  }

  async putFile(key: string, file: string, onBytes?: (bytes: number) => void): Promise<void> {
    const { client, sdk } = await this.#connect();
    const size = (await fs.promises.stat(file)).size;
    if (size <= this.#threshold) {
      const body = await fs.promises.readFile(file);
      await client.send(new sdk.PutObjectCommand({ Bucket: this.#bucket, Key: this.#key(key), Body: body, ContentLength: body.length }));
      onBytes?.(body.length);
      return;
    }
    const Key = this.#key(key);
    const { UploadId } = await client.send(new sdk.CreateMultipartUploadCommand({ Bucket: this.#bucket, Key }));
    if (!UploadId) throw new Error('backup: the S3 store did not start a multipart upload');
    const fh = await fs.promises.open(file, 'r');
    try {
      const parts: { ETag: string | undefined; PartNumber: number }[] = [];
      for (let offset = 0, n = 1; offset < size; offset += this.#partBytes, n++) {
        const buf = Buffer.alloc(Math.min(this.#partBytes, size - offset));
        await fh.read(buf, 0, buf.length, offset);
        const r = await client.send(new sdk.UploadPartCommand({ Bucket: this.#bucket, Key, UploadId, PartNumber: n, Body: buf, ContentLength: buf.length }));
        parts.push({ ETag: r.ETag, PartNumber: n });
        onBytes?.(buf.length);
      }
      await client.send(new sdk.CompleteMultipartUploadCommand({ Bucket: this.#bucket, Key, UploadId, MultipartUpload: { Parts: parts } }));
    } catch (err) {
      await client.send(new sdk.AbortMultipartUploadCommand({ Bucket: this.#bucket, Key, UploadId })).catch(() => undefined);
      throw err;
    } finally {
      await fh.close();
    }
  }

  async putText(key: string, text: string): Promise<void> {
    const { client, sdk } = await this.#connect();
    const body = Buffer.from(text);
    await client.send(new sdk.PutObjectCommand({ Bucket: this.#bucket, Key: this.#key(key), Body: body, ContentLength: body.length, ContentType: 'application/json' }));
  }

  async #get(key: string): Promise<Readable | undefined> {
    const { client, sdk } = await this.#connect();
    try {
      const r = await client.send(new sdk.GetObjectCommand({ Bucket: this.#bucket, Key: this.#key(key) }));
      return r.Body as Readable;
    } catch (err) {
      const e = err as { name?: string; $metadata?: { httpStatusCode?: number } };
      if (e.name === 'NoSuchKey' || e.$metadata?.httpStatusCode === 404) return undefined;
      throw err;
    }
  }

  async getFile(key: string, file: string): Promise<boolean> {
    const body = await this.#get(key);
    if (!body) return false;
    await pipeline(body, fs.createWriteStream(file));
    return true;
  }

  async getText(key: string): Promise<string | undefined> {
    const body = await this.#get(key);
    if (!body) return undefined;
    const chunks: Buffer[] = [];
    for await (const chunk of body) chunks.push(chunk as Buffer);
    return Buffer.concat(chunks).toString('utf8');
  }

  async #keys(under: string): Promise<string[]> {
    const { client, sdk } = await this.#connect();
    const keys: string[] = [];
    let token: string | undefined;
    do {
      const r = await client.send(new sdk.ListObjectsV2Command({ Bucket: this.#bucket, Prefix: under, ContinuationToken: token }));
      for (const o of r.Contents ?? []) if (o.Key) keys.push(o.Key);
      token = r.IsTruncated ? r.NextContinuationToken : undefined;
    } while (token);
    return keys;
  }

  async completeSnapshots(): Promise<string[]> {
    const base = this.#prefix ? `${this.#prefix}/` : '';
    const names = new Set<string>();
    for (const key of await this.#keys(base)) {
      const rest = key.slice(base.length).split('/');
      if (rest.length === 2 && rest[1] === MANIFEST) names.add(rest[0]!);
    }
    return [...names];
  }

  async removeSnapshot(snapshot: string): Promise<void> {
    const { client, sdk } = await this.#connect();
    const under = `${this.#key(snapshot)}/`;
    await client.send(new sdk.DeleteObjectCommand({ Bucket: this.#bucket, Key: `${under}${MANIFEST}` }));
    for (const key of await this.#keys(under)) await client.send(new sdk.DeleteObjectCommand({ Bucket: this.#bucket, Key: key }));
  }
}
