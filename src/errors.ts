/**
 * Named errors with a stable code and their mapping to each transport, so a
 * failure means the same thing over HTTP, SMTP and in the logs.
 */
export class FeedmailError extends Error {
  constructor(
    readonly code: string,
    message: string,
    readonly httpStatus: number,
    readonly smtpReply?: { code: number; enhanced: string },
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = 'FeedmailError';
  }
}

/** Every unknown secret answers the same, so probing learns nothing. */
export class NotFoundError extends FeedmailError {
  constructor() {
    super('not_found', 'Not found', 404);
  }
}

export class UnknownRecipientError extends FeedmailError {
  constructor() {
    super('unknown_recipient', 'No such mailbox here', 404, { code: 550, enhanced: '5.1.1' });
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

/** The feed holds as many bytes as its quota allows: the sender should retry once the owner made room. */
export class FeedFullError extends FeedmailError {
  constructor() {
    super('feed_full', 'This feed is full (over its storage quota); try again later', 507, { code: 452, enhanced: '4.2.2' });
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

/** True when an error (or its cause chain) is SQLite or the OS reporting a full disk. */
export function isDiskFull(err: unknown): boolean {
  for (let e: unknown = err; e; e = (e as { cause?: unknown }).cause) {
    const code = (e as { code?: unknown }).code;
    if (code === 'SQLITE_FULL' || code === 'ENOSPC' || code === 'EDQUOT') return true;
    if (e instanceof StorageFullError) return true;
  }
  return false;
}
