/** A minimal line-based SMTP client for protocol details nodemailer hides (no SIZE, raw replies). */
import net from 'node:net';

export class SMTPClient {
  #buffer = '';
  #waiters: ((line: string) => void)[] = [];
  #lines: string[] = [];
  /** The server's first reply (220, or 421 when it refuses the connection). */
  greeting = '';

  private constructor(private readonly socket: net.Socket) {
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
  }

  static async connect(port: number): Promise<SMTPClient> {
    const socket = net.connect(port, '127.0.0.1');
    await new Promise<void>((resolve, reject) => socket.once('connect', resolve).once('error', reject));
    const client = new SMTPClient(socket);
    client.greeting = await client.reply();
    return client;
  }

  reply(): Promise<string> {
    const queued = this.#lines.shift();
    if (queued !== undefined) return Promise.resolve(queued);
    return new Promise((resolve) => this.#waiters.push(resolve));
  }

  /** Sends a command and returns the reply; throws when its code is not `expect`. */
  async command(line: string, expect?: number): Promise<string> {
    this.socket.write(`${line}\r\n`);
    const reply = await this.reply();
    if (expect !== undefined && !reply.startsWith(String(expect))) throw new Error(`expected ${expect}, got: ${reply}`);
    return reply;
  }

  async close(): Promise<void> {
    if (this.socket.destroyed || this.socket.closed) return;
    const closed = new Promise((r) => this.socket.once('close', r));
    this.socket.end('QUIT\r\n');
    await closed;
  }
}
