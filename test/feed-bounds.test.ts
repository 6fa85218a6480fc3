/**
 * Feeds and the pages that list entries stay bounded: a feed full of huge newsletters costs
 * every reader a bounded document, HEAD does not render, /healthz keeps answering while the
 * feed is fetched in loops, and readers get entries without page-wide styles, overlays,
 * relative image URLs or impossible dates. The manage page shows mail that failed for good.
 * (Security review F1 and F17.)
 */
import assert from 'node:assert/strict';
import http from 'node:http';
import { after, before, describe, it } from 'node:test';
import { INGEST_TASK } from '../src/store/journal.js';
import { createFeed, readFeed, sendRaw, startTestServer, waitFor, waitForEntries, xml, type CreatedFeed, type TestServer } from './support/helpers.js';

const FORMATS = ['atom', 'rss', 'json'] as const;
type Format = typeof FORMATS[number];

/** A plain-text newsletter sent base64-encoded, so any size passes SMTP's line limit. */
function textMessage(subject: string, body: string, headers = ''): string {
  const b64 = Buffer.from(body).toString('base64').replace(/.{76}/g, '$&\r\n');
  return `From: Big Sender <big@example.com>\r\nSubject: ${subject}\r\n${headers}Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: base64\r\n\r\n${b64}\r\n`;
}

function htmlMessage(subject: string, body: string, headers = ''): string {
  return `From: Styled <styled@example.com>\r\nSubject: ${subject}\r\n${headers}Content-Type: text/html; charset=utf-8\r\n\r\n${body}\r\n`;
}

/** A raw GET or HEAD with Node's http client: exact headers, no transparent decompression. */
function request(url: string, method = 'GET', headers: Record<string, string> = { 'Accept-Encoding': 'identity' }): Promise<{ status: number; headers: http.IncomingHttpHeaders; body: Buffer }> {
  return new Promise((resolve, reject) => {
    const req = http.request(url, { method, headers, agent: false }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks) }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end();
  });
}

/** Entries as readers get them, with the content of each (atom/rss/json parsed for real). */
interface ReaderEntry { title: string; link: string; html: string; published: string }

function parseDocument(format: Format, body: string): ReaderEntry[] {
  if (format === 'json') {
    const doc = JSON.parse(body) as { items: { title: string; url: string; content_html: string; date_published: string }[] };
    return doc.items.map((i) => ({ title: i.title, link: i.url, html: i.content_html, published: i.date_published }));
  }
  const doc = xml.parse(body);
  if (format === 'atom') {
    // eslint-disable-next-line @typescript-eslint/no-explicit-any
    return (doc.feed.entry ?? []).map((e: any) => ({
      title: String(e.title['#text'] ?? e.title),
      link: e.link.find((l: Record<string, string>) => l['@rel'] === 'alternate')['@href'],
      html: String(e.content['#text'] ?? ''),
      published: String(e.published),
    }));
  }
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  return (doc.rss.channel.item ?? []).map((i: any) => ({ title: String(i.title), link: String(i.link), html: String(i.description ?? ''), published: String(i.pubDate) }));
}

function percentile(values: number[], p: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)]!;
}

const BIG_COUNT = 3;
// 2 MB of '&'-heavy text: stored as ~10 MB of HTML each ('&' becomes '&amp;'), ~18 MB once escaped again in XML.
const bigBody = (k: number) => `Issue ${k}. ${'AT&T & Johnson&Johnson && '.repeat(80_000)}`.slice(0, 2 * 1024 ** 2);

describe('a feed of huge newsletters, with the default bounds', () => {
  let server: TestServer;
  let big: CreatedFeed;
  before(async () => {
    server = await startTestServer();
    big = await createFeed(server.base, 'big');
    for (let k = 0; k < BIG_COUNT; k++) await sendRaw(server.smtpPort, big.address, textMessage(`big ${k}`, bigBody(k)));
    await sendRaw(server.smtpPort, big.address, htmlMessage('Please confirm your subscription',
      '<p>Please confirm your subscription to the newsletter.</p><p><a href="https://news.example.com/confirm?id=1">Confirm</a></p>'));
    await sendRaw(server.smtpPort, big.address, textMessage('small one', 'A short letter: Q&A on Tuesday.'));
    await waitForEntries(big.feeds.atom, 'atom', BIG_COUNT + 2, 60_000);
  });
  after(async () => {
    await server.stop();
  });

  it('gives documents under the document bound in every format, the big entries as a summary and a link, the small one whole', async () => {
    const { feedDocumentMaxBytes, feedEntryMaxBytes } = server.app.config;
    for (const format of FORMATS) {
      const res = await request(big.feeds[format]);
      assert.equal(res.status, 200);
      assert.ok(res.body.length <= feedDocumentMaxBytes, `${format}: ${res.body.length} bytes over the ${feedDocumentMaxBytes} bound`);
      const entries = parseDocument(format, res.body.toString('utf8'));
      assert.equal(entries.length, BIG_COUNT + 2, `${format} carries every entry`);
      for (const e of entries.filter((x) => x.title.startsWith('big '))) {
        assert.ok(Buffer.byteLength(e.html) <= feedEntryMaxBytes, `${format}: ${e.title} carries ${Buffer.byteLength(e.html)} bytes`);
        assert.match(e.html, /Read the whole newsletter/, `${format}: ${e.title} links to its page`);
        assert.ok(e.html.includes(`href="${e.link}"`), `${format}: the link goes to the entry page`);
        assert.match(e.html, /Issue \d\. AT&amp;T &amp; Johnson&amp;Johnson/, `${format}: the summary is the start of the text, escaped once`);
      }
      const small = entries.find((x) => x.title === 'small one');
      assert.ok(small, `${format} has the small entry`);
      assert.match(small.html, /A short letter: Q&amp;A on Tuesday\./);
      assert.doesNotMatch(small.html, /Read the whole newsletter/);
      // The whole message is one click away.
      const page = await request(big.feeds[format].replace(/\/feeds\/.*/, new URL(entries[0]!.link).pathname));
      assert.equal(page.status, 200);
    }
  });

  it('answers HEAD with headers and no body, without rendering: no length until a GET has rendered and cached the document', async () => {
    await sendRaw(server.smtpPort, big.address, textMessage('new version', 'A new entry changes the feed version, so nothing is cached for it.'));
    await waitFor(async () => (await request(big.feeds.rss, 'HEAD')).headers.etag !== undefined
      && (await readFeed(big.feeds.json, 'json')).some((e) => e.title === 'new version'), 10_000, 'the new entry');
    const first = await request(big.feeds.rss, 'HEAD');
    assert.equal(first.status, 200);
    assert.equal(first.body.length, 0);
    assert.match(String(first.headers['content-type']), /^application\/rss\+xml/);
    assert.ok(first.headers.etag);
    assert.equal(first.headers['content-length'], undefined, 'a HEAD before any GET has no length to give');
    // Had that HEAD rendered, the document would now be cached and its length known.
    const second = await request(big.feeds.rss, 'HEAD');
    assert.equal(second.headers['content-length'], undefined, 'HEAD did not render the document');
    const get = await request(big.feeds.rss);
    const third = await request(big.feeds.rss, 'HEAD');
    assert.equal(third.headers['content-length'], String(get.body.length), 'once rendered, HEAD gives the cached length');
    assert.equal(third.headers.etag, get.headers.etag);
    assert.equal(third.body.length, 0);
  });

  // How long /healthz waits under this load is measured by bench/attacks.ts (F1), not asserted here.
  it('keeps answering /healthz while the big feed is fetched in loops and re-rendered', async () => {
    const latencies: number[] = [];
    let mailed = false;
    let fetches = 0;
    const encodings = ['identity', 'gzip', 'br'];
    // Each reader fetches at least eight times, and goes on until all the new mail is in.
    const fetchLoop = async (n: number) => {
      for (let i = n; !mailed || i < n + 8; i++) {
        await request(big.feeds[FORMATS[i % 3]!], 'GET', { 'Accept-Encoding': encodings[Math.floor(i / 3) % 3]! });
        fetches++;
      }
    };
    // New mail changes the feed version, so documents are rendered again and again, not only read from cache.
    const mailLoop = async () => {
      try {
        for (let k = 0; k < 8; k++) {
          await sendRaw(server.smtpPort, big.address, textMessage(`during load ${k}`, `Short letter ${k}.`));
          await new Promise((r) => setTimeout(r, 300));
        }
      } finally {
        mailed = true;
      }
    };
    const healthLoop = async () => {
      while (!mailed) {
        const t0 = performance.now();
        const res = await request(`${server.base}/healthz`);
        latencies.push(performance.now() - t0);
        assert.equal(res.status, 200);
        await new Promise((r) => setTimeout(r, 5));
      }
    };
    await Promise.all([fetchLoop(0), fetchLoop(1), fetchLoop(2), fetchLoop(4), mailLoop(), healthLoop()]);
    const max = Math.max(...latencies);
    console.log(`healthz: ${latencies.length} requests, p50 ${percentile(latencies, 50).toFixed(1)} ms, p99 ${percentile(latencies, 99).toFixed(1)} ms, max ${max.toFixed(1)} ms; ${fetches} feed fetches`);
    assert.ok(fetches > 20, `the feed was fetched ${fetches} times`);
    assert.ok(latencies.length > 0, '/healthz was asked during the load');
  });

  it('lists subjects on the feed page, and confirmations and the count on the manage page, without loading bodies', async () => {
    const page = (await request(big.page)).body.toString('utf8');
    for (const subject of ['big 0', 'big 2', 'small one', 'Please confirm your subscription']) assert.ok(page.includes(subject), `feed page lists ${subject}`);
    assert.ok(page.length < 200_000, 'a list of subjects, not the bodies');
    const manage = (await request(big.manage)).body.toString('utf8');
    assert.match(manage, /Subscription to confirm:<\/strong> Please confirm your subscription/);
    assert.match(manage, /https:\/\/news\.example\.com\/confirm\?id=1/);
    assert.match(manage, /\d+ entries/);
    assert.doesNotMatch(manage, /could not be processed/, 'nothing failed here');
    assert.ok(manage.length < 200_000);
  });
});

describe('small bounds', () => {
  let server: TestServer;
  before(async () => {
    server = await startTestServer({ feedEntryMaxBytes: '8k', feedDocumentMaxBytes: '32k' });
  });
  after(async () => {
    await server.stop();
  });

  it('measures the rendered entry: a body under the bound that escaping takes over it is summarised', async () => {
    const feed = await createFeed(server.base);
    // 1500 '&' are stored as 7,500 characters of HTML (under 8k) and rendered as 13,500 in XML.
    await sendRaw(server.smtpPort, feed.address, textMessage('ampersands', `${'&'.repeat(1500)}`));
    await waitForEntries(feed.feeds.json, 'json', 1);
    for (const format of ['atom', 'rss'] as const) {
      const res = await request(feed.feeds[format]);
      const [entry] = parseDocument(format, res.body.toString('utf8'));
      assert.match(entry!.html, /Read the whole newsletter/, `${format} summarises it`);
    }
    // JSON does not escape '&' again: the same entry fits whole there.
    const [json] = parseDocument('json', (await request(feed.feeds.json)).body.toString('utf8'));
    assert.doesNotMatch(json!.html, /Read the whole newsletter/);
    assert.ok(json!.html.includes('&amp;'.repeat(1500)));
  });

  it('stops adding entries before the document bound, keeping the newest ones and every document valid', async () => {
    const feed = await createFeed(server.base);
    // Each letter is stored before the next is sent: two messages processed at once may be
    // stored in either order (a feed lists entries in the order they were stored), and this
    // test is about the document bound, not about that race.
    for (let k = 0; k < 10; k++) {
      await sendRaw(server.smtpPort, feed.address, textMessage(`letter ${k}`, `Letter ${k}. ${'plain words without escapes '.repeat(220)}`));
      await waitFor(async () => (await request(feed.page)).body.toString().includes(`letter ${k}`), 10_000, `letter ${k} stored`);
    }
    for (const format of FORMATS) {
      const res = await request(feed.feeds[format]);
      assert.ok(res.body.length <= 32 * 1024, `${format}: ${res.body.length} bytes`);
      const entries = parseDocument(format, res.body.toString('utf8'));
      assert.ok(entries.length >= 3 && entries.length < 10, `${format} carries ${entries.length} entries`);
      assert.deepEqual(entries.map((e) => e.title), Array.from({ length: entries.length }, (_, i) => `letter ${9 - i}`), `${format}: the newest, without gaps`);
      assert.ok(entries.every((e) => !/Read the whole newsletter/.test(e.html)), `${format}: these entries fit whole`);
    }
  });

  it('always carries the newest entry, summarised, even when it alone is larger than the document bound', async () => {
    const feed = await createFeed(server.base);
    await sendRaw(server.smtpPort, feed.address, textMessage('huge', 'x'.repeat(100_000)));
    await waitForEntries(feed.feeds.atom, 'atom', 1);
    for (const format of FORMATS) {
      const res = await request(feed.feeds[format]);
      assert.ok(res.body.length <= 32 * 1024);
      const entries = parseDocument(format, res.body.toString('utf8'));
      assert.equal(entries.length, 1);
      assert.match(entries[0]!.html, /Read the whole newsletter/);
    }
  });
});

describe('what feed readers receive (F17)', () => {
  let server: TestServer;
  let feed: CreatedFeed;
  before(async () => {
    server = await startTestServer();
    feed = await createFeed(server.base);
  });
  after(async () => {
    await server.stop();
  });

  it('drops <style> blocks, escaping positions and relative image URLs from every format, while the entry page keeps the style', async () => {
    const body = '<html><head><style>body { background: red } .x { color: blue }</style></head><body>'
      + '<div style="position:fixed;top:0;left:0;width:100%;height:100%;z-index:99999">overlay</div>'
      + '<div style="position: relative; color: green">kept relative</div>'
      + '<p style="POSITION : sticky !important; font-weight: bold">sticky</p>'
      + '<img src="/manage/x/delete" alt="rel1"><img src="../../logout" alt="rel2">'
      + '<img src="https://images.example.com/ok.png" alt="remote">'
      + '<table background="/relative.png"><tr><td>cell</td></tr></table>'
      + '<p>AT&amp;T says hello</p></body></html>';
    await sendRaw(server.smtpPort, feed.address, htmlMessage('styled', body));
    const [json] = await waitForEntries(feed.feeds.json, 'json', 1);
    for (const format of FORMATS) {
      const res = await request(feed.feeds[format]);
      const html = parseDocument(format, res.body.toString('utf8'))[0]!.html;
      assert.doesNotMatch(html, /<style/i, `${format}: no <style>`);
      assert.doesNotMatch(html, /background: red/, `${format}: no style block content`);
      assert.doesNotMatch(html, /position\s*:\s*(fixed|sticky)/i, `${format}: no fixed or sticky position`);
      assert.match(html, /position: relative; color: green/, `${format}: harmless positions stay`);
      assert.match(html, /font-weight: bold/, `${format}: the rest of a cleaned style stays`);
      assert.doesNotMatch(html, /manage\/x\/delete|logout|relative\.png/, `${format}: no relative URL`);
      // Absolute images stay, shown through the image proxy (on by default; test/image-proxy.test.ts).
      const proxied = `${server.base}/img/[A-Za-z0-9_-]{43}/${Buffer.from('https://images.example.com/ok.png').toString('base64url')}`;
      assert.match(html, new RegExp(`src="${proxied}"`), `${format}: absolute images stay`);
      assert.match(html, /overlay/);
      assert.match(html, /AT&amp;T says hello/);
    }
    // The entry page shows the message in a sandbox, as sent (after sanitizing): its style stays.
    const bodyPage = (await request(`${json!.link}/body`)).body.toString('utf8');
    assert.match(bodyPage, /<style>[^<]*background: red/);
    assert.match(bodyPage, /position:fixed/);
  });

  it('publishes at the received time when the Date is before 1970 or far in the future', async () => {
    const sent = Date.now();
    const dated = [
      ['ancient', 'Date: -271821-04-20T00:00:00Z\r\n'],
      ['year zero', 'Date: 0000-01-01T00:00:00Z\r\n'],
      ['far future', 'Date: Sat, 01 Jan 2999 00:00:00 +0000\r\n'],
      ['believable', 'Date: Thu, 01 Jan 2026 12:00:00 +0000\r\n'],
    ];
    for (const [subject, header] of dated) await sendRaw(server.smtpPort, feed.address, textMessage(subject!, `Dated ${subject}.`, header));
    await waitForEntries(feed.feeds.json, 'json', 5);
    const received = Date.now();
    for (const format of FORMATS) {
      const entries = parseDocument(format, (await request(feed.feeds[format])).body.toString('utf8'));
      for (const subject of ['ancient', 'year zero', 'far future']) {
        const e = entries.find((x) => x.title === subject);
        assert.ok(e, `${format}: ${subject} is in the feed`);
        const t = Date.parse(e.published);
        // RSS dates have whole seconds.
        assert.ok(t >= Math.floor(sent / 1000) * 1000 && t <= received, `${format}: ${subject} published ${e.published}, received between ${new Date(sent).toISOString()} and ${new Date(received).toISOString()}`);
      }
      const believable = entries.find((x) => x.title === 'believable')!;
      assert.equal(Date.parse(believable.published), Date.UTC(2026, 0, 1, 12), `${format}: a believable date is kept`);
    }
  });
});

describe('mail that failed for good', () => {
  let server: TestServer;
  before(async () => {
    // No job runner: the test plays the runner's part, so the job's fate is decided here.
    server = await startTestServer({}, { web: true, smtp: true, jobs: false });
  });
  after(async () => {
    await server.stop();
  });

  it('is listed on the manage page of the feeds it was sent to, with what the owner can do', async () => {
    const feed = await createFeed(server.base, 'victim');
    const other = await createFeed(server.base, 'bystander');
    await sendRaw(server.smtpPort, feed.address, textMessage('lost letter', 'x'.repeat(3000)));
    // Processing now stores whatever it can, so no message fails for good on purpose; a job that
    // does (a bug, a corrupt journal row) ends exactly like this: the runner records its last
    // error and fails it for good after its final attempt.
    const queue = server.app.stores.queue;
    const [job] = await waitFor(async () => {
      const claimed = await queue.claimJobs('test-runner', 1, 60_000, { tasks: [INGEST_TASK] });
      return claimed.length ? claimed : undefined;
    }, 5000, 'the ingest job');
    await queue.failJobForGood(job!.id, 'test-runner', 'RenderError: the parser gave up on this message\n    at parse (src/mail/parse.ts:1:1)');

    const page = (await request(feed.manage)).body.toString('utf8');
    assert.match(page, /1 message could not be processed/);
    assert.match(page, /RenderError: the parser gave up on this message/);
    assert.doesNotMatch(page, /parse\.ts/, 'only the first line of the error');
    assert.ok(page.includes(`feedmail jobs retry ${job!.id}`), 'tells how to run it again');
    assert.match(page, /\d+(\.\d)? KB/, 'its size');
    assert.match(page, /Received \w{3}, \d{2} \w{3} \d{4}/, 'when it was received');
    const bystander = (await request(other.manage)).body.toString('utf8');
    assert.doesNotMatch(bystander, /could not be processed/, 'another feed does not see it');
  });
});
