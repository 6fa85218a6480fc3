/**
 * The SMTP server: one hook per protocol phase. Recipients are checked at
 * RCPT TO, the size while DATA streams in, and "250" is sent only after the
 * message is journaled (see mail/ingest.ts).
 */
import type { AddressInfo } from 'node:net';
import { SMTPServer, type SMTPServerAddress, type SMTPServerDataStream, type SMTPServerSession } from 'smtp-server';
import type { Config } from '../config.js';
import { FeedmailError, MessageTooLargeError, StorageFullError, UnknownRecipientError } from '../errors.js';
import type { Logger } from '../log.js';
import type { Stores } from '../store/index.js';
import { acceptMessage, feedForAddress } from './ingest.js';

export interface SmtpDeps {
  config: Config;
  stores: Stores;
  log: Logger;
  /** Called after a message is journaled, to wake the local job runner. */
  onAccepted?: () => void;
  /** True while the data directory's disk has room for another message. */
  hasSpace?: () => boolean;
}

type SmtpError = Error & { responseCode?: number };

function smtpError(code: number, enhanced: string, message: string): SmtpError {
  const err: SmtpError = new Error(`${enhanced} ${message}`);
  err.responseCode = code;
  return err;
}

function fromFeedmailError(err: FeedmailError): SmtpError {
  const reply = err.smtpReply ?? { code: 451, enhanced: '4.3.0' };
  return smtpError(reply.code, reply.enhanced, err.message);
}

/** Recipients that resolved to a feed carry its id, so DATA need not look them up again. */
type FeedRecipient = SMTPServerAddress & { feedId?: number };

export class FeedmailSmtpServer {
  readonly server: SMTPServer;
  readonly #perClient = new Map<string, number>();
  #draining = false;
  /** Counters for /metrics. */
  readonly stats = { accepted: 0, rejectedRecipients: 0, tooLarge: 0, tempFailed: 0 };

  constructor(private readonly deps: SmtpDeps) {
    const { config } = deps;
    this.server = new SMTPServer({
      name: config.mailDomains[0],
      banner: 'feedmail',
      size: config.maxMessageBytes,
      authOptional: true,
      disabledCommands: ['AUTH', 'STARTTLS'],
      hideENHANCEDSTATUSCODES: true,
      maxClients: config.smtpMaxClients,
      maxRecipients: config.smtpMaxRecipients,
      socketTimeout: config.smtpSessionTimeoutMs,
      // On shutdown, idle sessions get this long before they are closed.
      closeTimeout: 5_000,
      logger: false,
      onConnect: (session, cb) => this.onConnect(session, cb),
      onClose: (session) => this.onClose(session),
      onMailFrom: (_address, _session, cb) => this.onMailFrom(cb),
      onRcptTo: (address, session, cb) => void this.onRcptTo(address, session, cb),
      onData: (stream, session, cb) => this.onData(stream, session, cb),
    });
    this.server.on('error', (err) => deps.log.warn({ err }, 'smtp: connection error'));
  }

  listen(port: number, host: string): Promise<AddressInfo> {
    return new Promise((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen(port, host, () => {
        this.server.off('error', reject);
        resolve(this.server.server.address() as AddressInfo);
      });
    });
  }

  /** Refuses new transactions with 421 and closes the listener; sessions in DATA finish. */
  async close(): Promise<void> {
    this.#draining = true;
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  private onConnect(session: SMTPServerSession, cb: (err?: Error) => void): void {
    if (this.#draining) return cb(smtpError(421, '4.3.2', 'Service shutting down, try again later'));
    const client = session.remoteAddress;
    const n = (this.#perClient.get(client) ?? 0) + 1;
    if (n > this.deps.config.smtpMaxClientsPerAddress) {
      return cb(smtpError(421, '4.7.0', 'Too many connections from your address, try again later'));
    }
    this.#perClient.set(client, n);
    (session as SMTPServerSession & { counted?: boolean }).counted = true;
    cb();
  }

  private onClose(session: SMTPServerSession): void {
    if (!(session as SMTPServerSession & { counted?: boolean }).counted) return;
    const client = session.remoteAddress;
    const n = (this.#perClient.get(client) ?? 1) - 1;
    if (n <= 0) this.#perClient.delete(client);
    else this.#perClient.set(client, n);
  }

  private onMailFrom(cb: (err?: Error) => void): void {
    if (this.#draining) return cb(smtpError(421, '4.3.2', 'Service shutting down, try again later'));
    if (this.deps.hasSpace && !this.deps.hasSpace()) {
      this.stats.tempFailed++;
      return cb(fromFeedmailError(new StorageFullError()));
    }
    cb();
  }

  private async onRcptTo(address: FeedRecipient, session: SMTPServerSession, cb: (err?: Error) => void): Promise<void> {
    try {
      const feed = await feedForAddress(this.deps.stores.app.db, address.address, this.deps.config.mailDomains);
      if (!feed) {
        this.stats.rejectedRecipients++;
        return cb(fromFeedmailError(new UnknownRecipientError()));
      }
      address.feedId = feed.id;
      cb();
    } catch (err) {
      this.deps.log.error({ err, sessionId: session.id }, 'smtp: recipient lookup failed');
      cb(smtpError(451, '4.3.0', 'Temporary failure looking up the recipient, try again later'));
    }
  }

  private onData(stream: SMTPServerDataStream, session: SMTPServerSession, reply: (err?: Error | null, message?: string) => void): void {
    // A stream may fail and still end; the client must get exactly one reply.
    let replied = false;
    const cb = (err?: Error | null, message?: string) => {
      if (replied) return;
      replied = true;
      reply(err, message);
    };
    const chunks: Buffer[] = [];
    let size = 0;
    stream.on('data', (chunk: Buffer) => {
      // Past the limit the rest is read and thrown away; smtp-server flags sizeExceeded.
      if (size <= this.deps.config.maxMessageBytes) chunks.push(chunk);
      size += chunk.length;
    });
    stream.on('error', (err) => {
      this.deps.log.warn({ err, sessionId: session.id }, 'smtp: data stream failed');
      cb(smtpError(451, '4.3.0', 'Error reading message, try again'));
    });
    stream.on('end', () => {
      if (stream.sizeExceeded || size > this.deps.config.maxMessageBytes) {
        this.stats.tooLarge++;
        return cb(fromFeedmailError(new MessageTooLargeError(this.deps.config.maxMessageBytes)));
      }
      const recipients = session.envelope.rcptTo as FeedRecipient[];
      const feedIds = [...new Set(recipients.map((r) => r.feedId).filter((id): id is number => id !== undefined))];
      const mailFrom = session.envelope.mailFrom ? session.envelope.mailFrom.address : '';
      acceptMessage(this.deps.stores.queue.db, { source: 'smtp', mailFrom, feedIds, raw: Buffer.concat(chunks) }).then(
        (journalId) => {
          this.stats.accepted++;
          this.deps.log.info({ journalId, sessionId: session.id, bytes: size, feeds: feedIds.length }, 'smtp: message accepted');
          this.deps.onAccepted?.();
          cb(null, `2.0.0 OK: queued as ${journalId}`);
        },
        (err: unknown) => {
          this.stats.tempFailed++;
          this.deps.log.error({ err, sessionId: session.id }, 'smtp: unable to store message');
          cb(err instanceof FeedmailError ? fromFeedmailError(err) : smtpError(451, '4.3.0', 'Temporary failure, try again later'));
        },
      );
    });
  }
}
