/**
 * The SMTP ceiling: a bare smtp-server that accepts every message and discards it, run as
 * its own process, so the same client measured against it shows what the client and the
 * SMTP library can do on this machine.
 *
 *   node --import tsx bench/lib/smtp-sink.ts   → prints {"port":N} once listening
 */
import { SMTPServer } from 'smtp-server';

const server = new SMTPServer({
  authOptional: true,
  disabledCommands: ['STARTTLS', 'AUTH'],
  logger: false,
  size: 25 * 1024 * 1024,
  onData(stream, _session, callback) {
    stream.on('data', () => undefined);
    stream.on('end', () => callback());
  },
});
server.listen(0, '127.0.0.1', () => {
  process.stdout.write(`${JSON.stringify({ port: (server.server.address() as { port: number }).port })}\n`);
});
process.on('SIGTERM', () => process.exit(0));
