/** A line-based SMTP client for protocol details nodemailer hides (no SIZE, raw replies, DATA sent byte by byte). */
import net from 'node:net';

export class SMTPClient {
  #buffer = '';
  #waiters: ((line: string) => void)[] = [];
  #lines: string[] = [];
  /** The server's first reply (220, or 421 when it refuses the connection). */
  greeting = '';
  readonly closed: Promise<void>;

  private constructor(readonly socket: net.Socket) {
    socket.setEncoding('utf8');
    socket.on('data', (chunk: string) => {
      this.#buffer += chunk;
      let i;
      while ((i = this.#buffer.indexOf('\r\n')) >= 0) {
        const line = this.#buffer.slice(0, i);
        this.#buffer = this.#buffer.slice(i + 2);
        // Multi-line replies ("250-...") end with a line whose fourth character is a space.
        if (/^\d{3}-/.test(line)) continue;
        const w = this.#waiters.shift();
        if (w) w(line);
        else this.#lines.push(line);
      }
    });
    // Writes after the server closed may fail with EPIPE; tests read the replies, not the write errors.
    socket.on('error', () => undefined);
    this.closed = new Promise((resolve) => socket.once('close', () => {
      for (const w of this.#waiters.splice(0)) w('(closed)');
      resolve();
    }));
  }

  /** Connects (from `localAddress` when given, to act as another host) and reads the greeting. */
  static async connect(port: number, localAddress?: string): Promise<SMTPClient> {
    const socket = net.connect({ port, host: '127.0.0.1', localAddress });
    await new Promise<void>((resolve, reject) => socket.once('connect', resolve).once('error', reject));
    const client = new SMTPClient(socket);
    client.greeting = await client.reply();
    return client;
  }

  /** The next reply line; "(closed)" when the server closed the connection instead. */
  reply(): Promise<string> {
    const queued = this.#lines.shift();
    if (queued !== undefined) return Promise.resolve(queued);
    if (this.socket.closed) return Promise.resolve('(closed)');
    return new Promise((resolve) => this.#waiters.push(resolve));
  }

  /** Replies that arrived and were not read yet. */
  unread(): string[] {
    return this.#lines.splice(0);
  }

  /** Sends a command and returns the reply; throws when its code is not `expect`. */
  async command(line: string, expect?: number): Promise<string> {
    this.socket.write(`${line}\r\n`);
    const reply = await this.reply();
    if (expect !== undefined && !reply.startsWith(String(expect))) throw new Error(`${line}: expected ${expect}, got: ${reply}`);
    return reply;
  }

  /** EHLO, MAIL, RCPT and DATA up to the 354. */
  async startData(to: string): Promise<void> {
    await this.command('EHLO test', 250);
    await this.command('MAIL FROM:<sender@example.com>', 250);
    await this.command(`RCPT TO:<${to}>`, 250);
    await this.command('DATA', 354);
  }

  /** Resolves once the bytes are handed to the kernel. */
  write(data: string | Buffer): Promise<void> {
    return new Promise((resolve, reject) => this.socket.write(data, (err) => (err ? reject(err) : resolve())));
  }

  /** Ends the session politely with QUIT. */
  async close(): Promise<void> {
    if (this.socket.destroyed || this.socket.closed) return;
    this.socket.end('QUIT\r\n');
    await this.closed;
  }

  /** Drops the connection at once (a session in DATA would read QUIT as message text). */
  async destroy(): Promise<void> {
    if (!this.socket.destroyed) this.socket.destroy();
    await this.closed;
  }
}
