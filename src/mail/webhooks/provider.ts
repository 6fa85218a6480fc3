/** What a webhook provider is: one file under mail/webhooks/ per provider, served by web/routes/inbound.ts. */
import type { IncomingHttpHeaders } from 'node:http';
import type { Config } from '../../config.js';
import type { FeedmailError } from '../../errors.js';
import type { Logger } from '../../log.js';

/** A delivery as a provider sees it before one byte of its body is read. */
export interface WebhookRequest {
  /** Upper case, e.g. POST. */
  method: string;
  /** The request target exactly as sent on the request line: path and query, e.g. `/inbound/raw?to=a%40b.example`. */
  target: string;
  /** The target parsed, for its query. */
  url: URL;
  headers: IncomingHttpHeaders;
}

/**
 * What a provider made of a delivery's headers: how its body is authenticated
 * while it streams in, and what the route may decide before reading the body.
 */
export interface SignedRequest {
  /** Takes each body chunk as it arrives, so the signature is computed while the body streams in, not over a second copy. */
  update(chunk: Buffer): void;
  /**
   * Called after the last chunk with the whole body: throws BadSignatureError
   * unless the signature matches the body. A provider whose signature travels in
   * the body (Mailgun's form fields, an SNS envelope) verifies it here, and may
   * set `replay` here. May be async (a form read with busboy, SNS's certificate fetch).
   */
  verify(body: Buffer): void | Promise<void>;
  /**
   * Identifies this delivery in the replay table (`webhook_deliveries`, in queue.db) until
   * `expiresAt` (ms): the same signed request again is refused with 409 by every process.
   * Known from the headers, it is checked before the body is read; set by `verify`,
   * it is checked right after. Leave it out only for a provider whose requests carry
   * nothing unique.
   */
  replay?: { signature: string; expiresAt: number };
  /** The recipients, when the request names them outside its body (raw's `?to=`): counted before the body is read. */
  recipients?: string[];
}

/** What a provider may use besides its secret: the other settings (SNS's auto-confirm) and the log. */
export interface WebhookContext {
  config: Config;
  log: Logger;
}

/** A delivery's body, authenticated, turned into what every transport hands over. */
export interface ParsedDelivery {
  /** Addresses as the sender gave them; ingest resolves them to feeds. */
  recipients: string[];
  /** The message exactly as received, MIME headers and all. */
  raw: Buffer;
  /** The envelope sender, when the provider tells it. */
  mailFrom?: string;
}

/**
 * One provider of inbound mail over HTTP, served at `POST /inbound/<name>`. A
 * provider says only what differs between providers; the route
 * (web/routes/inbound.ts) keeps what every webhook must do the same way, in this
 * order: the endpoint is off (404) while `secret` is empty; `checkHeaders`
 * authenticates from the headers alone; a declared length over
 * FEEDMAIL_MAX_MESSAGE_BYTES (413), a recipient count outside 1 to
 * FEEDMAIL_SMTP_MAX_RECIPIENTS (400), a replay (409) and a full set of body slots
 * per server and per client network (503 with Retry-After) are refused next, each
 * closing the connection with the body unread; then the body is read with its
 * size capped and a minimum rate, fed to `update` as it arrives and checked by
 * `verify`; `parse` turns it into recipients and raw MIME; mail/ingest.ts's
 * receiveMessage resolves the recipients and journals the message; only then is
 * the delivery answered `acceptedStatus`.
 *
 * A refusal is answered with the status its class in src/errors.ts carries, the
 * one table of statuses: unknown recipients and blocked senders 422 ("do not
 * retry"), feeds at a limit 507, a full disk 503 with Retry-After, a bad
 * signature 401. Throw only those classes;
 * a sender that reads "do not retry" from another status gets it from `statusFor`.
 */
export interface WebhookProvider<Signed extends SignedRequest = SignedRequest, Secret = string> {
  /** The path segment: served at `POST /inbound/<name>`, journaled as `webhook:<name>`. Lowercase letters, digits and '-'. */
  readonly name: string;
  /**
   * The secret its deliveries are authenticated with, as the provider needs it (a key,
   * credentials, a key and a time window); '' or undefined turns the endpoint off (404).
   */
  secret(config: Config): Secret | '' | undefined;
  /**
   * Authenticates a delivery as far as its headers allow, before any of the body is
   * read: throws BadSignatureError (401) for a missing, malformed or stale signature.
   * `now` is the server's clock in ms.
   */
  checkHeaders(request: WebhookRequest, secret: Secret, now: number, context: WebhookContext): Signed;
  /**
   * Turns the verified body into recipients and raw MIME; throws BadRequestError for a body it cannot read.
   * May be async. Null: an authenticated request that carries no mail (SNS's subscription
   * handshake), answered `acceptedStatus` with nothing stored.
   */
  parse(body: Buffer, signed: Signed): ParsedDelivery | null | Promise<ParsedDelivery | null>;
  /** The status of a delivery whose message is journaled (raw: 202). */
  readonly acceptedStatus: number;
  /**
   * The status of a refusal, for a provider whose sender reads statuses in its own
   * dialect (one that stops retrying only on 406, say): it translates the meaning
   * errors.ts gives ("do not retry", "retry later"), never invents an outcome.
   * Left out (raw leaves it out), every refusal gets the status of its class.
   */
  statusFor?(error: FeedmailError): number | undefined;
}
