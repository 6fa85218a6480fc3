/** Structured logging with fixed keys; secrets are shortened before they reach a log line. */
import { pino, type Logger } from 'pino';

export type { Logger };

export function createLogger(level: string, name = 'feedmail'): Logger {
  const destination = pino.destination({ dest: 2, sync: true });
  // A log line that cannot be written (stderr redirected to a full disk, a closed pipe) is
  // lost; it must not take web, SMTP and jobs down with it as an unhandled 'error' event.
  destination.on('error', () => undefined);
  return pino({ name, level, base: { pid: process.pid } }, destination);
}
