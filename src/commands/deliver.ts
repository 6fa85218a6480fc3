/**
 * `feedmail deliver`: one message on standard input, journaled through the same
 * receiveMessage path as SMTP and the webhooks, for a mail server on the same host
 * (Postfix `pipe`, procmail, fetchmail's `mda`, an Exim pipe transport). The exit status
 * follows sysexits.h, which those programs read: 0 only once the message is committed to
 * the journal; 75 (EX_TEMPFAIL, "try again later") when it could not be, storing nothing.
 *
 * The journal is processed by whichever job runner sees it: a `feedmail serve` or
 * `feedmail worker` running on the same data directory picks the message up within its
 * poll interval (half a second); with none running, the next one to start does.
 */
import { preflight } from '../app.js';
import type { Config } from '../config.js';
import {
  FeedFullError, isBusy, isDiskFull, SenderBlockedError, StartupError, StorageFullError, TemporaryFailureError, UnknownRecipientError,
} from '../errors.js';
import type { Logger } from '../log.js';
import { headerFields, recipientsFromHeaders } from '../mail/envelope-headers.js';
import { addressesOf } from '../mail/head.js';
import { receiveMessage } from '../mail/ingest.js';
import { DiskSpace } from '../ops/storage-guard.js';
import { holdDataDirShared } from '../store/backup.js';
import { openStores } from '../store/index.js';

/** sysexits.h */
export const EX_OK = 0;
export const EX_USAGE = 64;
export const EX_DATAERR = 65;
export const EX_NOUSER = 67;
export const EX_TEMPFAIL = 75;
export const EX_NOPERM = 77;

export const DELIVER_HELP = `Usage: feedmail deliver [--to <address>]... [--from <address>] [settings] < message.eml

Reads one message on standard input and journals it for the feeds it is addressed to,
as if it had arrived over SMTP. For mail servers on the same host: Postfix "pipe",
procmail, fetchmail "mda", Exim. Needs FEEDMAIL_DATA_DIR / --data-dir (and
FEEDMAIL_MAIL_DOMAINS) as "feedmail serve" uses them.

  --to <address>    A recipient (repeatable). Without it, the message's Delivered-To
                    addresses are used, else its X-Original-To, else its To:
  --from <address>  The envelope sender; empty for none (else the message's Return-Path)

Exit status (sysexits.h, which mail servers read):
  0   journaled: the entry appears once a "feedmail serve" or "feedmail worker" on the
      same data directory processes it (within a second when one runs; otherwise the
      next one started does). Prints "accepted: journal #<id>, <n> feed(s)".
  64  usage error, or no recipient found
  65  the message is empty or larger than FEEDMAIL_MAX_MESSAGE_BYTES
  67  no recipient is a feed here (do not retry)
  77  every recipient feed refuses the sender (do not retry)
  75  try again later: the disk is below FEEDMAIL_MIN_FREE_BYTES, the database is busy,
      the feeds are at a limit, or the settings or data directory are wrong (so the
      mail server keeps the message while you fix them); nothing was stored
`;

interface DeliverOptions {
  to: string[];
  from?: string;
}

function parseOptions(args: string[]): DeliverOptions | string {
  const options: DeliverOptions = { to: [] };
  for (let i = 0; i < args.length; i++) {
    const arg = args[i]!;
    const eq = arg.indexOf('=');
    const name = eq > 0 ? arg.slice(0, eq) : arg;
    if (name !== '--to' && name !== '--from') return `unknown option "${arg}"`;
    const value = eq > 0 ? arg.slice(eq + 1) : args[++i];
    // An empty sender is the null sender of bounces (Postfix passes `--from=${sender}` as `--from=`).
    if (value === undefined || (value === '' && name === '--to')) return `${name} needs an address`;
    if (name === '--to') options.to.push(value);
    else options.from = value;
  }
  return options;
}

/** Standard input, up to `limit` bytes; undefined when there is more. */
async function readInput(input: NodeJS.ReadableStream, limit: number): Promise<Buffer | undefined> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of input) {
    const b = typeof chunk === 'string' ? Buffer.from(chunk) : chunk;
    size += b.length;
    if (size > limit) return undefined;
    chunks.push(b);
  }
  return Buffer.concat(chunks, size);
}

function say(message: string): void {
  process.stderr.write(`feedmail deliver: ${message}\n`);
}

/** Runs the command; resolves with the exit status. */
export async function runDeliver(config: Config, log: Logger, args: string[], input: NodeJS.ReadableStream = process.stdin): Promise<number> {
  const options = parseOptions(args);
  if (typeof options === 'string') {
    say(`${options}; see "feedmail deliver --help"`);
    return EX_USAGE;
  }
  try {
    preflight(config);
  } catch (err) {
    if (!(err instanceof StartupError)) throw err;
    say(err.message);
    return EX_TEMPFAIL;
  }
  const raw = await readInput(input, config.maxMessageBytes);
  if (raw === undefined) {
    say(`the message is larger than FEEDMAIL_MAX_MESSAGE_BYTES (${config.maxMessageBytes} bytes)`);
    return EX_DATAERR;
  }
  if (raw.length === 0) {
    say('the message on standard input is empty');
    return EX_DATAERR;
  }
  const recipients = options.to.length > 0 ? options.to : recipientsFromHeaders(raw);
  if (recipients.length === 0) {
    say('no recipient: pass --to <address>, or deliver a message with a Delivered-To, X-Original-To or To header');
    return EX_USAGE;
  }
  if (recipients.length > config.smtpMaxRecipients) {
    say(`at most ${config.smtpMaxRecipients} recipients (FEEDMAIL_SMTP_MAX_RECIPIENTS)`);
    return EX_DATAERR;
  }
  const returnPath = headerFields(raw).find((f) => f.name === 'return-path');
  const mailFrom = options.from ?? (returnPath ? addressesOf(returnPath.value)[0] : undefined) ?? '';

  // Below the minimum, the databases are not even opened: nothing is written.
  const space = new DiskSpace(config.dataDir, config.minFreeBytes);
  if (!space.hasSpace(raw.length)) {
    say('the disk is below the free-space minimum (FEEDMAIL_MIN_FREE_BYTES); try again later');
    return EX_TEMPFAIL;
  }
  // A restore holds the data directory exclusively: the mail server keeps the message and tries again.
  const dirLock = holdDataDirShared(config.dataDir);
  if (!dirLock) {
    say(`"feedmail restore" is restoring ${config.dataDir}; try again later`);
    return EX_TEMPFAIL;
  }
  let stores: ReturnType<typeof openStores> | undefined;
  try {
    stores = openStores(config.dataDir, { databaseUrl: config.databaseUrl, walMaxBytes: config.walMaxBytes });
    const received = await receiveMessage({ config, stores, log, space }, {
      source: 'deliver', mailFrom, recipients: recipients.map((address) => ({ address })), raw,
    });
    process.stdout.write(`accepted: journal #${received.journalId}, ${received.feedIds.length} feed(s)\n`);
    return EX_OK;
  } catch (err) {
    if (err instanceof UnknownRecipientError) {
      say('no recipient is a feed here');
      return EX_NOUSER;
    }
    if (err instanceof SenderBlockedError) {
      say(err.message);
      return EX_NOPERM;
    }
    if (err instanceof FeedFullError || err instanceof StorageFullError || err instanceof TemporaryFailureError || isDiskFull(err) || isBusy(err)) {
      say(`${isBusy(err) ? 'the database is busy' : (err as Error).message}; try again later`);
      return EX_TEMPFAIL;
    }
    // Anything unforeseen: the mail server keeps the message and tries again, rather than lose it.
    say(`unable to store the message, try again later: ${(err as Error)?.message ?? String(err)}`);
    log.error({ err }, 'deliver: failed');
    return EX_TEMPFAIL;
  } finally {
    await stores?.close();
    dirLock.release();
  }
}
