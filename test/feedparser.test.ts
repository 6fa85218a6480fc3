/**
 * Real clients at both ends, as a new user checks it: Python's smtplib sends a multipart
 * newsletter and Debian's python3-feedparser reads all three feeds without a bozo error;
 * the .json URL answers JSON Feed or Atom as the reader's Accept header asks.
 */
import assert from 'node:assert/strict';
import { execFile, spawnSync } from 'node:child_process';
import { promisify } from 'node:util';
import { after, before, it } from 'node:test';
import { createFeed, startTestServer, type TestServer } from './support/helpers.js';

const PYTHON = '/usr/bin/python3';
const hasFeedparser = spawnSync(PYTHON, ['-c', 'import feedparser'], { stdio: 'ignore' }).status === 0;

const SCRIPT = `
import json, smtplib, sys, time
from email.mime.multipart import MIMEMultipart
from email.mime.text import MIMEText
import feedparser
info = json.loads(sys.argv[1]); port = int(sys.argv[2])
msg = MIMEMultipart('alternative')
msg['Subject'] = 'Weekly digest #42'
msg['From'] = 'Jane Writer <jane@example.com>'
msg['To'] = info['address']
msg.attach(MIMEText('Hello in plain text', 'plain'))
msg.attach(MIMEText('<h1>Hello</h1><p>in <b>HTML</b></p>', 'html'))
s = smtplib.SMTP('127.0.0.1', port); s.sendmail('jane@example.com', [info['address']], msg.as_string()); s.quit()
sent = time.time(); out = {}
for fmt in ['atom', 'rss', 'json']:
    while True:
        d = feedparser.parse(info['feeds'][fmt])
        if d.entries or time.time() - sent > 30: break
        time.sleep(0.05)
    e = d.entries[0] if d.entries else {}
    out[fmt] = {'bozo': bool(d.bozo), 'title': e.get('title'), 'author': e.get('author'), 'link': e.get('link'), 'seconds': round(time.time() - sent, 2)}
print(json.dumps(out))
`;

let server: TestServer;
before(async () => {
  server = await startTestServer();
});
after(async () => {
  await server.stop();
});

// How soon the entry shows is not asserted here: bench/attacks.ts (F5) times a plain message from SMTP to its feed
// while the worst mail is processed. Python stops waiting after 30 s only so that a lost entry cannot hang the test.
it('python smtplib in, python3-feedparser out: all three formats carry the entry, no bozo', { skip: hasFeedparser ? false : 'python3-feedparser is not installed (apt-get install python3-feedparser; npm test installs it first, see scripts/test-deps.sh)' }, async (t) => {
  const feed = await createFeed(server.base);
  // Asynchronous, so the in-process server keeps answering while Python runs.
  const { stdout } = await promisify(execFile)(PYTHON, ['-c', SCRIPT, JSON.stringify(feed), String(server.smtpPort)], { encoding: 'utf8', timeout: 100_000 });
  const out = JSON.parse(stdout) as Record<string, { bozo: boolean; title: string; author: string; link: string; seconds: number }>;
  for (const fmt of ['atom', 'rss', 'json']) {
    const r = out[fmt]!;
    assert.equal(r.bozo, false, `${fmt} parses without a bozo error`);
    assert.equal(r.title, 'Weekly digest #42');
    assert.match(r.author, /^Jane Writer/);
    assert.match(r.link, /\/e\/[a-z2-7]{26}$/);
  }
  t.diagnostic(`the entry was there after ${['atom', 'rss', 'json'].map((fmt) => `${out[fmt]!.seconds} s (${fmt})`).join(', ')}`);
});

it('answers JSON Feed to clients that accept it and Atom to XML-only readers on the .json URL', async () => {
  const feed = await createFeed(server.base);
  const json = await fetch(feed.feeds.json, { headers: { Accept: '*/*' } });
  assert.match(json.headers.get('content-type') ?? '', /application\/feed\+json/);
  assert.equal(((await json.json()) as { version: string }).version, 'https://jsonfeed.org/version/1.1');
  const xmlOnly = await fetch(feed.feeds.json, { headers: { Accept: 'application/atom+xml,application/rss+xml,application/xml;q=0.9,*/*;q=0.1' } });
  assert.match(xmlOnly.headers.get('content-type') ?? '', /application\/atom\+xml/);
  assert.match(xmlOnly.headers.get('vary') ?? '', /Accept/);
  const both = await fetch(feed.feeds.json, { headers: { Accept: 'application/feed+json, application/atom+xml;q=0.5' } });
  assert.match(both.headers.get('content-type') ?? '', /application\/feed\+json/);
});
