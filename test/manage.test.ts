/**
 * The manage page's actions (issue 10), per-sender feeds and feed icons, against the real
 * HTTP and SMTP servers: deleting one entry, rotating the inbox address and the feed URL,
 * per-feed entry numbers, per-sender documents, icons in all three formats, and every new
 * manage action refused when a browser posts it from another site.
 */
import assert from 'node:assert/strict';
import { execFile, spawnSync } from 'node:child_process';
import { promisify } from 'node:util';
import { after, before, describe, it } from 'node:test';
import { createFeed, readFeed, sendRaw, startTestServer, waitFor, waitForEntries, xml, type CreatedFeed, type TestServer } from './support/helpers.js';
import { SMTPClient } from './support/smtp-client.js';

/** Small instance bounds, so the per-feed numbers can be checked against them with a few messages. */
const MAX_ENTRIES = 5;
const KEEP_ENTRIES = 60;

let server: TestServer;
before(async () => {
  server = await startTestServer({ feedMaxEntries: String(MAX_ENTRIES), feedKeepEntries: String(KEEP_ENTRIES) });
});
after(async () => {
  await server.stop();
});

const manageOf = (feed: CreatedFeed) => new URL(feed.manage).pathname;
const feedTokenOf = (feed: CreatedFeed) => /\/feeds\/([a-z2-7]{26})/.exec(feed.page)![1]!;
const inboxTokenOf = (feed: CreatedFeed) => feed.address.split('@')[0]!;

/** A form post as a script sends it (no browser headers), answered in JSON when `json`. */
function post(path: string, fields: Record<string, string> = {}, options: { json?: boolean; headers?: Record<string, string> } = {}) {
  return fetch(`${server.base}${path}`, {
    method: 'POST',
    redirect: 'manual',
    headers: {
      'Content-Type': 'application/x-www-form-urlencoded',
      ...(options.json ? { Accept: 'application/json' } : {}),
      ...options.headers,
    },
    body: new URLSearchParams(fields).toString(),
  });
}

function message(to: string, subject: string, from = 'Sender <sender@example.com>', body = `Text of ${subject}`): string {
  return `From: ${from}\r\nTo: ${to}\r\nSubject: ${subject}\r\nMessage-ID: <${Math.random().toString(36).slice(2)}@example.com>\r\n\r\n${body}\r\n`;
}

/** A message with an attachment, so the entry has a part of its own. */
function messageWithAttachment(to: string, subject: string, attachment: string): string {
  return [
    'From: Sender <sender@example.com>', `To: ${to}`, `Subject: ${subject}`, 'MIME-Version: 1.0',
    'Content-Type: multipart/mixed; boundary="b1"', '',
    '--b1', 'Content-Type: text/plain; charset=utf-8', '', `Text of ${subject}`,
    '--b1', 'Content-Type: application/octet-stream', 'Content-Disposition: attachment; filename="notes.bin"',
    'Content-Transfer-Encoding: base64', '', Buffer.from(attachment).toString('base64'),
    '--b1--', '',
  ].join('\r\n');
}

/** Mails the messages and waits until they are stored (counted on the manage page: documents may carry fewer). */
async function mailAndWait(feed: CreatedFeed, raws: string[]): Promise<void> {
  const before = await countOnManagePage(feed);
  for (const raw of raws) await sendRaw(server.smtpPort, feed.address, raw);
  await waitFor(async () => (await countOnManagePage(feed)) >= before + raws.length, 10_000, 'the entries');
}

async function countOnManagePage(feed: CreatedFeed): Promise<number> {
  const page = await (await fetch(feed.manage)).text();
  return Number(/(\d+) entr(?:y|ies) ·/.exec(page)?.[1] ?? -1);
}

/** The manage page's delete path of the entry with this subject. */
async function deletePathOf(feed: CreatedFeed, subject: string): Promise<string> {
  const page = await (await fetch(feed.manage)).text();
  const m = new RegExp(`>${subject}</a>[\\s\\S]*?href="(/manage/[a-z2-7]+/entries/\\d+/delete)"`).exec(page);
  assert.ok(m, `the manage page lists "${subject}" with a delete link`);
  return m[1]!;
}

async function status(url: string, init?: RequestInit): Promise<number> {
  const res = await fetch(url, init);
  await res.arrayBuffer();
  return res.status;
}

/** The reply to RCPT TO for an address, over a real SMTP session. */
async function rcptReply(address: string): Promise<string> {
  const smtp = await SMTPClient.connect(server.smtpPort);
  try {
    await smtp.command('EHLO test', 250);
    await smtp.command('MAIL FROM:<sender@example.com>', 250);
    return await smtp.command(`RCPT TO:<${address}>`);
  } finally {
    await smtp.close();
  }
}

/** The sender feeds the feed page lists: name shown, entry count and its three URLs. */
async function sendersOnPage(feed: CreatedFeed): Promise<{ label: string; count: number; atom: string; rss: string; json: string }[]> {
  const page = await (await fetch(feed.page)).text();
  const section = /<section class="senders"[\s\S]*?<\/section>/.exec(page)?.[0] ?? '';
  return [...section.matchAll(/<li>[\s\S]*?<span class="sender">([^<]*)<\/span>[\s\S]*?(\d+) entr(?:y|ies)[\s\S]*?href="([^"]+\.atom)"[\s\S]*?href="([^"]+\.rss)"[\s\S]*?href="([^"]+\.json)"/g)]
    .map((m) => ({ label: m[1]!, count: Number(m[2]), atom: m[3]!, rss: m[4]!, json: m[5]! }));
}

/** The manage page's list of entries alone (the recent deliveries name subjects too). */
function entriesOf(page: string): string {
  return /<section id="entries">[\s\S]*?<\/section>/.exec(page)?.[0] ?? '';
}

describe('deleting one entry', () => {
  it('removes the entry, its page and parts, and changes the documents and their ETag at once', async () => {
    const feed = await createFeed(server.base, 'Deletions');
    await mailAndWait(feed, [messageWithAttachment(feed.address, 'Keep me', 'kept bytes'), messageWithAttachment(feed.address, 'Drop me', 'dropped bytes only here')]);
    const items = await readFeed(feed.feeds.atom, 'atom');
    const dropped = items.find((i) => i.title === 'Drop me')!;
    assert.equal(dropped.enclosures.length, 1, 'the entry has an attachment');
    const first = await fetch(feed.feeds.atom);
    const etag = first.headers.get('etag')!;
    await first.arrayBuffer();
    const rowsBefore = await server.app.stores.app.rowCounts();

    const path = await deletePathOf(feed, 'Drop me');
    const confirmPage = await fetch(`${server.base}${path}`);
    assert.equal(confirmPage.status, 200, 'GET asks for confirmation');
    assert.match(await confirmPage.text(), /Delete this entry\?[\s\S]*Drop me[\s\S]*name="confirm" value="yes" required/);
    assert.equal(await status(dropped.link), 200, 'asking changes nothing');

    const unconfirmed = await post(path);
    assert.equal(unconfirmed.status, 400);
    assert.match(await unconfirmed.text(), /tick the box/i);
    assert.equal(await status(dropped.link), 200, 'an unconfirmed post changes nothing');

    const done = await post(path, { confirm: 'yes' }, { json: true });
    assert.equal(done.status, 200);
    assert.deepEqual(await done.json(), { deleted: true });

    assert.equal(await status(dropped.link), 404, 'the entry page is gone');
    assert.equal(await status(`${dropped.link}/body`), 404, 'its body is gone');
    assert.equal(await status(dropped.enclosures[0]!.url), 404, 'its part is gone');
    const after = await readFeed(feed.feeds.atom, 'atom');
    assert.deepEqual(after.map((i) => i.title), ['Keep me'], 'the document changed at once');
    assert.deepEqual((await readFeed(feed.feeds.json, 'json')).map((i) => i.title), ['Keep me']);
    const revalidated = await fetch(feed.feeds.atom, { headers: { 'If-None-Match': etag } });
    assert.equal(revalidated.status, 200, 'the old ETag no longer matches');
    assert.notEqual(revalidated.headers.get('etag'), etag);
    await revalidated.arrayBuffer();
    const kept = items.find((i) => i.title === 'Keep me')!;
    assert.equal(await status(kept.link), 200, 'the other entry stays');
    assert.equal(await status(kept.enclosures[0]!.url), 200, 'and its part');
    const rowsAfter = await server.app.stores.app.rowCounts();
    assert.equal(rowsAfter.entries, rowsBefore.entries - 1);
    assert.equal(rowsAfter.bodies, rowsBefore.bodies - 1, 'the body no other entry shares is deleted');
    assert.equal(rowsAfter.blobs, rowsBefore.blobs - 2, 'so are its raw message and its attachment');

    assert.equal((await post(path, { confirm: 'yes' }, { json: true })).status, 404, 'a second delete finds nothing');
    const page = await (await fetch(`${server.base}${manageOf(feed)}?deleted=1`)).text();
    assert.match(page, /The entry was deleted/);
    assert.doesNotMatch(entriesOf(page), />Drop me</);
  });

  it('deletes only through the manage secret of the entry\'s own feed', async () => {
    const feed = await createFeed(server.base);
    const other = await createFeed(server.base);
    await mailAndWait(feed, [message(feed.address, 'Mine')]);
    const path = await deletePathOf(feed, 'Mine');
    const id = /entries\/(\d+)\/delete/.exec(path)![1]!;
    assert.equal((await post(`${manageOf(other)}/entries/${id}/delete`, { confirm: 'yes' })).status, 404);
    assert.equal(await status(`${server.base}${manageOf(other)}/entries/${id}/delete`), 404);
    assert.equal((await readFeed(feed.feeds.atom, 'atom')).length, 1);
  });

  it('pages through the entries, 50 a page', async () => {
    const feed = await createFeed(server.base);
    await mailAndWait(feed, Array.from({ length: 52 }, (_, i) => message(feed.address, `Numbered ${i + 1}`)));
    const first = entriesOf(await (await fetch(feed.manage)).text());
    assert.match(first, />Numbered 52</);
    assert.match(first, />Numbered 3</);
    assert.doesNotMatch(first, />Numbered 2</);
    const older = /href="([^"]+\?before=\d+#entries)">Older entries/.exec(first)?.[1];
    assert.ok(older, 'a link to older entries');
    const second = entriesOf(await (await fetch(`${server.base}${older.replace(/&amp;/g, '&')}`)).text());
    assert.match(second, />Numbered 2</);
    assert.match(second, />Numbered 1</);
    assert.doesNotMatch(second, />Numbered 3</);
    assert.doesNotMatch(second, /Older entries/);
  });
});

describe('rotating secrets', () => {
  it('a new inbox address: the old one gets 550 at RCPT, the new one delivers', async () => {
    const feed = await createFeed(server.base, 'Rotated inbox');
    assert.match(await rcptReply(feed.address), /^250/);
    assert.equal((await post(`${manageOf(feed)}/rotate-address`, {}, { json: true })).status, 400, 'unconfirmed');
    assert.match(await rcptReply(feed.address), /^250/, 'an unconfirmed post changes nothing');

    const res = await post(`${manageOf(feed)}/rotate-address`, { confirm: 'yes' }, { json: true });
    assert.equal(res.status, 200);
    const { address } = await res.json() as { address: string };
    assert.match(address, /^[a-z2-7]{26}@localhost$/);
    assert.notEqual(address, feed.address);

    assert.match(await rcptReply(feed.address), /^550/, 'the old address is refused at once');
    assert.match(await rcptReply(`${inboxTokenOf(feed)}+tag@localhost`), /^550/, 'with any +tag too');
    await assert.rejects(sendRaw(server.smtpPort, feed.address, message(feed.address, 'To the old address')), { responseCode: 550 });
    await sendRaw(server.smtpPort, address, message(address, 'To the new address'));
    const items = await waitForEntries(feed.feeds.atom, 'atom', 1);
    assert.deepEqual(items.map((i) => i.title), ['To the new address'], 'the feed URL is unchanged and the new address delivers');

    const manage = await (await fetch(feed.manage)).text();
    assert.ok(manage.includes(address), 'the manage page shows the new address');
    assert.ok(!manage.includes(inboxTokenOf(feed)), 'and not the old one');

    // A browser's form gets a page that shows the new address once.
    const viaForm = await post(`${manageOf(feed)}/rotate-address`, { confirm: 'yes' });
    assert.equal(viaForm.status, 200);
    const shown = /value="([a-z2-7]{26}@localhost)"/.exec(await viaForm.text())?.[1];
    assert.ok(shown && shown !== address);
    assert.match(await rcptReply(address), /^550/);
    assert.match(await rcptReply(shown), /^250/);
  });

  it('a new feed URL: the old documents, page, sender feeds and icon answer 404, the new ones work', async () => {
    const feed = await createFeed(server.base, 'Rotated URL');
    await mailAndWait(feed, [message(feed.address, 'Before rotation', 'Writer <writer@letters.example>')]);
    const [sender] = await sendersOnPage(feed);
    const old = [feed.feeds.atom, feed.feeds.rss, feed.feeds.json, feed.page, sender!.atom, sender!.json, `${feed.page}/icon`];
    for (const url of old) assert.equal(await status(url), 200, `${url} works before`);
    const oldEtag = (await fetch(feed.feeds.atom)).headers.get('etag');

    assert.equal((await post(`${manageOf(feed)}/rotate-feed-url`, { confirm: 'no' }, { json: true })).status, 400, 'unconfirmed');
    assert.equal(await status(feed.feeds.atom), 200);

    const res = await post(`${manageOf(feed)}/rotate-feed-url`, { confirm: 'yes' }, { json: true });
    assert.equal(res.status, 200);
    const rotated = await res.json() as { feeds: CreatedFeed['feeds']; page: string };
    assert.notEqual(rotated.feeds.atom, feed.feeds.atom);
    for (const url of old) assert.equal(await status(url), 404, `${url} answers 404 at once`);
    assert.equal(await status(feed.feeds.atom, { method: 'HEAD' }), 404, 'HEAD too');

    const fresh = await fetch(rotated.feeds.atom);
    assert.equal(fresh.status, 200);
    assert.notEqual(fresh.headers.get('etag'), oldEtag, 'a new version: nothing rendered for the old URL is served');
    const doc = await fresh.text();
    assert.ok(doc.includes(rotated.feeds.atom), 'the document names its new URL');
    assert.ok(!doc.includes(feedTokenOf(feed)), 'and nowhere the old one');
    assert.deepEqual((await readFeed(rotated.feeds.rss, 'rss')).map((i) => i.title), ['Before rotation']);
    assert.equal(await status(rotated.page), 200);
    const [newSender] = await sendersOnPage({ ...feed, page: rotated.page });
    assert.equal(await status(newSender!.atom), 200);
    assert.ok(newSender!.atom.startsWith(rotated.page));
    const manage = await (await fetch(feed.manage)).text();
    assert.ok(manage.includes(rotated.feeds.atom) && !manage.includes(feedTokenOf(feed)), 'the manage page shows the new URL only');
    // Mail still arrives: the address did not change.
    await sendRaw(server.smtpPort, feed.address, message(feed.address, 'After rotation'));
    await waitForEntries(rotated.feeds.atom, 'atom', 2);
  });
});

describe('per-feed entry numbers', () => {
  it('refuses numbers outside the instance\'s bounds with a clear 400', async () => {
    const feed = await createFeed(server.base);
    const cases: [Record<string, string>, RegExp][] = [
      [{ document_entries: String(MAX_ENTRIES + 1) }, new RegExp(`from 1 to ${MAX_ENTRIES}`)],
      [{ document_entries: '0' }, /from 1 to/],
      [{ keep_entries: String(KEEP_ENTRIES + 1) }, new RegExp(`Entries kept must be a whole number from 1 to ${KEEP_ENTRIES}`)],
      [{ keep_entries: '-3' }, /whole number/],
      [{ keep_entries: 'many' }, /whole number/],
      [{ document_entries: '2.5' }, /whole number/],
      [{ document_entries: '4', keep_entries: '3' }, /cannot be more than entries kept \(3\)/],
    ];
    for (const [fields, message] of cases) {
      const json = await post(`${manageOf(feed)}/settings`, fields, { json: true });
      assert.equal(json.status, 400, JSON.stringify(fields));
      assert.match(((await json.json()) as { error: { message: string } }).error.message, message);
      const page = await post(`${manageOf(feed)}/settings`, fields);
      assert.equal(page.status, 400);
      assert.match(await page.text(), message);
    }
    const manage = await (await fetch(feed.manage)).text();
    assert.match(manage, new RegExp(`Entries in the feed documents \\(1 to ${MAX_ENTRIES}; this server's number: ${MAX_ENTRIES}\\)`));
    assert.match(manage, new RegExp(`Entries kept \\(1 to ${KEEP_ENTRIES}; this server's number: ${KEEP_ENTRIES}\\)`));
    assert.match(manage, new RegExp(`carry the newest ${MAX_ENTRIES} entries; the newest ${KEEP_ENTRIES} are kept`));
  });

  it('the documents carry the feed\'s number, the feed keeps its number, at once and in the trim task', async () => {
    const feed = await createFeed(server.base);
    await mailAndWait(feed, [1, 2, 3, 4].map((n) => message(feed.address, `Message ${n}`)));
    assert.equal((await readFeed(feed.feeds.atom, 'atom')).length, 4);

    const set = await post(`${manageOf(feed)}/settings`, { document_entries: '2', keep_entries: '' }, { json: true });
    assert.equal(set.status, 200);
    assert.deepEqual(await set.json(), { documentEntries: 2, keepEntries: null, effective: { documentEntries: 2, keepEntries: KEEP_ENTRIES }, trimmed: 0 });
    assert.deepEqual((await readFeed(feed.feeds.atom, 'atom')).map((i) => i.title), ['Message 4', 'Message 3'], 'the documents change at once');
    assert.equal((await readFeed(feed.feeds.json, 'json')).length, 2);
    const page = await (await fetch(feed.manage)).text();
    assert.match(page, /name="document_entries"[^>]*value="2"/, 'the form shows the current value');
    assert.match(page, /name="keep_entries"[^>]*value=""/);

    // Keeping fewer trims the feed at once.
    const keep = await post(`${manageOf(feed)}/settings`, { document_entries: '2', keep_entries: '3' }, { json: true });
    assert.deepEqual(await keep.json(), { documentEntries: 2, keepEntries: 3, effective: { documentEntries: 2, keepEntries: 3 }, trimmed: 1 });
    assert.equal(await countOnManagePage(feed), 3);
    // Scripts may send numbers as JSON numbers.
    const asJson = await fetch(`${server.base}${manageOf(feed)}/settings`, {
      method: 'POST', headers: { 'Content-Type': 'application/json', Accept: 'application/json' }, body: JSON.stringify({ document_entries: 2, keep_entries: 3 }),
    });
    assert.deepEqual(((await asJson.json()) as { effective: unknown }).effective, { documentEntries: 2, keepEntries: 3 });

    // The recurring trim task keeps this feed's number while other feeds keep the instance's.
    const other = await createFeed(server.base);
    await mailAndWait(feed, [5, 6].map((n) => message(feed.address, `Message ${n}`)));
    await mailAndWait(other, [1, 2, 3, 4].map((n) => message(other.address, `Other ${n}`)));
    assert.equal(await countOnManagePage(feed), 5);
    await server.app.stores.app.trimFeeds(KEEP_ENTRIES);
    assert.equal(await countOnManagePage(feed), 3, 'trimmed to its own number');
    assert.equal(await countOnManagePage(other), 4, 'the other feed keeps up to the instance\'s number');

    // A form post (a browser) is sent back to the page; empty fields go back to the instance's numbers.
    const reset = await post(`${manageOf(feed)}/settings`, { document_entries: '', keep_entries: '' });
    assert.equal(reset.status, 303);
    assert.match(reset.headers.get('location') ?? '', /#settings$/);
    assert.equal((await readFeed(feed.feeds.atom, 'atom')).length, 3, 'all kept entries, within the instance\'s document number');
  });
});

describe('per-sender feeds', () => {
  it('lists the senders on the feed page, each with documents of its own entries only', async () => {
    const feed = await createFeed(server.base, 'Shared inbox');
    await mailAndWait(feed, [
      message(feed.address, 'Alice one', 'Alice News <alice@news.example.com>'),
      message(feed.address, 'Bob one', 'Bob <bob@other.org>'),
      message(feed.address, 'Alice two', 'Alice News <alice@news.example.com>'),
      message(feed.address, 'Alice three', 'Alice News <ALICE@News.Example.com>'),
    ]);
    const senders = await sendersOnPage(feed);
    assert.deepEqual(senders.map((s) => [s.label, s.count]), [['Alice News', 3], ['Bob', 1]], 'newest sender first; an address in any case is one sender');
    const alice = senders[0]!;
    assert.match(alice.atom, new RegExp(`^${feed.page}/senders/[a-z2-7]{16}\\.atom$`));
    assert.ok(!alice.atom.toLowerCase().includes('alice') && !alice.atom.includes('example'), 'the key reveals nothing of the address');

    for (const format of ['atom', 'rss', 'json'] as const) {
      const items = await readFeed(alice[format], format);
      assert.deepEqual(items.map((i) => i.title), ['Alice three', 'Alice two', 'Alice one'], `${format}: only the sender's entries`);
      assert.ok(items.every((i) => i.author.startsWith('Alice News')));
    }
    assert.deepEqual((await readFeed(senders[1]!.rss, 'rss')).map((i) => i.title), ['Bob one']);

    const atom = xml.parse(await (await fetch(alice.atom)).text());
    assert.equal(atom.feed.title['#text'] ?? atom.feed.title, 'Alice News · Shared inbox');
    assert.equal(atom.feed.link.find((l: Record<string, string>) => l['@rel'] === 'self')['@href'], alice.atom);
    assert.equal(atom.feed.icon, `${server.base}/icons/news.example.com.png`, 'the sender domain\'s icon, served by feedmail');
    const json = await (await fetch(alice.json)).json() as { feed_url: string; icon: string; favicon: string };
    assert.equal(json.feed_url, alice.json);
    assert.equal(json.icon, `${server.base}/icons/news.example.com.png`);
    assert.equal(json.favicon, json.icon);
    const rss = xml.parse(await (await fetch(alice.rss)).text());
    assert.equal(rss.rss.channel.image.url, `${server.base}/icons/news.example.com.png`);

    // The document limit applies to sender documents too.
    await post(`${manageOf(feed)}/settings`, { document_entries: '2' });
    assert.deepEqual((await readFeed(alice.atom, 'atom')).map((i) => i.title), ['Alice three', 'Alice two']);
  });

  it('answers with ETag, Last-Modified and 304 like the whole feed, and changes with the sender\'s entries', async () => {
    const feed = await createFeed(server.base);
    await mailAndWait(feed, [message(feed.address, 'Cached one', 'Carol <carol@cache.example>')]);
    const [carol] = await sendersOnPage(feed);
    const first = await fetch(carol!.atom, { headers: { 'Accept-Encoding': 'gzip' } });
    const etag = first.headers.get('etag')!;
    const lastModified = first.headers.get('last-modified')!;
    assert.ok(etag && lastModified);
    assert.equal(first.headers.get('content-encoding'), 'gzip');
    assert.match(first.headers.get('cache-control') ?? '', /max-age=60/);
    await first.arrayBuffer();
    assert.equal(await status(carol!.atom, { headers: { 'If-None-Match': etag } }), 304);
    assert.equal(await status(carol!.atom, { headers: { 'If-Modified-Since': lastModified } }), 304);
    const whole = await fetch(feed.feeds.atom);
    assert.notEqual(whole.headers.get('etag'), etag, 'the sender document has its own ETag');
    await whole.arrayBuffer();
    const head = await fetch(carol!.atom, { method: 'HEAD' });
    assert.equal(head.status, 200);
    assert.equal(head.headers.get('etag'), etag);

    await mailAndWait(feed, [message(feed.address, 'Cached two', 'Carol <carol@cache.example>')]);
    const again = await fetch(carol!.atom, { headers: { 'If-None-Match': etag } });
    assert.equal(again.status, 200);
    assert.notEqual(again.headers.get('etag'), etag);
    assert.match(await again.text(), /Cached two/);
  });

  it('answers 404 for an unknown sender key, another feed\'s sender and a deleted feed', async () => {
    const feed = await createFeed(server.base);
    const other = await createFeed(server.base);
    await mailAndWait(feed, [message(feed.address, 'Dave one', 'Dave <dave@d.example>')]);
    await mailAndWait(other, [message(other.address, 'Dave elsewhere', 'Dave <dave@d.example>')]);
    const [dave] = await sendersOnPage(feed);
    const [daveElsewhere] = await sendersOnPage(other);
    const key = /senders\/([a-z2-7]{16})\.atom$/.exec(dave!.atom)![1]!;
    assert.notEqual(key, /senders\/([a-z2-7]{16})\.atom$/.exec(daveElsewhere!.atom)![1], 'keys differ between feeds');
    assert.equal(await status(`${feed.page}/senders/aaaaaaaaaaaaaaaa.atom`), 404);
    assert.equal(await status(`${other.page}/senders/${key}.atom`), 404, 'a key of another feed finds nothing');
    const jsonError = await fetch(`${feed.page}/senders/aaaaaaaaaaaaaaaa.json`);
    assert.equal(jsonError.status, 404);
    assert.match(jsonError.headers.get('content-type') ?? '', /application\/json/);
    await jsonError.arrayBuffer();
    assert.equal(await status(`${feed.page}/senders/${key}.html`), 404);

    // Its only entry deleted, a sender has no feed any more.
    await post(await deletePathOf(feed, 'Dave one'), { confirm: 'yes' });
    assert.equal(await status(dave!.atom), 404);
  });

  it('never makes the inbox address a sender or shows it in the sender list', async () => {
    const feed = await createFeed(server.base);
    await mailAndWait(feed, [message(feed.address, 'From myself', `Me <${feed.address}>`), message(feed.address, 'Plus', `<${inboxTokenOf(feed)}+x@localhost>`)]);
    const page = await (await fetch(feed.page)).text();
    assert.ok(!page.toLowerCase().includes(inboxTokenOf(feed)), 'the feed page does not contain the inbox address');
    const senders = await sendersOnPage(feed);
    assert.ok(senders.length >= 1);
    for (const s of senders) {
      assert.ok(!s.atom.includes(inboxTokenOf(feed)));
      const doc = await (await fetch(s.atom)).text();
      assert.ok(!doc.includes(inboxTokenOf(feed)), 'nor does a sender document');
    }
  });
});

const PYTHON = '/usr/bin/python3';
const hasFeedparser = spawnSync(PYTHON, ['-c', 'import feedparser'], { stdio: 'ignore' }).status === 0;
const PARSE = `
import json, sys
import feedparser
out = []
# feedparser fetches with its own Accept header: a .json URL answers it Atom (see feed-document.ts negotiate).
for url in json.loads(sys.argv[1]):
    d = feedparser.parse(url)
    icon = d.feed.get('icon') or (d.feed.get('image') or {}).get('href')
    out.append({'bozo': bool(d.bozo), 'entries': len(d.entries), 'icon': icon})
print(json.dumps(out))
`;

describe('feed icons', () => {
  const GIF = Buffer.from('R0lGODlhAQABAIAAAAAAAP///yH5BAEAAAAALAAAAAABAAEAAAIBRAA7', 'base64');
  const ICO = Buffer.concat([Buffer.from([0, 0, 1, 0, 1, 0, 1, 1, 0, 0, 1, 0, 32, 0, 40, 0, 0, 0, 22, 0, 0, 0]), Buffer.alloc(40)]);

  function upload(feed: CreatedFeed, bytes: Buffer, filename: string, type: string, headers: Record<string, string> = {}) {
    const form = new FormData();
    form.append('icon', new Blob([new Uint8Array(bytes)], { type }), filename);
    return fetch(`${server.base}${manageOf(feed)}/icon`, { method: 'POST', body: form, redirect: 'manual', headers: { Accept: 'application/json', ...headers } });
  }

  async function iconOf(feed: CreatedFeed): Promise<{ atomIcon: string; atomLogo: string; rssImage: string | undefined; jsonIcon: string; jsonFavicon: string }> {
    const atom = xml.parse(await (await fetch(feed.feeds.atom)).text());
    const rss = xml.parse(await (await fetch(feed.feeds.rss)).text());
    const json = await (await fetch(feed.feeds.json)).json() as { icon: string; favicon: string };
    return { atomIcon: atom.feed.icon, atomLogo: atom.feed.logo, rssImage: rss.rss.channel.image?.url, jsonIcon: json.icon, jsonFavicon: json.favicon };
  }

  it('references a generated icon in all three formats and serves it as a cacheable PNG', async () => {
    const feed = await createFeed(server.base, 'Icons');
    const icon = await iconOf(feed);
    assert.match(icon.atomIcon, new RegExp(`^${feed.page}/icon\\?v=`), 'served by feedmail under the feed URL');
    assert.deepEqual([icon.atomLogo, icon.rssImage, icon.jsonIcon, icon.jsonFavicon], [icon.atomIcon, icon.atomIcon, icon.atomIcon, icon.atomIcon]);
    const res = await fetch(icon.atomIcon);
    assert.equal(res.status, 200);
    assert.equal(res.headers.get('content-type'), 'image/png');
    assert.equal(res.headers.get('x-content-type-options'), 'nosniff');
    assert.match(res.headers.get('cache-control') ?? '', /public, max-age=\d+/);
    const png = Buffer.from(await res.arrayBuffer());
    assert.deepEqual([...png.subarray(0, 8)], [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);
    assert.equal(await status(icon.atomIcon, { headers: { 'If-None-Match': res.headers.get('etag')! } }), 304);

    const domain = await fetch(`${server.base}/icons/news.example.com.png`);
    assert.equal(domain.status, 200);
    assert.equal(domain.headers.get('content-type'), 'image/png');
    assert.equal(domain.headers.get('x-content-type-options'), 'nosniff');
    await domain.arrayBuffer();
    for (const bad of ['/icons/-bad.png', '/icons/a..b.png', '/icons/UPPER.png', '/icons/x_y.png']) assert.equal(await status(`${server.base}${bad}`), 404, bad);
  });

  it('takes an uploaded PNG, GIF, JPEG or ICO of at most 64 KB, checked by its bytes, and serves it with its type', async () => {
    const feed = await createFeed(server.base, 'Uploads');
    const generated = await iconOf(feed);

    const gif = await upload(feed, GIF, 'icon.gif', 'image/gif');
    assert.equal(gif.status, 200);
    const result = await gif.json() as { icon: string; type: string };
    assert.equal(result.type, 'image/gif');
    const icon = await iconOf(feed);
    assert.equal(icon.atomIcon, result.icon);
    assert.notEqual(icon.atomIcon, generated.atomIcon, 'a new icon has a new URL, so readers fetch it again');
    assert.deepEqual([icon.rssImage, icon.jsonIcon], [icon.atomIcon, icon.atomIcon]);
    const served = await fetch(icon.atomIcon);
    assert.equal(served.headers.get('content-type'), 'image/gif');
    assert.equal(served.headers.get('x-content-type-options'), 'nosniff');
    assert.match(served.headers.get('cache-control') ?? '', /public/);
    assert.deepEqual(Buffer.from(await served.arrayBuffer()), GIF);

    // The type comes from the bytes, never from what the upload claims.
    const ico = await upload(feed, ICO, 'icon.png', 'image/png');
    assert.equal(ico.status, 200);
    assert.equal((await ico.json() as { type: string }).type, 'image/x-icon');
    const withIco = await iconOf(feed);
    assert.equal(withIco.rssImage, undefined, 'RSS images are GIF, JPEG or PNG only');
    assert.ok(withIco.atomIcon && withIco.jsonIcon);
    assert.equal((await fetch(withIco.atomIcon)).headers.get('content-type'), 'image/x-icon');

    for (const [bytes, name] of [[Buffer.from('<svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>'), 'x.png'], [Buffer.from('<html><script>x</script>'), 'x.gif'], [Buffer.from([0x89, 0x50, 0x4e, 0x47]), 'short.png']] as const) {
      const res = await upload(feed, bytes, name, 'image/png');
      assert.equal(res.status, 400, name);
      assert.match(((await res.json()) as { error: { message: string } }).error.message, /PNG, GIF, JPEG or ICO/);
    }
    const empty = await upload(feed, Buffer.alloc(0), 'empty.png', 'image/png');
    assert.equal(empty.status, 400);
    await empty.arrayBuffer();
    const big = Buffer.concat([GIF, Buffer.alloc(64 * 1024)]);
    for (const bytes of [big, Buffer.concat([big, Buffer.alloc(200 * 1024)])]) {
      const res = await upload(feed, bytes, 'big.gif', 'image/gif');
      assert.equal(res.status, 413);
      assert.match(((await res.json()) as { error: { message: string } }).error.message, /at most 64 KB/);
    }
    // Malformed forms are refused, never guessed at.
    const gifText = GIF.toString('latin1');
    const malformed: [string, string][] = [
      ['multipart/form-data', `--x\r\nContent-Disposition: form-data; name="icon"\r\n\r\n${gifText}\r\n--x--\r\n`],
      ['multipart/form-data; boundary=x', `--x\r\nContent-Disposition: form-data; name="icon"; filename="a.gif"\r\n\r\n${gifText}`],
      ['multipart/form-data; boundary=x', `--x\r\nContent-Disposition: form-data; name="other"\r\n\r\n${gifText}\r\n--x--\r\n`],
      ['multipart/form-data; boundary=x', `--x\r\nContent-Type: image/gif\r\n\r\n${gifText}\r\n--x--\r\n`],
      ['multipart/form-data; boundary=x', 'no boundary here'],
    ];
    for (const [type, body] of malformed) {
      const res = await fetch(`${server.base}${manageOf(feed)}/icon`, { method: 'POST', headers: { 'Content-Type': type, Accept: 'application/json' }, body: Buffer.from(body, 'latin1') });
      assert.equal(res.status, 400, `${type}: ${JSON.stringify(body.slice(0, 60))}`);
      await res.arrayBuffer();
    }
    const quoted = await fetch(`${server.base}${manageOf(feed)}/icon`, {
      method: 'POST',
      headers: { 'Content-Type': 'multipart/form-data; boundary="a b:c"', Accept: 'application/json' },
      body: Buffer.from(`preamble\r\n--a b:c\r\nContent-Disposition: form-data; name="note"\r\n\r\nhello\r\n--a b:c\r\nContent-Disposition: form-data; name="icon"; filename="i.gif"\r\nContent-Type: image/gif\r\n\r\n${gifText}\r\n--a b:c--\r\nepilogue`, 'latin1'),
    });
    assert.equal(quoted.status, 200, 'a quoted boundary, a preamble, other fields and an epilogue are read as RFC 7578 says');
    assert.equal((await quoted.json() as { bytes: number }).bytes, GIF.length);
    const jpeg = await fetch(`${server.base}${manageOf(feed)}/icon`, { method: 'POST', headers: { 'Content-Type': 'image/jpeg', Accept: 'application/json' }, body: Buffer.from([0xff, 0xd8, 0xff, 0xe0, 0, 16, 0x4a, 0x46, 0x49, 0x46, 0]) });
    assert.equal(jpeg.status, 200, 'scripts may send the bytes as the body');
    assert.equal((await jpeg.json() as { type: string }).type, 'image/jpeg');

    // A browser's form is sent back to the page, which shows the icon and offers the generated one again.
    const viaForm = await upload(feed, GIF, 'icon.gif', 'image/gif', { Accept: 'text/html' });
    assert.equal(viaForm.status, 303);
    const manage = await (await fetch(feed.manage)).text();
    assert.match(manage, /enctype="multipart\/form-data"/);
    assert.match(manage, /Use the generated icon again/);
    const removed = await post(`${manageOf(feed)}/icon/delete`, {}, { json: true });
    assert.equal((await removed.json() as { removed: boolean }).removed, true);
    assert.equal((await iconOf(feed)).atomIcon, generated.atomIcon, 'back to the generated icon');
    assert.equal((await fetch(generated.atomIcon)).headers.get('content-type'), 'image/png');
  });

  it('keeps the feeds readable by python3-feedparser, with the icon', { skip: hasFeedparser ? false : 'python3-feedparser is not installed' }, async () => {
    const feed = await createFeed(server.base, 'Parsed');
    await mailAndWait(feed, [message(feed.address, 'Parsed one', 'Erin <erin@parse.example>')]);
    await upload(feed, GIF, 'icon.gif', 'image/gif').then((r) => r.arrayBuffer());
    const [erin] = await sendersOnPage(feed);
    const urls = [feed.feeds.atom, feed.feeds.rss, feed.feeds.json, erin!.atom, erin!.rss, erin!.json];
    const { stdout } = await promisify(execFile)(PYTHON, ['-c', PARSE, JSON.stringify(urls)], { encoding: 'utf8', timeout: 60_000 });
    const out = JSON.parse(stdout) as { bozo: boolean; entries: number; icon: string | null }[];
    for (const [i, r] of out.entries()) {
      assert.equal(r.bozo, false, `${urls[i]} parses without a bozo error`);
      assert.equal(r.entries, 1);
    }
    assert.match(out[0]!.icon ?? '', /\/icon\?v=/, 'feedparser finds the Atom icon');
    assert.match(out[3]!.icon ?? '', /\/icons\/parse\.example\.png$/);
  });
});

describe('cross-site requests', () => {
  it('refuses every new manage action posted from another site, and changes nothing', async () => {
    const feed = await createFeed(server.base);
    await mailAndWait(feed, [message(feed.address, 'Target')]);
    const deletePath = await deletePathOf(feed, 'Target');
    const paths = [deletePath, `${manageOf(feed)}/rotate-address`, `${manageOf(feed)}/rotate-feed-url`, `${manageOf(feed)}/settings`, `${manageOf(feed)}/icon`, `${manageOf(feed)}/icon/delete`];
    const browsers: Record<string, string>[] = [
      { 'Sec-Fetch-Site': 'cross-site', Origin: 'https://evil.example' },
      { 'Sec-Fetch-Site': 'same-site', Origin: 'https://sub.evil.example' },
      { Origin: 'https://evil.example' },
    ];
    for (const path of paths) {
      for (const headers of browsers) {
        const res = await post(path, { confirm: 'yes', keep_entries: '1', document_entries: '1' }, { headers });
        assert.equal(res.status, 403, `${path} from ${JSON.stringify(headers)}`);
        assert.match(await res.text(), /another site/);
      }
    }
    assert.match(await rcptReply(feed.address), /^250/, 'the address is unchanged');
    assert.equal(await status(feed.feeds.atom), 200, 'the feed URL is unchanged');
    assert.deepEqual((await readFeed(feed.feeds.atom, 'atom')).map((i) => i.title), ['Target'], 'the entry is still there');
    assert.doesNotMatch(await (await fetch(feed.manage)).text(), /name="keep_entries"[^>]*value="1"/, 'the settings are unchanged');
    // The feed's own page may post (a same-origin browser form).
    const own = await post(`${manageOf(feed)}/settings`, { document_entries: '1' }, { headers: { 'Sec-Fetch-Site': 'same-origin', Origin: server.base } });
    assert.equal(own.status, 303);
  });
});

describe('deleting a feed (issue 10, acceptance 2)', () => {
  it('makes its feed URLs, entry links, sender feeds and icon 404 and its address 550', async () => {
    const feed = await createFeed(server.base);
    await mailAndWait(feed, [message(feed.address, 'Gone soon', 'Frank <frank@f.example>')]);
    const [entry] = await readFeed(feed.feeds.atom, 'atom');
    const [frank] = await sendersOnPage(feed);
    const urls = [feed.feeds.atom, feed.feeds.rss, feed.feeds.json, feed.page, entry!.link, frank!.atom, frank!.rss, frank!.json, `${feed.page}/icon`];
    for (const url of urls) assert.equal(await status(url), 200, url);
    const res = await post(`${manageOf(feed)}/delete`, { confirm: 'yes' }, { json: true });
    assert.equal(res.status, 200);
    for (const url of urls) assert.equal(await status(url), 404, url);
    assert.match(await rcptReply(feed.address), /^550/);
  });
});
