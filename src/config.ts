/**
 * One typed table of settings. Each setting has an environment variable, a
 * command-line flag, a default, and a parser that rejects bad values with a
 * message naming what is allowed. The whole table is checked before anything
 * listens; the resulting Config object is passed in, never imported as a global.
 */
import os from 'node:os';
import path from 'node:path';
import { createPublicKey } from 'node:crypto';

import { ConfigError } from './errors.js';

type Parser<T> = (raw: string) => T;

interface Setting<T> {
  env: string;
  flag: string;
  default: string;
  help: string;
  parse: Parser<T>;
  /** Holds a secret: a value that fails to parse is not echoed in the error. */
  secret?: boolean;
}

function integer(min: number, max: number): Parser<number> {
  return (raw) => {
    if (!/^\d+$/.test(raw.trim())) throw new Error(`must be a whole number from ${min} to ${max}`);
    const n = Number(raw);
    if (n < min || n > max) throw new Error(`must be a whole number from ${min} to ${max}`);
    return n;
  };
}

/** Sizes accept plain bytes or a k/m/g suffix (powers of 1024). */
function byteSize(min: number, max: number): Parser<number> {
  return (raw) => {
    const m = /^(\d+)\s*([kmg]i?b?)?$/i.exec(raw.trim());
    const allowed = `must be a size in bytes (e.g. 26214400 or 25m) from ${min} to ${max}`;
    if (!m) throw new Error(allowed);
    const unit = (m[2] ?? '').toLowerCase()[0];
    const factor = unit === 'k' ? 1024 : unit === 'm' ? 1024 ** 2 : unit === 'g' ? 1024 ** 3 : 1;
    const n = Number(m[1]) * factor;
    if (n < min || n > max) throw new Error(allowed);
    return n;
  };
}

function host(raw: string): string {
  const v = raw.trim();
  if (!/^[A-Za-z0-9.:\-[\]]+$/.test(v)) throw new Error('must be a host name or IP address, e.g. 127.0.0.1 or 0.0.0.0');
  return v;
}

function baseUrl(raw: string): string {
  const v = raw.trim();
  if (v === '') return '';
  let u: URL;
  try {
    u = new URL(v);
  } catch {
    throw new Error('must be an absolute http(s) URL such as https://feeds.example.com');
  }
  if (u.protocol !== 'http:' && u.protocol !== 'https:') throw new Error('must start with http:// or https://');
  if (u.search || u.hash) throw new Error('must not contain a query string or fragment');
  return u.toString().replace(/\/+$/, '');
}

function domains(raw: string): string[] {
  const list = raw.split(',').map((d) => d.trim().toLowerCase()).filter(Boolean);
  if (list.length === 0) throw new Error('must list at least one mail domain, e.g. feeds.example.com');
  for (const d of list) {
    if (!/^[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)*$/.test(d)) {
      throw new Error(`"${d}" is not a valid domain name`);
    }
  }
  return list;
}

function bool(raw: string): boolean {
  const v = raw.trim().toLowerCase();
  if (['1', 'true', 'yes', 'on'].includes(v)) return true;
  if (['0', 'false', 'no', 'off', ''].includes(v)) return false;
  throw new Error('must be true or false');
}

function logLevel(raw: string): string {
  const v = raw.trim().toLowerCase();
  const levels = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'];
  if (!levels.includes(v)) throw new Error(`must be one of ${levels.join(', ')}`);
  return v;
}

function webhookSecret(raw: string): string {
  const v = raw.trim();
  if (v !== '' && v.length < 32) throw new Error('must be at least 32 characters (e.g. from `openssl rand -hex 32`), or empty to turn webhooks off');
  return v;
}

/** An SNS topic ARN, e.g. arn:aws:sns:us-east-1:123456789012:feedmail-inbound, or empty. */
function snsTopicArn(raw: string): string {
  const v = raw.trim();
  if (v !== '' && !/^arn:aws(?:-cn|-us-gov)?:sns:[a-z0-9-]+:\d{12}:[A-Za-z0-9_-]{1,256}(?:\.fifo)?$/.test(v)) {
    throw new Error('must be an SNS topic ARN such as arn:aws:sns:us-east-1:123456789012:feedmail-inbound, or empty to turn the endpoint off');
  }
  return v;
}

/** A number of threads; `auto` is one per core the process may use. */
function threads(raw: string): number {
  const v = raw.trim().toLowerCase();
  if (v === 'auto' || v === '') return Math.max(1, Math.min(16, os.availableParallelism()));
  return integer(1, 64)(v);
}

/**
 * Who may read /metrics and /readyz: empty for everyone, else a comma-separated list of
 * addresses, CIDR ranges (`10.0.0.0/8`, `fd00::/8`) and `token:<secret>` entries (the token
 * is then sent as `Authorization: Bearer <secret>`).
 */
function opsAllow(raw: string): string[] {
  const list = raw.split(',').map((s) => s.trim()).filter(Boolean);
  for (const item of list) {
    if (item.startsWith('token:')) {
      if (item.length < 'token:'.length + 16) throw new Error('a token: entry needs a secret of at least 16 characters');
      continue;
    }
    if (!/^[0-9a-fA-F.:]+(\/\d{1,3})?$/.test(item)) throw new Error(`"${item}" is not an IP address, a CIDR range or token:<secret>`);
  }
  return list;
}

/** A file path, made absolute; empty stays empty (the feature is off). */
function optionalPath(raw: string): string {
  const v = raw.trim();
  return v === '' ? '' : path.resolve(v);
}

function trustedProxies(raw: string): string[] {
  return raw.split(',').map((s) => s.trim()).filter(Boolean);
}

/** Issue 12: HTTP Basic credentials a provider's webhook URL carries, `user:password`; '' turns it off. */
function basicCredentials(raw: string): string {
  const v = raw.trim();
  if (v === '') return '';
  const colon = v.indexOf(':');
  if (colon <= 0 || v.length - colon - 1 < 16) throw new Error('must be user:password with a password of at least 16 characters (e.g. from `openssl rand -hex 16`), or empty to turn the endpoint off');
  if (!/^[\x21-\x7e]+$/.test(v)) throw new Error('must be printable ASCII without spaces (it goes into a URL)');
  return v;
}

/** Issue 12: Mailgun's HTTP webhook signing key, as its control panel shows it. */
function signingKey(raw: string): string {
  const v = raw.trim();
  if (v !== '' && !/^[\x21-\x7e]{16,}$/.test(v)) throw new Error('must be the HTTP webhook signing key from Mailgun (at least 16 printable characters), or empty to turn the endpoint off');
  return v;
}

/** Issue 12: an ECDSA P-256 public key as SendGrid shows it (base64 DER SubjectPublicKeyInfo), or PEM. */
function ecPublicKey(raw: string): string {
  const v = raw.trim();
  if (v === '') return '';
  try {
    const key = v.includes('BEGIN PUBLIC KEY') ? createPublicKey(v) : createPublicKey({ key: Buffer.from(v, 'base64'), format: 'der', type: 'spki' });
    if (key.asymmetricKeyType !== 'ec' || key.asymmetricKeyDetails?.namedCurve !== 'prime256v1') throw new Error('not P-256');
  } catch {
    throw new Error('must be the ECDSA P-256 verification key SendGrid shows (base64), or empty');
  }
  return v;
}

/**
 * Where backups go: a directory, or s3://bucket[/prefix] (issue 13, ops/backup.ts); empty: none.
 * The one rule for FEEDMAIL_BACKUP_TO and the commands' --to / --from.
 */
export function backupTarget(raw: string): string {
  const v = raw.trim();
  if (v === '') return '';
  if (v.startsWith('s3://')) {
    if (!/^s3:\/\/[a-z0-9][a-z0-9.-]{1,61}[a-z0-9](\/[^?#]*)?$/.test(v)) throw new Error('must be s3://bucket or s3://bucket/prefix, with a valid bucket name');
    return v.replace(/\/+$/, '');
  }
  if (/^[a-z][a-z0-9+.-]*:\/\//i.test(v)) throw new Error('must be a directory or an s3://bucket/prefix URL');
  return path.resolve(v);
}

/** A period such as 30m, 1h, 6h or 1d (at least a minute). */
function period(raw: string): number {
  const m = /^(\d+)\s*(m|min|h|d)$/i.exec(raw.trim());
  const allowed = 'must be a period such as 30m, 1h, 6h or 1d, from 1m to 30d';
  if (!m) throw new Error(allowed);
  const unit = m[2]!.toLowerCase();
  const ms = Number(m[1]) * (unit === 'd' ? 86_400_000 : unit === 'h' ? 3_600_000 : 60_000);
  if (ms < 60_000 || ms > 30 * 86_400_000) throw new Error(allowed);
  return ms;
}

function optionalUrl(raw: string): string {
  const v = raw.trim();
  if (v === '') return '';
  try {
    const u = new URL(v);
    if (u.protocol !== 'http:' && u.protocol !== 'https:') throw new Error('protocol');
    // The SDK ignores credentials in the URL, and they would show wherever the target is named.
    if (u.username || u.password) throw new Error('userinfo');
  } catch {
    throw new Error('must be an http(s) URL such as https://s3.eu-central-1.amazonaws.com or http://127.0.0.1:9000 (without a user or password: credentials go in FEEDMAIL_S3_ACCESS_KEY_ID / FEEDMAIL_S3_SECRET_ACCESS_KEY), or empty for AWS');
  }
  return v.replace(/\/+$/, '');
}

/** The settings table. Order here is the order in `--help`. */
export /** A PostgreSQL connection URL, or '' for the embedded SQLite databases. */
function databaseUrl(raw: string): string {
  const value = raw.trim();
  if (value === '') return '';
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    throw new Error('must be a postgres:// or postgresql:// URL (e.g. postgres://feedmail:password@127.0.0.1:5432/feedmail), or empty for SQLite');
  }
  if (url.protocol !== 'postgres:' && url.protocol !== 'postgresql:') throw new Error('must be a postgres:// or postgresql:// URL, or empty for SQLite');
  return value;
}

const SETTINGS = {
  dataDir: {
    env: 'FEEDMAIL_DATA_DIR', flag: '--data-dir', default: './data',
    help: 'Directory holding app.db, queue.db and cache.db',
    parse: (raw: string) => path.resolve(raw.trim() || './data'),
  },
  minFreeBytes: {
    env: 'FEEDMAIL_MIN_FREE_BYTES', flag: '--min-free-bytes', default: '100m',
    help: 'Below this much free disk space new mail is deferred with 452 / 503', parse: byteSize(0, 1024 ** 4),
  },
  allowUnsafeStorage: {
    env: 'FEEDMAIL_ALLOW_UNSAFE_STORAGE', flag: '--allow-unsafe-storage', default: 'false',
    help: 'Start even when the data directory is on tmpfs, an overlay or a network filesystem',
    parse: bool,
  },
  httpHost: {
    env: 'FEEDMAIL_HTTP_HOST', flag: '--http-host', default: '127.0.0.1',
    help: 'Address the web server listens on', parse: host,
  },
  httpPort: {
    env: 'FEEDMAIL_HTTP_PORT', flag: '--http-port', default: '8080',
    help: 'Port of the web server (0 picks a free port)', parse: integer(0, 65535),
  },
  smtpHost: {
    env: 'FEEDMAIL_SMTP_HOST', flag: '--smtp-host', default: '127.0.0.1',
    help: 'Address the SMTP server listens on', parse: host,
  },
  smtpPort: {
    env: 'FEEDMAIL_SMTP_PORT', flag: '--smtp-port', default: '2525',
    help: 'Port of the SMTP server (0 picks a free port)', parse: integer(0, 65535),
  },
  baseUrl: {
    env: 'FEEDMAIL_BASE_URL', flag: '--base-url', default: '',
    help: 'Public URL used in links (default: http://<http-host>:<http-port>)', parse: baseUrl,
  },
  mailDomains: {
    env: 'FEEDMAIL_MAIL_DOMAINS', flag: '--mail-domains', default: 'localhost',
    help: 'Comma-separated domains mail is accepted for; the first is used for new addresses', parse: domains,
  },
  maxMessageBytes: {
    env: 'FEEDMAIL_MAX_MESSAGE_BYTES', flag: '--max-message-bytes', default: '25m',
    help: 'Largest message accepted over SMTP or webhooks', parse: byteSize(1024, 1024 ** 3),
  },
  maxPartBytes: {
    env: 'FEEDMAIL_MAX_PART_BYTES', flag: '--max-part-bytes', default: '10m',
    help: 'Largest single attachment or inline image kept; larger parts are listed but dropped', parse: byteSize(1024, 1024 ** 3),
  },
  keepTrackingPixels: {
    env: 'FEEDMAIL_KEEP_TRACKING_PIXELS', flag: '--keep-tracking-pixels', default: 'false',
    help: 'Keep 1x1 and hidden images and known tracker images instead of removing them', parse: bool,
  },
  processingTimeoutMs: {
    env: 'FEEDMAIL_PROCESSING_TIMEOUT_MS', flag: '--processing-timeout-ms', default: '20000',
    help: 'Longest time one message may take to parse and sanitize', parse: integer(100, 600000),
  },
  renderThreads: {
    env: 'FEEDMAIL_RENDER_THREADS', flag: '--render-threads', default: 'auto',
    help: 'Threads that parse, sanitize and redact mail (auto: one per core)', parse: threads,
  },
  workerConcurrency: {
    env: 'FEEDMAIL_WORKER_CONCURRENCY', flag: '--worker-concurrency', default: '2',
    help: 'Jobs one process runs at the same time (0 runs no jobs in this process)', parse: integer(0, 64),
  },
  journalRetentionDays: {
    env: 'FEEDMAIL_JOURNAL_RETENTION_DAYS', flag: '--journal-retention-days', default: '30',
    help: 'Days raw mail stays in the inbound journal for replay', parse: integer(1, 3650),
  },
  feedMaxEntries: {
    env: 'FEEDMAIL_FEED_MAX_ENTRIES', flag: '--feed-max-entries', default: '50',
    help: 'Entries shown in a feed document (older entries stay reachable by their links)', parse: integer(1, 1000),
  },
  feedEntryMaxBytes: {
    env: 'FEEDMAIL_FEED_ENTRY_MAX_BYTES', flag: '--feed-entry-max-bytes', default: '256k',
    help: 'Largest entry content in a feed document; longer entries carry a summary and a link to their page', parse: byteSize(1024, 64 * 1024 ** 2),
  },
  feedDocumentMaxBytes: {
    env: 'FEEDMAIL_FEED_DOCUMENT_MAX_BYTES', flag: '--feed-document-max-bytes', default: '4m',
    help: 'Largest feed document; entries past it are left out (they stay reachable by their links)', parse: byteSize(16 * 1024, 1024 ** 3),
  },
  feedMaxBytes: {
    env: 'FEEDMAIL_FEED_MAX_BYTES', flag: '--feed-max-bytes', default: '1g',
    help: 'Disk quota of one feed (entries, attachments, raw mail); a full feed defers new mail with 452 4.2.2', parse: byteSize(1024 * 1024, 1024 ** 4),
  },
  feedMessagesPerDay: {
    env: 'FEEDMAIL_FEED_MESSAGES_PER_DAY', flag: '--feed-messages-per-day', default: '200',
    help: 'Messages one feed takes in a rolling 24 hours (counted per hour); past it new mail is deferred with 452 4.2.2 (0 turns the limit off)', parse: integer(0, 1000000),
  },
  feedKeepEntries: {
    env: 'FEEDMAIL_FEED_KEEP_ENTRIES', flag: '--feed-keep-entries', default: '500',
    help: 'Entries kept per feed; older ones are trimmed by a recurring task', parse: integer(1, 100000),
  },
  feedExpireDays: {
    env: 'FEEDMAIL_FEED_EXPIRE_DAYS', flag: '--feed-expire-days', default: '0',
    help: 'Delete feeds nobody fetched for this many days (0 keeps them forever)', parse: integer(0, 36500),
  },
  cacheMaxBytes: {
    env: 'FEEDMAIL_CACHE_MAX_BYTES', flag: '--cache-max-bytes', default: '64m',
    help: 'Upper bound of cache.db contents (rendered feeds)', parse: byteSize(64 * 1024, 64 * 1024 ** 3),
  },
  walMaxBytes: {
    env: 'FEEDMAIL_WAL_MAX_BYTES', flag: '--wal-max-bytes', default: '64m',
    help: 'A WAL file larger than this is checkpointed with TRUNCATE', parse: byteSize(64 * 1024, 64 * 1024 ** 3),
  },
  smtpMaxClients: {
    env: 'FEEDMAIL_SMTP_MAX_CLIENTS', flag: '--smtp-max-clients', default: '200',
    help: 'Simultaneous SMTP connections in total', parse: integer(1, 100000),
  },
  smtpMaxClientsPerAddress: {
    env: 'FEEDMAIL_SMTP_MAX_CLIENTS_PER_ADDRESS', flag: '--smtp-max-clients-per-address', default: '20',
    help: 'Simultaneous SMTP connections from one client network (an IPv4 /24 or an IPv6 /64)', parse: integer(1, 100000),
  },
  smtpMaxInflightBytes: {
    env: 'FEEDMAIL_SMTP_MAX_INFLIGHT_BYTES', flag: '--smtp-max-inflight-bytes', default: '256m',
    help: 'Message bytes held in memory by all SMTP sessions together; past it new DATA is deferred with 451', parse: byteSize(1024 * 1024, 64 * 1024 ** 3),
  },
  smtpDataTimeoutMs: {
    env: 'FEEDMAIL_SMTP_DATA_TIMEOUT_MS', flag: '--smtp-data-timeout-ms', default: '600000',
    help: 'Longest time one message may take to arrive (DATA), however busy the sender keeps the line', parse: integer(1000, 3600000),
  },
  smtpMinDataRate: {
    env: 'FEEDMAIL_SMTP_MIN_DATA_RATE', flag: '--smtp-min-data-rate', default: '2k',
    help: 'Bytes per second a message must average once it has taken 30 s (0 turns the check off)', parse: byteSize(0, 1024 ** 3),
  },
  smtpMaxRecipients: {
    env: 'FEEDMAIL_SMTP_MAX_RECIPIENTS', flag: '--smtp-max-recipients', default: '50',
    help: 'Recipients accepted for one message', parse: integer(1, 10000),
  },
  smtpSessionTimeoutMs: {
    env: 'FEEDMAIL_SMTP_SESSION_TIMEOUT_MS', flag: '--smtp-session-timeout-ms', default: '120000',
    help: 'Idle time after which an SMTP session is closed', parse: integer(1000, 3600000),
  },
  feedsPerHourPerClient: {
    env: 'FEEDMAIL_FEEDS_PER_HOUR_PER_CLIENT', flag: '--feeds-per-hour-per-client', default: '30',
    help: 'Feeds one client address may create per hour (0 turns the limit off)', parse: integer(0, 1000000),
  },
  webhookSecret: {
    env: 'FEEDMAIL_WEBHOOK_SECRET', flag: '--webhook-secret', default: '',
    help: 'Shared secret that signs raw-MIME deliveries to POST /inbound/raw (empty turns the endpoint off)', parse: webhookSecret, secret: true,
  },
  webhookMaxConcurrent: {
    env: 'FEEDMAIL_WEBHOOK_MAX_CONCURRENT', flag: '--webhook-max-concurrent', default: '8',
    help: 'Webhook request bodies read at the same time; more get 503 with Retry-After', parse: integer(1, 10000),
  },
  httpMaxConnections: {
    env: 'FEEDMAIL_HTTP_MAX_CONNECTIONS', flag: '--http-max-connections', default: '1000',
    help: 'Simultaneous HTTP connections; more are refused', parse: integer(1, 1000000),
  },
  sseMaxStreams: {
    env: 'FEEDMAIL_SSE_MAX_STREAMS', flag: '--sse-max-streams', default: '1000',
    help: 'Live-update streams (server-sent events) open at once; more get 503 with Retry-After (0 turns live updates off)', parse: integer(0, 1000000),
  },
  opsAllow: {
    env: 'FEEDMAIL_OPS_ALLOW', flag: '--ops-allow', default: '',
    help: 'Who may read /metrics and /readyz: addresses, CIDR ranges and token:<secret>, comma-separated (empty: everyone)', parse: opsAllow, secret: true,
  },
  trustedProxies: {
    env: 'FEEDMAIL_TRUSTED_PROXIES', flag: '--trusted-proxies', default: '',
    help: 'Comma-separated proxy addresses whose X-Forwarded-For is believed', parse: trustedProxies,
  },
  websubLeaseDefaultSeconds: {
    env: 'FEEDMAIL_WEBSUB_LEASE_DEFAULT_SECONDS', flag: '--websub-lease-default-seconds', default: '864000',
    help: 'WebSub lease given to a subscriber that asks for none (seconds)', parse: integer(60, 365 * 86400),
  },
  websubLeaseMinSeconds: {
    env: 'FEEDMAIL_WEBSUB_LEASE_MIN_SECONDS', flag: '--websub-lease-min-seconds', default: '3600',
    help: 'Shortest WebSub lease; shorter requests get this (seconds)', parse: integer(60, 365 * 86400),
  },
  websubLeaseMaxSeconds: {
    env: 'FEEDMAIL_WEBSUB_LEASE_MAX_SECONDS', flag: '--websub-lease-max-seconds', default: '2592000',
    help: 'Longest WebSub lease; longer requests get this (seconds)', parse: integer(60, 365 * 86400),
  },
  websubMaxSubscriptionsPerFeed: {
    env: 'FEEDMAIL_WEBSUB_MAX_SUBSCRIPTIONS_PER_FEED', flag: '--websub-max-subscriptions-per-feed', default: '20',
    help: 'WebSub subscriptions one feed may have (all its topics); 0 turns the hub off', parse: integer(0, 10000),
  },
  websubAllowPrivate: {
    env: 'FEEDMAIL_WEBSUB_ALLOW_PRIVATE', flag: '--websub-allow-private', default: 'false',
    help: 'Let WebSub callbacks be loopback, private or link-local addresses (tests, private networks)', parse: bool,
  },
  logLevel: {
    env: 'FEEDMAIL_LOG_LEVEL', flag: '--log-level', default: 'info',
    help: 'fatal, error, warn, info, debug, trace or silent', parse: logLevel,
  },
  postmarkCredentials: {
    env: 'FEEDMAIL_POSTMARK_CREDENTIALS', flag: '--postmark-credentials', default: '',
    help: 'user:password that Postmark sends (in its inbound webhook URL) to POST /inbound/postmark (empty turns the endpoint off)', parse: basicCredentials, secret: true,
  },
  mailgunSigningKey: {
    env: 'FEEDMAIL_MAILGUN_SIGNING_KEY', flag: '--mailgun-signing-key', default: '',
    help: 'Mailgun HTTP webhook signing key, checking POST /inbound/mailgun and /inbound/mailgun-mime (empty turns them off)', parse: signingKey, secret: true,
  },
  mailgunMaxAge: {
    env: 'FEEDMAIL_MAILGUN_MAX_AGE', flag: '--mailgun-max-age', default: '300',
    help: 'Seconds a Mailgun signature stays valid after its timestamp; older deliveries are refused with 401', parse: integer(30, 86400),
  },
  sendgridCredentials: {
    env: 'FEEDMAIL_SENDGRID_CREDENTIALS', flag: '--sendgrid-credentials', default: '',
    help: 'user:password that SendGrid Inbound Parse sends (in its destination URL) to POST /inbound/sendgrid', parse: basicCredentials, secret: true,
  },
  sendgridPublicKey: {
    env: 'FEEDMAIL_SENDGRID_PUBLIC_KEY', flag: '--sendgrid-public-key', default: '',
    help: 'SendGrid Inbound Parse signature verification key (base64); with the credentials, both are required (one or the other turns POST /inbound/sendgrid on)', parse: ecPublicKey,
  },
  smtpTlsCert: {
    env: 'FEEDMAIL_SMTP_TLS_CERT', flag: '--smtp-tls-cert', default: '',
    help: 'PEM certificate (chain) file for STARTTLS on the SMTP server, e.g. the one your ACME client renews; reloaded when it changes (needs --smtp-tls-key; empty: no STARTTLS)',
    parse: optionalPath,
  },
  smtpTlsKey: {
    env: 'FEEDMAIL_SMTP_TLS_KEY', flag: '--smtp-tls-key', default: '',
    help: 'PEM private key file of --smtp-tls-cert', parse: optionalPath,
  },
  sesTopicArn: {
    env: 'FEEDMAIL_SES_TOPIC_ARN', flag: '--ses-topic-arn', default: '',
    help: 'The Amazon SNS topic ARN whose SES notifications POST /inbound/ses takes (empty turns the endpoint off)', parse: snsTopicArn,
  },
  sesAutoConfirm: {
    env: 'FEEDMAIL_SES_AUTO_CONFIRM', flag: '--ses-auto-confirm', default: 'false',
    help: 'Confirm the SNS subscription of that topic by fetching its SubscribeURL (otherwise the URL is logged for you to open)', parse: bool,
  },
  cloudflareSecret: {
    env: 'FEEDMAIL_CLOUDFLARE_SECRET', flag: '--cloudflare-secret', default: '',
    help: 'Shared secret the Cloudflare Email Worker (docs/cloudflare-worker.js) signs POST /inbound/cloudflare with (empty turns the endpoint off)', parse: webhookSecret, secret: true,
  },
  backupTo: {
    env: 'FEEDMAIL_BACKUP_TO', flag: '--backup-to', default: '',
    help: 'Take scheduled backups to this directory or s3://bucket/prefix (empty: no scheduled backups)', parse: backupTarget,
  },
  backupEveryMs: {
    env: 'FEEDMAIL_BACKUP_EVERY', flag: '--backup-every', default: '1h',
    help: 'Time between scheduled backups (30m, 1h, 1d); /readyz turns unready when the last one is twice as old', parse: period,
  },
  backupKeepHourly: {
    env: 'FEEDMAIL_BACKUP_KEEP_HOURLY', flag: '--backup-keep-hourly', default: '24',
    help: 'Scheduled backups keep the newest snapshot of each of this many hours', parse: integer(0, 100000),
  },
  backupKeepDaily: {
    env: 'FEEDMAIL_BACKUP_KEEP_DAILY', flag: '--backup-keep-daily', default: '14',
    help: 'Scheduled backups also keep the newest snapshot of each of this many days (UTC)', parse: integer(0, 100000),
  },
  s3Endpoint: {
    env: 'FEEDMAIL_S3_ENDPOINT', flag: '--s3-endpoint', default: '',
    // Marked secret so a refused value (one with a password in it) is not echoed.
    help: 'S3-compatible endpoint for s3:// backups (empty: AWS S3)', parse: optionalUrl, secret: true,
  },
  s3Region: {
    env: 'FEEDMAIL_S3_REGION', flag: '--s3-region', default: 'us-east-1',
    help: 'Region of the S3 bucket', parse: (raw: string) => raw.trim() || 'us-east-1',
  },
  s3AccessKeyId: {
    env: 'FEEDMAIL_S3_ACCESS_KEY_ID', flag: '--s3-access-key-id', default: '',
    help: 'Access key id for s3:// backups (empty: the AWS SDK\'s usual sources, e.g. AWS_ACCESS_KEY_ID or an instance role)', parse: (raw: string) => raw.trim(),
  },
  s3SecretAccessKey: {
    env: 'FEEDMAIL_S3_SECRET_ACCESS_KEY', flag: '--s3-secret-access-key', default: '',
    help: 'Secret access key for s3:// backups', parse: (raw: string) => raw.trim(), secret: true,
  },
  s3ForcePathStyle: {
    env: 'FEEDMAIL_S3_FORCE_PATH_STYLE', flag: '--s3-force-path-style', default: 'false',
    help: 'Address buckets as <endpoint>/<bucket> instead of <bucket>.<endpoint> (MinIO, most self-hosted stores)', parse: bool,
  },
  litestream: {
    env: 'FEEDMAIL_LITESTREAM', flag: '--litestream', default: 'false',
    help: 'Litestream replicates app.db and queue.db: feedmail leaves WAL truncation to it (no TRUNCATE checkpoints of its own)', parse: bool,
  },
  processes: {
    env: 'FEEDMAIL_PROCESSES', flag: '--processes', default: '1',
    help: '"serve" only: worker processes sharing the HTTP and SMTP ports (2 or more: SIGHUP restarts them one at a time without dropping requests)', parse: integer(1, 64),
  },
  imageProxy: {
    env: 'FEEDMAIL_IMAGE_PROXY', flag: '--image-proxy', default: 'true',
    help: 'Serve newsletters\' remote images through feedmail (signed /img/ URLs), so readers never load them from the sender; false shows the sender\'s URLs', parse: bool,
  },
  imageProxyAllowPrivate: {
    env: 'FEEDMAIL_IMAGE_PROXY_ALLOW_PRIVATE', flag: '--image-proxy-allow-private', default: 'false',
    help: 'Let the image proxy fetch from loopback, private or link-local addresses (tests, private networks)', parse: bool,
  },
  imageProxyMaxBytes: {
    env: 'FEEDMAIL_IMAGE_PROXY_MAX_BYTES', flag: '--image-proxy-max-bytes', default: '5m',
    help: 'Largest image the image proxy fetches; larger ones are refused', parse: byteSize(1024, 100 * 1024 ** 2),
  },
  imageProxyTimeoutMs: {
    env: 'FEEDMAIL_IMAGE_PROXY_TIMEOUT_MS', flag: '--image-proxy-timeout-ms', default: '10000',
    help: 'Time the image proxy gives one image fetch, redirects included (milliseconds)', parse: integer(100, 120_000),
  },
  imageProxyCacheBytes: {
    env: 'FEEDMAIL_IMAGE_PROXY_CACHE_BYTES', flag: '--image-proxy-cache-bytes', default: '256m',
    help: 'Bytes of fetched images kept in cache.db; the least recently used go first', parse: byteSize(0, 64 * 1024 ** 3),
  },
  databaseUrl: {
    env: 'FEEDMAIL_DATABASE_URL', flag: '--database-url', default: '',
    help: 'postgres://user:password@host:port/database to keep everything in PostgreSQL (several instances may share it); empty: the SQLite files in the data directory', parse: databaseUrl, secret: true,
  },
} satisfies Record<string, Setting<unknown>>;

type Settings = typeof SETTINGS;
export type Config = { [K in keyof Settings]: ReturnType<Settings[K]['parse']> };

export type ConfigOverrides = Partial<Record<keyof Settings, string>>;

/**
 * Builds the configuration from defaults, then the environment, then flags
 * (later wins). Every problem is collected so one start reports all of them.
 */
export function loadConfig(env: NodeJS.ProcessEnv, flags: ConfigOverrides = {}): Config {
  const out: Record<string, unknown> = {};
  const problems: string[] = [];
  for (const [key, setting] of Object.entries(SETTINGS) as [keyof Settings, Setting<unknown>][]) {
    const fromFlag = flags[key];
    const fromEnv = env[setting.env];
    const raw = fromFlag ?? fromEnv ?? setting.default;
    const source = fromFlag !== undefined ? setting.flag : fromEnv !== undefined ? setting.env : 'default';
    try {
      out[key] = setting.parse(raw);
    } catch (err) {
      const shown = setting.secret ? `(${raw.length} characters, not shown)` : JSON.stringify(raw);
      problems.push(`${setting.env} (${setting.flag}) = ${shown} from ${source}: ${(err as Error).message}`);
    }
  }
  for (const rule of CROSS_SETTING_RULES) {
    const problem = rule(out);
    if (problem) problems.push(problem);
  }
  if (problems.length > 0) {
    throw new ConfigError(`invalid settings:\n  ${problems.join('\n  ')}`);
  }
  return out as Config;
}

/**
 * Rules between settings, checked once every setting parsed on its own: each returns
 * what is wrong, saying what to change, or null. A rule skips settings that failed to parse.
 */
const CROSS_SETTING_RULES: ((c: Partial<Record<keyof Config, unknown>>) => string | null)[] = [
  // Scheduled backups copy SQLite files; PostgreSQL is backed up with its own tools (see "feedmail backup").
  ({ databaseUrl: url, backupTo }) =>
    typeof url === 'string' && url !== '' && typeof backupTo === 'string' && backupTo !== ''
      ? 'FEEDMAIL_BACKUP_TO cannot be used with FEEDMAIL_DATABASE_URL: back PostgreSQL up with pg_dump or base backups (run "feedmail backup" for how), and unset FEEDMAIL_BACKUP_TO'
      : null,
  // The WAL files grow between checkpoints whatever the space guard says, so the minimum it
  // keeps free must leave room for them, or a full disk stops even the deletes that free it.
  ({ minFreeBytes: minFree, walMaxBytes: walMax }) =>
    typeof minFree === 'number' && typeof walMax === 'number' && minFree > 0 && minFree < walMax
      ? `FEEDMAIL_MIN_FREE_BYTES (${minFree}) must be at least FEEDMAIL_WAL_MAX_BYTES (${walMax}), or 0 to turn the minimum off: the WAL files need that room between checkpoints`
      : null,
  // A document cannot show entries the trim task has already deleted.
  ({ feedMaxEntries: shown, feedKeepEntries: kept }) =>
    typeof shown === 'number' && typeof kept === 'number' && shown > kept
      ? `FEEDMAIL_FEED_MAX_ENTRIES (${shown}) must not exceed FEEDMAIL_FEED_KEEP_ENTRIES (${kept}): a feed document cannot show entries that are no longer kept`
      : null,
  ({ websubLeaseMinSeconds: min, websubLeaseDefaultSeconds: def, websubLeaseMaxSeconds: max }) =>
    typeof min === 'number' && typeof def === 'number' && typeof max === 'number' && !(min <= def && def <= max)
      ? `FEEDMAIL_WEBSUB_LEASE_MIN_SECONDS (${min}) <= FEEDMAIL_WEBSUB_LEASE_DEFAULT_SECONDS (${def}) <= FEEDMAIL_WEBSUB_LEASE_MAX_SECONDS (${max}) must hold`
      : null,
  // One network could otherwise be allowed more connections than the server takes at all.
  ({ smtpMaxClientsPerAddress: perNetwork, smtpMaxClients: total }) =>
    typeof perNetwork === 'number' && typeof total === 'number' && perNetwork > total
      ? `FEEDMAIL_SMTP_MAX_CLIENTS_PER_ADDRESS (${perNetwork}) must not exceed FEEDMAIL_SMTP_MAX_CLIENTS (${total})`
      : null,
  // A certificate without its key (or the other way round) is a half-done setup, not "off".
  ({ smtpTlsCert: cert, smtpTlsKey: key }) =>
    typeof cert === 'string' && typeof key === 'string' && (cert === '') !== (key === '')
      ? 'FEEDMAIL_SMTP_TLS_CERT and FEEDMAIL_SMTP_TLS_KEY go together: set both (PEM files) to offer STARTTLS, or neither to leave it off'
      : null,
];

/** Maps `--flag value` / `--flag=value` arguments to setting keys; returns the rest. */
export function splitFlags(args: string[]): { flags: ConfigOverrides; rest: string[] } {
  const byFlag = new Map<string, keyof Settings>();
  for (const [key, s] of Object.entries(SETTINGS) as [keyof Settings, Setting<unknown>][]) byFlag.set(s.flag, key);
  const flags: ConfigOverrides = {};
  const rest: string[] = [];
  for (let i = 0; i < args.length; i++) {
    const arg = args[i]!;
    const eq = arg.indexOf('=');
    const name = eq > 0 ? arg.slice(0, eq) : arg;
    const key = byFlag.get(name);
    if (!key) {
      rest.push(arg);
      continue;
    }
    if (eq > 0) {
      flags[key] = arg.slice(eq + 1);
    } else if (SETTINGS[key].parse === bool && (args[i + 1] === undefined || args[i + 1]!.startsWith('--'))) {
      flags[key] = 'true';
    } else {
      const value = args[++i];
      if (value === undefined) throw new ConfigError(`${name} needs a value`);
      flags[key] = value;
    }
  }
  return { flags, rest };
}

/** The settings table as text for `--help`. */
export function settingsHelp(): string {
  const rows = Object.values(SETTINGS).map((s: Setting<unknown>) =>
    `  ${s.flag.padEnd(34)} ${s.env}\n      ${s.help} (default: ${s.default === '' ? 'none' : s.default})`);
  return `Settings (flag, environment variable):\n${rows.join('\n')}`;
}
