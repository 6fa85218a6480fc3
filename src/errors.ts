/**
 * Named errors with a stable code and their mapping to each transport, so a
 * failure means the same thing over HTTP, SMTP and in the logs.
 */
export class FeedmailError extends Error {
  /** When a client told to come back later should (HTTP Retry-After); set by status, a class may say otherwise. */
  readonly retryAfterSeconds?: number;

  constructor(
    readonly code: string,
    message: string,
    readonly httpStatus: number,
    readonly smtpReply?: { code: number; enhanced: string },
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = 'FeedmailError';
    this.retryAfterSeconds = RETRY_AFTER_BY_STATUS[httpStatus];
  }
}

/** 503: a minute (the disk, a lock, a restart); 507: a full feed waits for its owner, so ten. */
const RETRY_AFTER_BY_STATUS: Record<number, number | undefined> = { 503: 60, 507: 600 };

/** Every unknown secret answers the same, so probing learns nothing. */
export class NotFoundError extends FeedmailError {
  constructor() {
    super('not_found', 'Not found', 404);
  }
}

/**
 * An address that is no feed here, or (over HTTP) a delivery none of whose recipients is.
 * "Do not retry" on every transport: SMTP's 550, and HTTP 422, since webhook senders read
 * 4xx other than 408/429 as final and 422 says the request was understood and will never be taken.
 */
export class UnknownRecipientError extends FeedmailError {
  constructor(message = 'No such mailbox here') {
    super('unknown_recipient', message, 422, { code: 550, enhanced: '5.1.1' });
  }
}

export class MessageTooLargeError extends FeedmailError {
  constructor(limit: number) {
    super('message_too_large', `Message exceeds the limit of ${limit} bytes`, 413, { code: 552, enhanced: '5.3.4' });
  }
}

/** The disk (or SQLite) is full: nothing was stored, the sender should retry later. */
export class StorageFullError extends FeedmailError {
  constructor(options?: { cause?: unknown }) {
    super('storage_full', 'Insufficient storage, try again later', 503, { code: 452, enhanced: '4.3.1' }, options);
  }
}

/**
 * The feed is at one of its limits: the sender should retry later. This class is the
 * storage quota (the owner has to make room); FeedDailyLimitError the messages per day.
 */
export class FeedFullError extends FeedmailError {
  constructor(message = 'This feed is full (over its storage quota); try again later', code = 'feed_full') {
    super(code, message, 507, { code: 452, enhanced: '4.2.2' });
  }
}

/**
 * The feed took FEEDMAIL_FEED_MESSAGES_PER_DAY messages in the last 24 hours: a retry
 * succeeds once the oldest of them ages out. A FeedFullError, so every transport defers it
 * the same way (SMTP 452 4.2.2, webhooks 507 with Retry-After).
 */
export class FeedDailyLimitError extends FeedFullError {
  constructor(limit: number) {
    super(`This feed has taken its limit of ${limit} messages in 24 hours; try again later`, 'feed_daily_limit');
  }
}

/**
 * The owner of the feed does not take mail from this sender (a block rule matched the
 * envelope sender or the From: header, or the feed has an allowlist the sender is not on).
 * "Do not retry" on every transport, as UnknownRecipientError: SMTP 550 5.7.1, HTTP 422.
 * The text names no rule: the sender learns only that this feed refuses its mail.
 */
export class SenderBlockedError extends FeedmailError {
  constructor() {
    super('sender_blocked', 'Delivery not authorized: the owner of this feed does not accept mail from this sender', 422, { code: 550, enhanced: '5.7.1' });
  }
}

/** A transient failure to store: nothing was acknowledged. */
export class TemporaryFailureError extends FeedmailError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('temporary_failure', message, 503, { code: 451, enhanced: '4.3.0' }, options);
  }
}

export class RateLimitedError extends FeedmailError {
  constructor(readonly retryAfterSeconds: number) {
    super('rate_limited', 'Too many feeds created from this address, try again later', 429);
  }
}

export class BadRequestError extends FeedmailError {
  constructor(message: string) {
    super('bad_request', message, 400);
  }
}

/** A request body over the small-body limit of forms and JSON. */
export class BodyTooLargeError extends FeedmailError {
  constructor(limit: number) {
    super('body_too_large', `Request body over ${limit} bytes`, 413);
  }
}

/** An uploaded file (a feed icon) over its own limit, said in the upload's terms. */
export class UploadTooLargeError extends FeedmailError {
  constructor(what: string, limit: number) {
    super('upload_too_large', `${what} must be at most ${limit / 1024} KB (${limit} bytes)`, 413);
  }
}

/** The client closed the connection before its declared body arrived. */
export class BodyIncompleteError extends FeedmailError {
  constructor() {
    super('body_incomplete', 'The request body ended before its declared length', 400);
  }
}

export class BodyTooSlowError extends FeedmailError {
  constructor(bytes: number, elapsedMs: number, minRate: number) {
    super('body_too_slow', `The request body arrived too slowly (${bytes} bytes in ${(elapsedMs / 1000).toFixed(1)} s; at least ${minRate} bytes per second are needed)`, 408);
  }
}

export class CrossSiteRequestError extends FeedmailError {
  constructor(why: string) {
    super('cross_site_refused', `Refused: forms of another site cannot act here; use this site's own page, or send the request from a script (${why})`, 403);
  }
}

/** The image proxy did not fetch, or would not serve, an image (see net/image-fetch.ts for why). */
export class ImageUnavailableError extends FeedmailError {
  constructor(why: string) {
    super('image_unavailable', `This image is not available: ${why}`, 404);
  }
}

export class BadSignatureError extends FeedmailError {
  constructor(problem: string) {
    super('bad_signature', `Not accepted: ${problem}`, 401);
  }
}

/** The same signed request again: it was stored the first time, so a relay may count this as delivered. */
export class ReplayedDeliveryError extends FeedmailError {
  constructor() {
    super('replayed_delivery', 'This delivery (its timestamp and signature) was already accepted and is not taken twice; sign each new delivery with a fresh timestamp', 409);
  }
}

export class WebhookBusyError extends FeedmailError {
  readonly retryAfterSeconds = 5;
  constructor(yourNetwork = false) {
    super('webhook_busy', yourNetwork
      ? 'Too many webhook deliveries from your network are being received right now; retry shortly'
      : 'Too many webhook deliveries are being received right now; retry shortly', 503);
  }
}

/** A webhook delivery that names no recipient, or more than a message may have. */
export class RecipientsError extends FeedmailError {
  constructor(code: 'no_recipients' | 'too_many_recipients', message: string) {
    super(code, message, 400);
  }
}

/** The failure of a request that was not ours to predict: nothing of it is shown to the client. */
export class InternalError extends FeedmailError {
  constructor(options?: { cause?: unknown }) {
    super('internal', 'Something went wrong on our side', 500, undefined, options);
  }
}

/** The server is draining: senders should come back (to this or another instance) shortly. */
export class ShuttingDownError extends FeedmailError {
  constructor() {
    super('shutting_down', 'Service shutting down, try again later', 503, { code: 421, enhanced: '4.3.2' });
  }
}

export class TooManyConnectionsError extends FeedmailError {
  constructor() {
    super('too_many_connections', 'Too many connections from your network, try again later', 429, { code: 421, enhanced: '4.7.0' });
  }
}

/** The in-flight byte cap was reached: this message was dropped unacknowledged and should be sent again later. */
export class InsufficientResourcesError extends FeedmailError {
  constructor() {
    super('insufficient_resources', 'Insufficient system resources, try again later', 503, { code: 451, enhanced: '4.3.1' });
  }
}

/** A session broke a time rule (no message started, DATA too slow or too long); the connection is closed. */
export class SessionTimeoutError extends FeedmailError {
  constructor(why: string) {
    super('session_timeout', `${why}, closing connection`, 408, { code: 421, enhanced: '4.4.2' });
  }
}

/** An error as smtp-server sends it: `responseCode` and the enhanced status code in front of the text. */
export function smtpReplyOf(err: FeedmailError): Error & { responseCode: number } {
  const reply = err.smtpReply ?? { code: 451, enhanced: '4.3.0' };
  return Object.assign(new Error(`${reply.enhanced} ${err.message}`), { responseCode: reply.code });
}

/** The text of the 250 that acknowledges a journaled message (smtp-server sends the code): the one SMTP reply that is no error. */
export function smtpAcceptedText(journalId: number): string {
  return `2.0.0 OK: queued as ${journalId}`;
}

/** A queued job whose payload is not what its task takes: retrying will not help, so it ends in the failed list at once. */
export class InvalidJobPayloadError extends Error {
  readonly code = 'invalid_job_payload';
  override readonly name = 'InvalidJobPayloadError';
}

/** Settings that cannot be used; the process stops with exit code 2 before anything listens. */
export class ConfigError extends Error {
  readonly code = 'config_invalid';
}

/** The process refuses to start (unsafe storage and the like), saying why and what to do. */
export class StartupError extends Error {
  readonly code = 'startup_refused';
}

/** Rendering stopped because the process is shutting down: the job must run again later, not store a fallback. */
export class ProcessPoolClosedError extends Error {
  readonly code = 'process_pool_closed';
}

/**
 * A database operation failed for a reason the store does not turn into a named error.
 * The message names the layer, the operation and the file; the driver's error is the
 * cause (so isDiskFull still sees SQLITE_FULL). Never shown to clients: it answers 500.
 */
export class StoreError extends Error {
  readonly code = 'store_failure';
  constructor(operation: string, file: string, cause: unknown) {
    super(`store: unable to ${operation} (${file})`, { cause });
    this.name = 'StoreError';
  }
}

/** True when an error (or its cause chain) is SQLite waiting too long for another connection's lock. */
export function isBusy(err: unknown): boolean {
  for (let e: unknown = err; e; e = (e as { cause?: unknown }).cause) {
    const code = (e as { code?: unknown }).code;
    if (typeof code === 'string' && (code.startsWith('SQLITE_BUSY') || code.startsWith('SQLITE_LOCKED'))) return true;
    // PostgreSQL: a serialization failure, a deadlock or a lock timeout; running again succeeds.
    if (code === '40001' || code === '40P01' || code === '55P03') return true;
  }
  return false;
}

/**
 * True when an error (or its cause chain) says the database server cannot be reached or
 * went away (PostgreSQL down, restarting, refusing connections, the network cut). Like a
 * busy database it is temporary: clients are told to come back (503), not a 500.
 */
export function isUnreachable(err: unknown): boolean {
  for (let e: unknown = err; e; e = (e as { cause?: unknown }).cause) {
    const code = (e as { code?: unknown }).code;
    if (typeof code === 'string') {
      if (['ECONNREFUSED', 'ECONNRESET', 'ENOTFOUND', 'EAI_AGAIN', 'ETIMEDOUT', 'EHOSTUNREACH', 'ENETUNREACH', 'EPIPE'].includes(code)) return true;
      // PostgreSQL: connection exceptions (08xxx), shutting down or starting up (57P01-57P03).
      if (code.startsWith('08') || code === '57P01' || code === '57P02' || code === '57P03') return true;
    }
    // node-postgres reports a lost connection or a pool timeout without a code.
    if (e instanceof Error && /^Connection terminated|timeout exceeded when trying to connect|Client has encountered a connection error/i.test(e.message)) return true;
  }
  return false;
}

/** An error's message followed by its causes' (a StoreError names the operation, its cause the reason). */
export function messageWithCauses(err: unknown): string {
  const parts: string[] = [];
  for (let e: unknown = err; e && parts.length < 5; e = (e as { cause?: unknown }).cause) parts.push(e instanceof Error ? e.message : String(e));
  return parts.join(': ');
}

/** True when an error (or its cause chain) is SQLite or the OS reporting a full disk. */
export function isDiskFull(err: unknown): boolean {
  for (let e: unknown = err; e; e = (e as { cause?: unknown }).cause) {
    const code = (e as { code?: unknown }).code;
    // 53100 is PostgreSQL's disk_full.
    if (code === 'SQLITE_FULL' || code === 'ENOSPC' || code === 'EDQUOT' || code === '53100') return true;
    if (e instanceof StorageFullError) return true;
  }
  return false;
}

/** A feed with as many WebSub subscriptions as FEEDMAIL_WEBSUB_MAX_SUBSCRIPTIONS_PER_FEED allows. */
export class WebsubSubscriptionsFullError extends FeedmailError {
  constructor() {
    super('websub_full', 'This feed has as many WebSub subscriptions as this server allows', 403);
  }
}

/** Issue 11: the live-update streams are at their cap (all of them, or those of the client's network). */
export class LiveStreamsBusyError extends FeedmailError {
  readonly retryAfterSeconds = 30;
  constructor(yourNetwork = false) {
    super('live_streams_busy', yourNetwork
      ? 'Too many live-update streams are open from your network; the page still works, reload it to see new mail'
      : 'Too many live-update streams are open right now; the page still works, reload it to see new mail', 503);
  }
}
