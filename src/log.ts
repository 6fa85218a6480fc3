/** Structured logging with fixed keys; secrets are shortened before they reach a log line. */
import { pino, type Logger } from 'pino';

export type { Logger };

export function createLogger(level: string, name = 'feedmail'): Logger {
  return pino({ name, level, base: { pid: process.pid } }, pino.destination({ dest: 2, sync: true }));
}
