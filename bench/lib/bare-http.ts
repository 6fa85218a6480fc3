/**
 * The read ceiling: a bare node:http server that sends bytes it holds in memory, run as its
 * own process. Given a directory with `identity`, `gzip` and `br` files (the exact bodies
 * feedmail sent for each encoding), it answers GET with the one the Accept-Encoding asks for
 * (Content-Type, ETag, Content-Encoding, Vary, Content-Length), a 304 when If-None-Match
 * matches, and POST by reading the body and answering 200 (the webhook ceiling).
 *
 *   node --import tsx bench/lib/bare-http.ts <dir>   → prints {"port":N} once listening
 */
import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';

const dir = process.argv[2]!;
const read = (name: string) => (fs.existsSync(path.join(dir, name)) ? fs.readFileSync(path.join(dir, name)) : Buffer.from('hello\n'));
const bodies = { identity: read('identity'), gzip: read('gzip'), br: read('br') };
const ETAG = 'W/"bare-1"';

const server = http.createServer((req, res) => {
  if (req.method === 'POST') {
    req.resume();
    req.on('end', () => {
      res.writeHead(200, { 'Content-Type': 'text/plain', 'Content-Length': '3' });
      res.end('ok\n');
    });
    return;
  }
  const headers: Record<string, string> = { 'Content-Type': 'application/atom+xml; charset=utf-8', ETag: ETAG, Vary: 'Accept-Encoding', 'Cache-Control': 'public, max-age=0' };
  if (req.headers['if-none-match'] === ETAG) {
    res.writeHead(304, headers);
    res.end();
    return;
  }
  const accept = req.headers['accept-encoding'] ?? '';
  const encoding = /\bbr\b/.test(accept) ? 'br' : /\bgzip\b/.test(accept) ? 'gzip' : 'identity';
  const body = bodies[encoding];
  if (encoding !== 'identity') headers['Content-Encoding'] = encoding;
  res.writeHead(200, { ...headers, 'Content-Length': String(body.length) });
  res.end(body);
});
server.keepAliveTimeout = 60_000;
server.listen(0, '127.0.0.1', () => {
  process.stdout.write(`${JSON.stringify({ port: (server.address() as { port: number }).port })}\n`);
});
process.on('SIGTERM', () => process.exit(0));
