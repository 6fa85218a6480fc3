/**
 * The SMTP server: one hook per protocol phase. Recipients are checked at
 * RCPT TO (their feed, its limits, its block rules on the envelope sender), the
 * size while DATA streams in, the feeds' sender rules on the From: header at the
 * end of DATA, and "250" is sent only after the message is journaled (see
 * mail/ingest.ts).
 *
 * What one sender can take is bounded: connections per client network (fewer
 * once the server is near its global cap), the time a session may spend
 * before it starts a message, the message bytes all sessions hold in memory
 * together (past the cap a message is read to its end, dropped and deferred
 * with 451), and the time DATA may take (an absolute deadline and a minimum
 * average rate, each closing with 421).
 *
 * STARTTLS is offered when a certificate and key are configured (see
 * smtp-tls.ts for how they are reloaded); without them the server is plain
 * text only, as it always was.
 */
import type { AddressInfo } from 'node:net';
import { SMTPServer, type SMTPServerAddress, type SMTPServerDataStream, type SMTPServerSession } from 'smtp-server';
import { clientNetwork } from '../client-network.js';
import type { Config } from '../config.js';
import {
  FeedFullError, FeedmailError, InsufficientResourcesError, MessageTooLargeError, SenderBlockedError, SessionTimeoutError, ShuttingDownError, smtpAcceptedText, smtpReplyOf,
  StartupError, StorageFullError, TemporaryFailureError, TooManyConnectionsError, UnknownRecipientError,
} from '../errors.js';
import type { Logger } from '../log.js';
import type { Stores } from '../store/index.js';
import type { SmtpCounters } from '../ops/metrics.js';
import type { SpaceGuard } from '../ops/storage-guard.js';
import { receiveMessage, resolveRecipient, type ReceiveDeps, type Recipient } from './ingest.js';
import { CertificateReloader, TLS_MIN_VERSION } from './smtp-tls.js';

/**
 * How long DATA runs before the minimum rate is enforced: a message's first
 * seconds may be slow (TCP slow start, a sender assembling it) without the
 * sender being an attacker.
 */
export const DATA_RATE_GRACE_MS = 30_000;

/**
 * How long a session may go without starting a message (DATA), from its
 * connect and again from the end of each message. A real MTA sends EHLO, MAIL,
 * RCPT and DATA at once (or pipelined) and keeps an idle connection for a few
 * seconds at most (Postfix: 2 s); a session that only sits there holds one of
 * smtpMaxClients for the whole idle timeout otherwise.
 */
export const MESSAGE_START_TIMEOUT_MS = 30_000;

/**
 * Past this share of smtpMaxClients in use, a network may only open a quarter
 * of smtpMaxClientsPerAddress (at least 1): a few networks each at their full
 * limit would otherwise fill the server, and the senders that hold nothing yet
 * still find a free slot.
 */
const NEAR_CAPACITY_SHARE = 3 / 4;

export interface SmtpDeps {
  config: Config;
  stores: Stores;
  log: Logger;
  /** What this server counts, for /metrics. */
  counters: SmtpCounters;
  /** Called after a message is journaled, to wake the local job runner. */
  onAccepted?: () => void;
  /** The data directory's free space: asked at MAIL FROM, and each message's bytes set aside before they are written. */
  space?: SpaceGuard;
  /** For tests only: replaces DATA_RATE_GRACE_MS, so the minimum rate can be checked within seconds. */
  dataRateGraceMs?: number;
  /** For tests only: replaces MESSAGE_START_TIMEOUT_MS. */
  messageStartTimeoutMs?: number;
}

/** Sends a refusal on the connection itself (outside a hook's reply); send() closes it after a 421. */
function sendRefusal(connection: { send: (code: number, text: string) => void }, err: FeedmailError): void {
  const reply = smtpReplyOf(err);
  connection.send(reply.responseCode, reply.message);
}

/** Recipients that resolved to a feed carry its id, so DATA need not look them up again. */
type FeedRecipient = SMTPServerAddress & Recipient;

/** A counted session remembers the network it was counted under, and the timer that closes it if it starts no message. */
type CountedSession = SMTPServerSession & { clientNetwork?: string; messageStartTimer?: NodeJS.Timeout };

export class FeedmailSmtpServer {
  readonly server: SMTPServer;
  readonly #perNetwork = new Map<string, number>();
  /** Sessions counted in #perNetwork, all networks together. */
  #counted = 0;
  #draining = false;
  /** This server's section of the counters /metrics reads (see ops/metrics.ts). */
  readonly #counters: SmtpCounters;

  /** How DATA hands a message on: the one receive path, counting into this server's counters. */
  readonly #receiving: ReceiveDeps;

  /** The STARTTLS certificate and key, kept in step with their files; null when TLS is not configured. */
  readonly tls: CertificateReloader | null = null;

  constructor(private readonly deps: SmtpDeps) {
    const { config } = deps;
    this.#counters = deps.counters;
    this.#receiving = { ...deps, counters: this.#counters };
    let starttls = {};
    if (config.smtpTlsCert !== '') {
      // Read before the server exists: a pair that does not load stops the start.
      try {
        this.tls = new CertificateReloader({ certFile: config.smtpTlsCert, keyFile: config.smtpTlsKey },
          ({ key, cert }) => this.server.updateSecureContext({ key, cert }), deps.log);
      } catch (err) {
        throw new StartupError(`unable to load the STARTTLS certificate ${config.smtpTlsCert} and key ${config.smtpTlsKey} `
          + `(FEEDMAIL_SMTP_TLS_CERT, FEEDMAIL_SMTP_TLS_KEY): ${(err as Error).message}`);
      }
      const { key, cert } = this.tls.current;
      starttls = { secure: false, hideSTARTTLS: false, key, cert, minVersion: TLS_MIN_VERSION };
    }
    this.server = new SMTPServer({
      ...starttls,
      name: config.mailDomains[0],
      banner: 'feedmail',
      size: config.maxMessageBytes,
      authOptional: true,
      disabledCommands: this.tls ? ['AUTH'] : ['AUTH', 'STARTTLS'],
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
      onData: (stream, session, cb) => {
        // The message has started; DATA has a deadline of its own.
        clearTimeout((session as CountedSession).messageStartTimer);
        this.onData(stream, session, (err, message) => {
          cb(err, message);
          this.awaitMessage(session);
        });
      },
    });
    this.server.on('error', (err) => deps.log.warn({ err }, 'smtp: connection error'));
  }

  listen(port: number, host: string): Promise<AddressInfo> {
    return new Promise((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen(port, host, () => {
        this.server.off('error', reject);
        if (this.tls) {
          this.tls.watch();
          this.deps.log.info({ fingerprint256: this.tls.current.fingerprint256, validTo: this.tls.current.validTo.toISOString() }, 'smtp: STARTTLS offered');
        }
        resolve(this.server.server.address() as AddressInfo);
      });
    });
  }

  /**
   * Refuses new transactions with 421 and closes the listener; sessions in DATA finish.
   * With `graceMs` (a worker leaving a rolling restart, whose port the other workers keep
   * serving) the listener closes first and open sessions carry on as usual for up to
   * graceMs: smtp-server's own close would answer their next command with 421.
   */
  async close(graceMs = 0): Promise<void> {
    if (graceMs > 0) {
      // net's close calls back once every connection is gone.
      const drained = new Promise<void>((resolve) => this.server.server.close(() => resolve()));
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([drained, new Promise<void>((resolve) => { timer = setTimeout(resolve, graceMs); })]);
      clearTimeout(timer);
    }
    this.#draining = true;
    this.tls?.stop();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  private onConnect(session: CountedSession, cb: (err?: Error) => void): void {
    if (this.#draining) return cb(smtpReplyOf(new ShuttingDownError()));
    // Keyed by network: one host has a whole /64, and often many IPv4 addresses of one /24.
    const { smtpMaxClients, smtpMaxClientsPerAddress } = this.deps.config;
    const network = clientNetwork(session.remoteAddress);
    const n = (this.#perNetwork.get(network) ?? 0) + 1;
    const nearCapacity = this.#counted >= smtpMaxClients * NEAR_CAPACITY_SHARE;
    const limit = nearCapacity ? Math.max(1, Math.floor(smtpMaxClientsPerAddress / 4)) : smtpMaxClientsPerAddress;
    if (n > limit) {
      this.#counters.networkConnectionsRefused++;
      return cb(smtpReplyOf(new TooManyConnectionsError()));
    }
    this.#perNetwork.set(network, n);
    this.#counted++;
    session.clientNetwork = network;
    this.awaitMessage(session);
    cb();
  }

  /** (Re)starts the time the session has to begin its next message. */
  private awaitMessage(session: CountedSession): void {
    clearTimeout(session.messageStartTimer);
    if (session.clientNetwork === undefined) return;
    session.messageStartTimer = setTimeout(() => {
      const connection = [...this.server.connections].find((c) => c.session === session);
      if (!connection) return;
      this.#counters.messageStartTimedOut++;
      this.deps.log.info({ sessionId: session.id }, 'smtp: no message started in time, closing the session');
      sendRefusal(connection, new SessionTimeoutError('No message started in time'));
    }, this.deps.messageStartTimeoutMs ?? MESSAGE_START_TIMEOUT_MS);
  }

  private onClose(session: CountedSession): void {
    clearTimeout(session.messageStartTimer);
    const network = session.clientNetwork;
    if (network === undefined) return;
    session.clientNetwork = undefined;
    this.#counted--;
    const n = (this.#perNetwork.get(network) ?? 1) - 1;
    if (n <= 0) this.#perNetwork.delete(network);
    else this.#perNetwork.set(network, n);
  }

  private onMailFrom(cb: (err?: Error) => void): void {
    if (this.#draining) return cb(smtpReplyOf(new ShuttingDownError()));
    if (this.deps.space && !this.deps.space.hasSpace()) {
      this.#counters.tempFailed++;
      return cb(smtpReplyOf(new StorageFullError()));
    }
    cb();
  }

  private async onRcptTo(address: FeedRecipient, session: SMTPServerSession, cb: (err?: Error) => void): Promise<void> {
    try {
      // The envelope sender is known now: a block rule on it refuses here; the From: header waits for DATA.
      const mailFrom = session.envelope.mailFrom ? session.envelope.mailFrom.address : '';
      address.feedId = (await resolveRecipient(this.#receiving, address.address, { mailFrom })).id;
      cb();
    } catch (err) {
      if (err instanceof FeedmailError) {
        // resolveRecipient counted the blocked and deferred ones (and listed them for the feed's owner).
        if (err instanceof UnknownRecipientError) this.#counters.rejectedRecipients++;
        else if (err instanceof SenderBlockedError) this.deps.log.info({ sessionId: session.id }, 'smtp: recipient refused, its feed refuses the sender');
        else if (err instanceof FeedFullError) this.deps.log.info({ sessionId: session.id, code: err.code }, 'smtp: recipient deferred, its feed is at a limit');
        return cb(smtpReplyOf(err));
      }
      this.deps.log.error({ err, sessionId: session.id }, 'smtp: recipient lookup failed');
      cb(smtpReplyOf(new TemporaryFailureError('Temporary failure looking up the recipient, try again later')));
    }
  }

  private onData(stream: SMTPServerDataStream, session: SMTPServerSession, reply: (err?: Error | null, message?: string) => void): void {
    const { config, log } = this.deps;
    const startedAt = Date.now();
    const graceMs = this.deps.dataRateGraceMs ?? DATA_RATE_GRACE_MS;
    let chunks: Buffer[] = [];
    /** Bytes read so far, kept or not. */
    let size = 0;
    /** Bytes of `chunks`, reserved against the in-flight cap. */
    let held = 0;
    /** Set once the cap was reached: the rest is read and thrown away, the answer is 451. */
    let dropped = false;
    const timers: { deadline?: NodeJS.Timeout; rate?: NodeJS.Timeout } = {};

    const release = () => {
      this.#counters.inflightBytes -= held;
      held = 0;
      chunks = [];
    };
    const stopTimers = () => {
      clearTimeout(timers.deadline);
      clearTimeout(timers.rate);
    };
    // A stream may fail and still end; the client must get exactly one reply.
    let replied = false;
    const cb = (err?: Error | null, message?: string) => {
      if (replied) return;
      replied = true;
      const code = (err as { responseCode?: number } | null | undefined)?.responseCode ?? (err ? 451 : 250);
      const outcome = code < 400 ? 'accepted' : code < 500 ? 'deferred' : 'rejected';
      this.#counters.transactionDuration.observe({ outcome }, (Date.now() - startedAt) / 1000);
      reply(err, message);
    };

    /** Ends the session: a sender this slow holds a slot and its bytes for nothing. */
    const closeSlow = (counter: 'dataDeadlineExceeded' | 'dataTooSlow', why: string) => {
      if (replied) return;
      replied = true;
      stopTimers();
      release();
      this.#counters[counter]++;
      log.warn({ sessionId: session.id, bytes: size, elapsedMs: Date.now() - startedAt }, `smtp: ${why}, closing the session`);
      // smtp-server replies to onData only after the final dot, so the 421 goes out
      // through the connection itself.
      const connection = [...this.server.connections].find((c) => c.session === session);
      if (connection) sendRefusal(connection, new SessionTimeoutError(why));
      else stream.destroy();
    };

    timers.deadline = setTimeout(() => closeSlow('dataDeadlineExceeded', 'Message took too long to arrive'), config.smtpDataTimeoutMs);
    if (config.smtpMinDataRate > 0) {
      // The earliest moment the average can drop below the rate is when the
      // elapsed time reaches size / rate; check then, not on a fixed tick.
      const checkRate = () => {
        const elapsed = Date.now() - startedAt;
        if (elapsed >= graceMs && size * 1000 < config.smtpMinDataRate * elapsed) {
          return closeSlow('dataTooSlow', 'Message arriving too slowly');
        }
        const due = Math.max(graceMs, Math.ceil((size * 1000) / config.smtpMinDataRate) + 1);
        timers.rate = setTimeout(checkRate, due - elapsed);
      };
      timers.rate = setTimeout(checkRate, graceMs);
    }

    stream.on('data', (chunk: Buffer) => {
      size += chunk.length;
      this.#counters.dataBytes += chunk.length;
      if (dropped || replied) return;
      if (size > config.maxMessageBytes) {
        // Refused with 552 at the end whatever else happens; nothing to keep.
        release();
        dropped = true;
        return;
      }
      if (this.#counters.inflightBytes + chunk.length > config.smtpMaxInflightBytes) {
        release();
        dropped = true;
        this.#counters.inflightRefused++;
        log.warn({ sessionId: session.id, inflightBytes: this.#counters.inflightBytes, limit: config.smtpMaxInflightBytes },
          'smtp: in-flight message bytes at their limit, deferring this message');
        return;
      }
      chunks.push(chunk);
      held += chunk.length;
      this.#counters.inflightBytes += chunk.length;
      if (this.#counters.inflightBytes > this.#counters.inflightBytesPeak) this.#counters.inflightBytesPeak = this.#counters.inflightBytes;
    });
    stream.on('error', (err) => {
      stopTimers();
      release();
      if (replied) return;
      log.warn({ err, sessionId: session.id }, 'smtp: data stream failed');
      cb(smtpReplyOf(new TemporaryFailureError('Error reading message, try again')));
    });
    stream.on('end', () => {
      stopTimers();
      if (replied) return release();
      if (stream.sizeExceeded || size > config.maxMessageBytes) {
        release();
        this.#counters.tooLarge++;
        return cb(smtpReplyOf(new MessageTooLargeError(config.maxMessageBytes)));
      }
      if (dropped) {
        this.#counters.tempFailed++;
        return cb(smtpReplyOf(new InsufficientResourcesError()));
      }
      const mailFrom = session.envelope.mailFrom ? session.envelope.mailFrom.address : '';
      const recipients = session.envelope.rcptTo as FeedRecipient[];
      receiveMessage(this.#receiving, { source: 'smtp', mailFrom, recipients, raw: Buffer.concat(chunks), sessionId: session.id }).then(
        ({ journalId }) => {
          release();
          cb(null, smtpAcceptedText(journalId));
        },
        (err: unknown) => {
          release();
          // receiveMessage counted and logged it; the sender hears the error's own reply.
          cb(smtpReplyOf(err instanceof FeedmailError ? err : new TemporaryFailureError('Temporary failure, try again later')));
        },
      );
    });
  }
}
