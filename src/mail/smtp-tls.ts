/**
 * STARTTLS credentials for the SMTP server: a PEM certificate and key read from
 * files (FEEDMAIL_SMTP_TLS_CERT / FEEDMAIL_SMTP_TLS_KEY), typically the ones a
 * reverse proxy's ACME client renews. The files are watched by polling their
 * stat (ACME clients replace them by rename, which a watch on the file itself
 * misses) and reloaded without a restart; `reload()` is also what SIGHUP calls.
 * A new pair that does not load (half-written, key not matching the
 * certificate, not PEM) leaves the old one in use and is logged.
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import tls from 'node:tls';
import type { Logger } from '../log.js';

/** How often the files' stat is compared with the one last loaded. */
export const TLS_POLL_MS = 5_000;

/** Oldest protocol a sender may negotiate; TLS 1.0 and 1.1 are deprecated (RFC 8996). */
export const TLS_MIN_VERSION = 'TLSv1.2';

export interface TlsFiles {
  certFile: string;
  keyFile: string;
}

export interface TlsCredentials {
  key: Buffer;
  cert: Buffer;
  /** SHA-256 fingerprint of the leaf certificate, as `openssl x509 -fingerprint -sha256` prints it. */
  fingerprint256: string;
  /** When the leaf certificate expires. */
  validTo: Date;
}

/** Reads and checks a certificate and key pair; throws with what is wrong. */
export function loadTlsCredentials({ certFile, keyFile }: TlsFiles): TlsCredentials {
  const cert = fs.readFileSync(certFile);
  const key = fs.readFileSync(keyFile);
  // Building a context is what the server does with them: it fails on a key that does not
  // match the certificate, on anything that is not PEM, and on an encrypted key.
  tls.createSecureContext({ key, cert, minVersion: TLS_MIN_VERSION });
  const leaf = new crypto.X509Certificate(cert);
  return { key, cert, fingerprint256: leaf.fingerprint256, validTo: new Date(leaf.validTo) };
}

/** What decides whether the files changed: identity, size and modification time of both. */
function filesStamp({ certFile, keyFile }: TlsFiles): string {
  return [certFile, keyFile].map((f) => {
    try {
      const s = fs.statSync(f);
      return `${s.dev}:${s.ino}:${s.size}:${s.mtimeMs}`;
    } catch {
      return 'missing';
    }
  }).join('|');
}

/**
 * Keeps the SMTP server's certificate in step with its files. `apply` installs a pair
 * (smtp-server's updateSecureContext); it is called only with a pair that loaded.
 */
export class CertificateReloader {
  #current: TlsCredentials;
  #stamp: string;
  #timer: NodeJS.Timeout | undefined;

  /** Loads the files now; throws when they do not load (the server must not start without them). */
  constructor(
    private readonly files: TlsFiles,
    private readonly apply: (credentials: TlsCredentials) => void,
    private readonly log: Logger,
  ) {
    this.#stamp = filesStamp(files);
    this.#current = loadTlsCredentials(files);
  }

  get current(): TlsCredentials {
    return this.#current;
  }

  /** Starts polling the files; the timer does not keep the process alive. */
  watch(intervalMs = TLS_POLL_MS): void {
    this.stop();
    this.#timer = setInterval(() => {
      if (filesStamp(this.files) !== this.#stamp) this.reload('the files changed');
    }, intervalMs);
    this.#timer.unref();
  }

  stop(): void {
    clearInterval(this.#timer);
    this.#timer = undefined;
  }

  /**
   * Loads the files again and installs them. Returns false, keeping the pair in use,
   * when they do not load; an unchanged pair is not installed again.
   */
  reload(reason: string): boolean {
    // The stamp is taken before reading: a change made while reading is seen next time.
    this.#stamp = filesStamp(this.files);
    let next: TlsCredentials;
    try {
      next = loadTlsCredentials(this.files);
    } catch (err) {
      this.log.error({ err: (err as Error).message, certFile: this.files.certFile, keyFile: this.files.keyFile, reason },
        'smtp: the new STARTTLS certificate or key does not load; still using the previous one');
      return false;
    }
    if (next.fingerprint256 === this.#current.fingerprint256 && next.key.equals(this.#current.key)) return true;
    this.apply(next);
    this.#current = next;
    this.log.info({ fingerprint256: next.fingerprint256, validTo: next.validTo.toISOString(), reason }, 'smtp: STARTTLS certificate reloaded');
    return true;
  }
}
