/**
 * One log line when the database becomes unreachable and one when it answers again,
 * instead of a stack trace for every request or every poll while it is down (issue 15).
 * While the outage lasts, a reminder at most once a minute says how many failures it hid.
 */
import type { Logger } from '../log.js';
import { messageWithCauses } from '../errors.js';

const REMIND_EVERY_MS = 60_000;

export class OutageLog {
  #since?: number;
  #lastLine = 0;
  #hidden = 0;

  constructor(private readonly log: Logger, private readonly what: string) {}

  /** A failure to reach the database: logged once per outage (and once a minute after). */
  failed(err: unknown): void {
    const now = Date.now();
    if (this.#since === undefined) {
      this.#since = now;
      this.#lastLine = now;
      this.log.error({ reason: messageWithCauses(err) }, `${this.what}: the database is unreachable; retrying (logged again when it answers)`);
      return;
    }
    this.#hidden++;
    if (now - this.#lastLine >= REMIND_EVERY_MS) {
      this.#lastLine = now;
      this.log.warn({ reason: messageWithCauses(err), failures: this.#hidden, downForSeconds: Math.round((now - this.#since) / 1000) }, `${this.what}: the database is still unreachable`);
      this.#hidden = 0;
    }
  }

  /** A database operation succeeded: logs the recovery if an outage was in progress. */
  recovered(): void {
    if (this.#since === undefined) return;
    this.log.info({ downForSeconds: Math.round((Date.now() - this.#since) / 1000) }, `${this.what}: the database answers again`);
    this.#since = undefined;
    this.#hidden = 0;
  }
}
