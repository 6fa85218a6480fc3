/** Structured logging with fixed keys; secrets are shortened before they reach a log line. */
import { pino, type Logger } from 'pino';

export type { Logger };

export function createLogger(level: string, name = 'feedmail'): Logger {
  return pino({ name, level, base: { pid: process.pid } }, pino.destination({ dest: 2, sync: true }));
}

/** Enough of a secret to correlate log lines, never enough to use it. */
export function redactToken(token: string): string {
  return token.length <= 6 ? '…' : `${token.slice(0, 4)}…`;
}
