/**
 * Full-text search over a feed's entries (issue 10): the real server, a feed of 1,000
 * entries stored through the store (and a few through SMTP), searched over HTTP.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { AppStore } from '../src/store/app-store.js';
import { systemClock } from '../src/store/clock.js';
import { openSqlite } from '../src/store/db.js';
import type { EntryContent } from '../src/store/entries.js';
import { openStores } from '../src/store/index.js';
import { appMigrations } from '../src/store/migrations/index.js';
import type { AppSchema } from '../src/store/schema.js';
import { parseQuery } from '../src/store/search-query.js';
import { escapeHtml } from '../src/mail/sanitize.js';
import { searchBody, searchText } from '../src/store/search-text.js';
import { createFeed, sendRaw, startTestServer, tempDir, testDatabaseEnvSync, waitFor, type CreatedFeed, type TestServer, sqliteOnly } from './support/helpers.js';
import { unsafeConstructs } from './support/html-safety.js';
import { prng } from './support/mutate.js';

const HOUR = 3600_000;
/** Entry i of the big feed was received at START + i × 6 h: four a day from 2026-01-01 (UTC). */
const START = Date.UTC(2026, 0, 1);
const STEP = 6 * HOUR;

const WORDS = `the of and to in is for on with as this that by from at are be it was or an have new more
about our your their will can has week year people time world city market report story data team
school water music film book house garden coffee train river mountain winter summer spring autumn
policy science health energy climate election council budget project research museum library
student teacher doctor engineer writer reader editor artist player coach farmer driver pilot
morning evening weekend holiday festival concert interview review update letter issue edition
simple quick careful bright quiet early late local global public private small large modern
build write read share learn teach plan travel cook grow open close start finish visit explore`.split(/\s+/);

const SENDERS = [
  ['Morning Brief', 'brief@morning.example'], ['City Council Digest', 'digest@council.example'],
  ['Garden Notes', 'notes@garden.example'], ['Margot Fennimore', 'margot@fennimore-letters.example'],
  ['Science Weekly', 'hello@science-weekly.example'], ['The Film Letter', 'editor@filmletter.example'],
] as const;

/** A newsletter-like entry: a subject, several paragraphs, tracked links and an unsubscribe footer. */
function newsletter(rng: () => number, i: number, extra: { subject?: string; body?: string } = {}): EntryContent {
  const pick = () => WORDS[Math.floor(rng() * WORDS.length)]!;
  const sentence = () => {
    const n = 8 + Math.floor(rng() * 9);
    const words = Array.from({ length: n }, pick);
    return `${words[0]![0]!.toUpperCase()}${words.join(' ').slice(1)}.`;
  };
  const paragraphs = Array.from({ length: 3 + Math.floor(rng() * 4) }, () => Array.from({ length: 3 + Math.floor(rng() * 4) }, sentence).join(' '));
  if (extra.body) paragraphs.splice(1, 0, extra.body);
  const text = `${paragraphs.join('\n\n')}\n\nRead online: https://news.example.com/issue/${i}?utm_source=mail&uid=trk${i}x9q\n`
    + `Unsubscribe: <https://list.example.com/u/${i}/unsubtok${i}>\n`;
  const [fromName, fromAddress] = SENDERS[i % SENDERS.length]!;
  return {
    fromName, fromAddress,
    subject: extra.subject ?? `${pick()} ${pick()} ${pick()} — issue ${i}`,
    sentAt: null,
    // As the sanitizer stores it: the text escaped.
    html: `<div>${escapeHtml(text).split('\n\n').map((p) => `<p>${p}</p>`).join('')}</div>`,
    text,
    confirmUrl: null,
    note: null,
    parts: [],
  };
}

/** What a search answered, read from its page. */
interface Page {
  status: number;
  headers: Headers;
  body: string;
  /** The result list's HTML ('' when there is none). */
  results: string;
  /** The entry links of the results, in order. */
  links: string[];
}

interface JsonResults {
  results: { url: string; subject: string; subject_html: string; from_name: string; from_address: string; received_at: string; snippet_html: string }[];
  next: string | null;
  previous: string | null;
  notes: string[];
  from: string | null;
  to: string | null;
}

function searchUrl(feed: CreatedFeed, params: Record<string, string>): string {
  return `${feed.page}/search?${new URLSearchParams(params).toString()}`;
}

async function readPage(url: string): Promise<Page> {
  const res = await fetch(url);
  const body = await res.text();
  const results = /<ol class="entries results"[\s\S]*?<\/ol>/.exec(body)?.[0] ?? '';
  const links = [...results.matchAll(/<a class="subject" href="([^"]+)"/g)].map((m) => m[1]!);
  return { status: res.status, headers: res.headers, body, results, links };
}

async function search(feed: CreatedFeed, params: Record<string, string>): Promise<Page> {
  return readPage(searchUrl(feed, params));
}

async function searchJson(feed: CreatedFeed, params: Record<string, string>): Promise<JsonResults> {
  const res = await fetch(searchUrl(feed, params), { headers: { Accept: 'application/json' } });
  assert.equal(res.status, 200);
  return (await res.json()) as JsonResults;
}

function tokenOf(feed: CreatedFeed): string {
  return feed.page.split('/').pop()!;
}

/** The 1,000 entries of the big feed, with the words the tests look for planted in known ones. */
const UNIQUE = 617;
const SUBJECT_MATCH = 101;
const BODY_MATCH = 102;
const PHRASE = 200;
const REVERSED = 201;
const ZEPPELIN = (i: number) => i % 22 === 3;
const CJK = { ja: 300, zh: 301, ko: 302 };
const HOSTILE = 400;
const ACCENTS = 500;

function plantedWords(i: number): { subject?: string; body?: string } {
  const z = ZEPPELIN(i) ? ' A zeppelin passed over.' : '';
  switch (i) {
    case UNIQUE: return { body: `Deep in the archive we found a note about quetzalcoatl and the old calendar.${z}` };
    case SUBJECT_MATCH: return { subject: 'Marmalade season is here' };
    case BODY_MATCH: return { body: `Among many other things, someone mentioned marmalade once in a long letter.${z}` };
    case PHRASE: return { body: `The velvet armadillo sleeps all day.${z}` };
    case REVERSED: return { body: `An armadillo in velvet, and a tangerine.${z}` };
    case CJK.ja: return { subject: '今週のお知らせ', body: '東京都に住んでいます。新しい図書館が開館しました。' };
    case CJK.zh: return { body: '北京大学的图书馆今天开放。' };
    case CJK.ko: return { body: '서울에서 만나요. 도서관이 열렸습니다.' };
    case ACCENTS: return { body: 'Visite de l\'École nationale à Orléans, naïvement.' };
    case HOSTILE: return { subject: '<img src=x onerror=alert(1)> ocelot & "friends"', body: '<script>alert("ocelot")</script> & <b>bold</b> ocelot' };
    default: return z ? { body: z.trim() } : {};
  }
}

describe('search over a feed of 1,000 entries', () => {
  let srv: TestServer;
  let feed: CreatedFeed;
  let other: CreatedFeed;

  before(async () => {
    srv = await startTestServer({ feedKeepEntries: '100000', feedsPerHourPerClient: '0' });
    feed = await createFeed(srv.base, 'Big feed');
    other = await createFeed(srv.base, 'Other feed');
    const app = srv.app.stores.app;
    const id = (await app.feedByFeedToken(tokenOf(feed)))!.id;
    const rng = prng(10);
    for (let i = 0; i < 1000; i++) {
      const content = newsletter(rng, i, plantedWords(i));
      const stored = await app.insertEntry(id, `search-${i}`, START + i * STEP, Buffer.from(`raw message ${i}`), content);
      assert.ok(stored);
      // The store works synchronously: let the event loop run now and then, so that timers (the
      // HTTP keep-alive ones of this process's server and client among them) keep their time.
      if (i % 50 === 0) await new Promise((resolve) => setImmediate(resolve));
    }
    // The other feed holds the same unique word: its entries must never show up in the big feed's results.
    const otherId = (await app.feedByFeedToken(tokenOf(other)))!.id;
    await app.insertEntry(otherId, 'other-1', START, Buffer.from('other raw'), newsletter(rng, 1, { subject: 'quetzalcoatl in the other feed', body: 'quetzalcoatl marmalade zeppelin' }));
  });
  after(() => srv.stop());

  /** The share token of big-feed entry i, read back through the store. */
  async function shareOf(i: number): Promise<string> {
    const app = srv.app.stores.app;
    const id = (await app.feedByFeedToken(tokenOf(feed)))!.id;
    // Dates alone list the entries received then; entry i is the only one at its time.
    const r = await app.searchEntries(id, { query: '', from: START + i * STEP, to: START + i * STEP + 1, offset: 0, limit: 50 });
    assert.equal(r.hits.length, 1);
    return r.hits[0]!.share_token;
  }

  it('finds the one entry holding a word first, with the word highlighted', async () => {
    const page = await search(feed, { q: 'quetzalcoatl' });
    assert.equal(page.status, 200);
    assert.equal(page.links.length, 1);
    assert.ok(page.links[0]!.endsWith(`/e/${await shareOf(UNIQUE)}`));
    assert.match(page.results, /<p class="snippet">[^<]*<mark>quetzalcoatl<\/mark>/);
    // The result links to a working entry page.
    assert.equal((await fetch(page.links[0]!)).status, 200);
  });

  it('ranks a subject match above a body match', async () => {
    const page = await search(feed, { q: 'marmalade' });
    assert.equal(page.links.length, 2);
    assert.ok(page.links[0]!.endsWith(await shareOf(SUBJECT_MATCH)));
    assert.ok(page.links[1]!.endsWith(await shareOf(BODY_MATCH)));
    assert.match(page.results, /<mark>Marmalade<\/mark> season is here/);
  });

  it('searches the sender, by name and by address', async () => {
    const byName = await searchJson(feed, { q: 'fennimore' });
    assert.ok(byName.results.length >= 20);
    assert.ok(byName.results.every((r) => r.from_address === 'margot@fennimore-letters.example'));
    const byAddress = await searchJson(feed, { q: 'margot@fennimore-letters.example' });
    assert.equal(byAddress.results.length, byName.results.length);
  });

  it('supports prefixes, phrases, exclusion and OR', async () => {
    const [phrase, reversed, unique] = [await shareOf(PHRASE), await shareOf(REVERSED), await shareOf(UNIQUE)];
    const links = async (q: string) => (await search(feed, { q })).links.map((l) => l.split('/').pop());
    assert.deepEqual(await links('quetzal*'), [unique]);
    assert.deepEqual(await links('"quetzal"*'), [unique]);
    assert.deepEqual(await links('quetzal'), []);
    assert.deepEqual((await links('armadillo velvet')).sort(), [phrase, reversed].sort());
    assert.deepEqual(await links('"velvet armadillo"'), [phrase]);
    assert.deepEqual(await links('"armadillo in velvet"'), [reversed]);
    assert.deepEqual(await links('armadillo -tangerine'), [phrase]);
    assert.deepEqual(await links('armadillo -"velvet armadillo"'), [reversed]);
    assert.deepEqual((await links('quetzalcoatl OR tangerine')).sort(), [unique, reversed].sort());
    assert.deepEqual((await links('armadi* OR quetzalcoatl')).sort(), [phrase, reversed, unique].sort());
    // Case and accents do not matter.
    const accents = await shareOf(ACCENTS);
    assert.deepEqual(await links('ecole orleans'), [accents]);
    assert.deepEqual(await links('ÉCOLE ORLÉANS'), [accents]);
    assert.deepEqual(await links('naive*'), [accents]);
    // A lone OR, and OR next to an exclusion, are words; lowercase "or" is always a word.
    assert.deepEqual(await links('quetzalcoatl or tangerine'), []);
    // Exclusion alone lists the feed without those entries.
    const allBut = await searchJson(feed, { q: '-zeppelin -quetzalcoatl' });
    assert.equal(allBut.results.length, 20);
    assert.ok(allBut.next);
  });

  it('filters by the day received, with or without words, and pages through results', async () => {
    // 2026-02-01 to 2026-02-03 (UTC, both included) are entries 124 to 135.
    const days = await searchJson(feed, { from: '2026-02-01', to: '2026-02-03' });
    assert.equal(days.results.length, 12);
    for (const r of days.results) {
      const t = Date.parse(r.received_at);
      assert.ok(t >= Date.UTC(2026, 1, 1) && t < Date.UTC(2026, 1, 4), r.received_at);
    }
    const expected = Array.from({ length: 1000 }, (_, i) => i).filter((i) => ZEPPELIN(i) && START + i * STEP >= Date.UTC(2026, 1, 1) && START + i * STEP < Date.UTC(2026, 3, 1));
    const dated = await searchJson(feed, { q: 'zeppelin', from: '2026-02-01', to: '2026-03-31' });
    assert.equal(dated.results.length, expected.length);
    const reversed = await searchJson(feed, { q: 'zeppelin', from: '2026-04-01', to: '2026-03-31' });
    assert.deepEqual(reversed.results, []);
    assert.match(reversed.notes.join(' '), /first day is after the last/);
    const early = await searchJson(feed, { q: 'zeppelin', from: '0001-01-01', to: 'someday' });
    assert.equal(early.results.length, 20, 'a full first page of every zeppelin entry');
    assert.equal(early.from, '0001-01-01', 'the year 1 is a date');
    assert.equal(early.to, null, 'what is not a date is not echoed as one');
    assert.deepEqual((await searchJson(feed, { q: 'quetzalcoatl', to: '2026-01-05' })).results, []);
    assert.equal((await searchJson(feed, { q: 'quetzalcoatl', from: '2026-01-05' })).results.length, 1);

    // Pagination: every zeppelin entry exactly once over the pages, 20 a page.
    const total = Array.from({ length: 1000 }, (_, i) => i).filter(ZEPPELIN).length;
    const seen = new Set<string>();
    let next: string | null = searchUrl(feed, { q: 'zeppelin' });
    let pages = 0;
    while (next) {
      const page = await readPage(new URL(next, searchUrl(feed, { q: 'zeppelin' })).href);
      pages++;
      assert.ok(page.links.length <= 20);
      for (const l of page.links) seen.add(l);
      if (pages > 1) assert.match(page.body, /<a rel="prev" href="\?q=zeppelin(&amp;page=\d+)?">/);
      next = /<a rel="next" href="([^"]+)"/.exec(page.body)?.[1]?.replace(/&amp;/g, '&') ?? null;
    }
    assert.equal(pages, Math.ceil(total / 20));
    assert.equal(seen.size, total);
    const last = await searchJson(feed, { q: 'zeppelin', page: String(pages) });
    assert.equal(last.next, null);
    assert.equal(last.previous, `?q=zeppelin${pages > 2 ? `&page=${pages - 1}` : ''}`);
  });

  it('finds Japanese, Chinese and Korean text by any run of characters', async () => {
    const [ja, zh, ko] = [await shareOf(CJK.ja), await shareOf(CJK.zh), await shareOf(CJK.ko)];
    const links = async (q: string) => (await search(feed, { q })).links.map((l) => l.split('/').pop());
    assert.deepEqual(await links('東京'), [ja]);
    assert.deepEqual(await links('住んで'), [ja]);
    assert.deepEqual(await links('図書館'), [ja]);
    assert.deepEqual(await links('お知らせ'), [ja]);
    assert.deepEqual(await links('東京 図書館'), [ja]);
    assert.deepEqual(await links('東都'), [], 'characters that are not next to each other are not a match');
    assert.deepEqual(await links('北京大学'), [zh]);
    assert.deepEqual(await links('京大'), [zh]);
    assert.deepEqual(await links('图书馆'), [zh]);
    assert.deepEqual(await links('서울'), [ko]);
    assert.deepEqual(await links('도서관'), [ko]);
    const page = await search(feed, { q: '図書館' });
    assert.match(page.results, /<mark>図書館<\/mark>/);
    assert.ok(!page.results.includes('\u200b'), 'the separators the index puts between CJK characters are not shown');
    assert.match(page.results, /東京都に住んでいます/);
  });

  it('never shows another feed\'s entries', async () => {
    const app = srv.app.stores.app;
    const otherId = (await app.feedByFeedToken(tokenOf(other)))!.id;
    for (const q of ['quetzalcoatl', 'marmalade', 'zeppelin', 'quetzalcoatl OR marmalade', '-nothingatall', `feed f${otherId}`, `"f${otherId}"`, `feed : "f${otherId}"`]) {
      const mine = await searchJson(feed, { q });
      const theirs = await searchJson(other, { q });
      const theirUrls = new Set(theirs.results.map((r) => r.url));
      assert.ok(mine.results.every((r) => !theirUrls.has(r.url)), q);
      assert.ok(mine.results.every((r) => r.subject !== 'quetzalcoatl in the other feed'), q);
    }
    const theirs = await searchJson(other, { q: 'quetzalcoatl' });
    assert.deepEqual(theirs.results.map((r) => r.subject), ['quetzalcoatl in the other feed']);
    // Dates alone list only the feed's own entries too.
    assert.equal((await searchJson(other, { from: '2025-01-01', to: '2027-01-01' })).results.length, 1);
  });

  it('escapes HTML in subjects and snippets', async () => {
    const page = await search(feed, { q: 'ocelot' });
    assert.equal(page.links.length, 1);
    assert.deepEqual(unsafeConstructs(page.results), []);
    assert.ok(page.results.includes('&lt;img src=x onerror=alert(1)&gt; <mark>ocelot</mark> &amp; &quot;friends&quot;'), page.results);
    assert.ok(page.results.includes('&lt;script&gt;alert(&quot;<mark>ocelot</mark>&quot;)&lt;/script&gt; &amp; &lt;b&gt;bold&lt;/b&gt; <mark>ocelot</mark>'), page.results);
    const json = await searchJson(feed, { q: 'ocelot' });
    assert.equal(json.results[0]!.subject, '<img src=x onerror=alert(1)> ocelot & "friends"');
    assert.deepEqual(unsafeConstructs(json.results[0]!.snippet_html + json.results[0]!.subject_html), []);
  });

  it('leaves URLs and their tokens out of the index and the snippets', async () => {
    for (const q of ['trk617x9q', 'unsubtok617', 'utm_source', 'news.example.com/issue/617', 'https://list.example.com/u/617/unsubtok617']) {
      assert.deepEqual((await searchJson(feed, { q })).results, [], q);
    }
    const page = await searchJson(feed, { q: 'quetzalcoatl' });
    assert.doesNotMatch(page.results[0]!.snippet_html, /https?:|example\.com\/|unsubtok|trk/);
    const all = await searchJson(feed, { q: 'online' });
    assert.ok(all.results.length > 0);
    for (const r of all.results) assert.doesNotMatch(r.snippet_html, /https?:|example\.com\/|unsubtok|trk/);
  });

  it('is noindex, and shows nothing the feed secret does not', async () => {
    for (const params of [{ q: 'quetzalcoatl' }, { q: '' }, { q: 'nothing-matches-this' }]) {
      const page = await search(feed, params);
      assert.equal(page.status, 200);
      assert.match(page.headers.get('x-robots-tag') ?? '', /noindex/);
      assert.match(page.body, /<meta name="robots" content="noindex/);
      assert.equal(page.headers.get('cache-control'), 'no-store');
      assert.ok(!page.body.includes(feed.address.split('@')[0]!), 'no inbox address');
      assert.ok(!page.body.includes(feed.manage.split('/').pop()!), 'no manage secret');
      assert.doesNotMatch(page.body, /\/manage\//);
    }
    const json = await fetch(searchUrl(feed, { q: 'quetzalcoatl' }), { headers: { Accept: 'application/json' } });
    assert.match(json.headers.get('x-robots-tag') ?? '', /noindex/);
    const feedPage = await fetch(feed.page);
    assert.match(feedPage.headers.get('x-robots-tag') ?? '', /noindex/);
    // The feed page carries the search box: a GET form that needs no JavaScript.
    const form = /<form class="search" method="get" action="([^"]+)"[\s\S]*?<\/form>/.exec(await feedPage.text());
    assert.ok(form);
    assert.equal(form[1], `/feeds/${tokenOf(feed)}/search`);
    assert.match(form[0], /<input id="search-q" type="search" name="q"/);
    assert.match(form[0], /<input type="date" name="from"/);
    // An unknown feed secret finds no search either.
    assert.equal((await fetch(`${srv.base}/feeds/${'a'.repeat(26)}/search?q=quetzalcoatl`)).status, 404);
  });

  it('answers any query with a page or an empty list, never an error', async () => {
    const nasty = [
      '"', '""', '"""', '\'', '*', '**', '-', '--', '-*', '- -', ':', '::', 'subject:', 'subject:quetzalcoatl', '{subject}:x',
      '{subject body} : quetzalcoatl', 'NEAR(', 'NEAR(a b', 'NEAR(quetzalcoatl calendar, 2)', 'AND', 'OR', 'NOT', 'AND OR NOT',
      'quetzalcoatl AND', 'OR quetzalcoatl', 'quetzalcoatl OR', 'OR OR OR', '^', '^quetzalcoatl', '(', ')', '(()', 'a)', '+', '+a',
      '\\', '\\"', '%', '%00', '\u0000', '\u0001\u0002', '\u200b', '\u202e', '😀', '👩‍👩‍👧‍👦 quetzalcoatl', '東京', '中文搜索', '한국어',
      'ﷺ', 'a'.repeat(2000), 'word '.repeat(500), '"'.repeat(2001), '-'.repeat(1000), 'OR '.repeat(700), '*'.repeat(3000),
      'x"y"z', '"a" "b', 'a*b', '*a', 'ab* *', '\'; DROP TABLE entries; --', '<script>alert(1)</script>', '&amp;', 'rowid:1',
      'rank', 'entries_search', 'feed : "f1"', 'feed:f1', '{feed}: f1', '\t\n\r', ' ', 'quetzalcoatl -quetzalcoatl',
      '"quetzalcoatl', 'quetzalcoatl"', '-"', '"-"', 'É', 'ÉCOLE école', '\ud83d', 'a\u0301', 'x'.repeat(30) + '*',
    ];
    assert.ok(nasty.length >= 40);
    for (const q of nasty) {
      const variants: Record<string, string>[] = [{ q }, { q, page: '2' }, { q, from: '2026-13-45', to: 'yesterday' }, { q, page: '-5' }, { q, page: '99999999999999999999' }];
      for (const params of variants) {
        const page = await search(feed, params);
        assert.equal(page.status, 200, `${JSON.stringify(q).slice(0, 40)} ${JSON.stringify(params).slice(0, 80)}`);
        assert.match(page.body, /<form class="search"/);
        assert.deepEqual(unsafeConstructs(page.results), []);
        const json = await searchJson(feed, params);
        assert.ok(Array.isArray(json.results));
      }
    }
    // Query strings no form would send: broken percent-encoding, repeated parameters, a lone surrogate.
    for (const raw of ['q=%', 'q=%E0%A4%A', 'q=%ED%A0%80', 'q=a&q=b', 'q', 'page=&from=&to=', 'q=%22&page=1e9', 'from=2024-02-31&to=2024-02-30']) {
      const res = await fetch(`${feed.page}/search?${raw}`);
      assert.equal(res.status, 200, raw);
      await res.text();
    }
    // The long ones were cut, and the page says so.
    assert.ok((await searchJson(feed, { q: 'word '.repeat(500) })).notes.some((n) => /Only the first/.test(n)));
    assert.ok((await searchJson(feed, { q: 'q* quetzal*' })).notes.some((n) => /A \* counts for words of 2 letters or more/.test(n)));
  });
});

describe('the search index follows every change', () => {
  let srv: TestServer;
  before(async () => {
    srv = await startTestServer({ feedKeepEntries: '100000', feedsPerHourPerClient: '0' });
  });
  after(() => srv.stop());

  it('indexes mail that came over SMTP: HTML-only newsletters by their visible words, never URLs or the feed\'s secrets', async () => {
    const feed = await createFeed(srv.base, 'smtp');
    const inbox = feed.address.split('@')[0]!;
    await sendRaw(srv.smtpPort, feed.address, [
      'From: "Letters" <letters@example.org>', `To: ${feed.address}`, 'Subject: An HTML-only letter', 'MIME-Version: 1.0',
      'Content-Type: text/html; charset=utf-8', '', '<html><head><style>.xylo{color:red}</style></head><body>',
      '<p>Our <b>xylophonist</b> plays tonight.</p><a href="https://click.example.net/c/trk9f8e7d6c5b4a?u=1">Tickets</a>',
      '<img src="https://pixel.example.net/open/pix4455.gif" alt=""></body></html>', '',
    ].join('\r\n'));
    await sendRaw(srv.smtpPort, feed.address, [
      'From: leaky@example.org', `To: ${feed.address}`, `Subject: Reply to ${feed.address}`, 'Content-Type: text/plain; charset=utf-8', '',
      `You subscribed as ${feed.address} (or ${inbox.toUpperCase()}), see ${feed.page} for details. Word: pangolin.`, '',
    ].join('\r\n'));
    await sendRaw(srv.smtpPort, feed.address, [
      'From: =?UTF-8?B?5pel5pys44OL44Ol44O844K5?= <news@example.jp>', `To: ${feed.address}`, 'Subject: =?UTF-8?B?5LuK6YCx44Gu44OL44Ol44O844K5?=',
      'MIME-Version: 1.0', 'Content-Type: text/plain; charset=utf-8', 'Content-Transfer-Encoding: 8bit', '',
      '京都の美術館で新しい展示が始まりました。詳しくはhttps://example.jp/news?id=abc123をご覧ください。', '',
    ].join('\r\n'));
    await sendRaw(srv.smtpPort, feed.address, [
      'From: stub@example.org', `To: ${feed.address}`, 'Subject: A letter with a stub text part', 'MIME-Version: 1.0',
      'Content-Type: multipart/alternative; boundary="b1"', '', '--b1', 'Content-Type: text/plain; charset=utf-8', '',
      'View this email in your browser: https://example.org/v/1', '--b1', 'Content-Type: text/html; charset=utf-8', '',
      '<p>The <i>quok</i>ka&nbsp;census &amp; more</p>', '--b1--', '',
    ].join('\r\n'));
    const id = (await srv.app.stores.app.feedByFeedToken(tokenOf(feed)))!.id;
    await waitFor(async () => (await srv.app.stores.app.countEntries(id)) === 4, 10_000, 'four entries');

    const html = await searchJson(feed, { q: 'xylophonist' });
    assert.equal(html.results.length, 1);
    assert.match(html.results[0]!.snippet_html, /<mark>xylophonist<\/mark> plays tonight/);
    assert.deepEqual((await searchJson(feed, { q: 'tickets' })).results.length, 1);
    for (const q of ['trk9f8e7d6c5b4a', 'pix4455', 'click.example.net', 'color', 'abc123']) assert.deepEqual((await searchJson(feed, { q })).results, [], q);

    // What the page shows is what is found: the HTML's words, not a stub text part's.
    const stub = await searchJson(feed, { q: '"quokka census"' });
    assert.equal(stub.results.length, 1, 'found by the words of its HTML');
    assert.match(stub.results[0]!.snippet_html, /<mark>quokka census<\/mark> &amp; more/);
    assert.equal((await searchJson(feed, { q: 'browser' })).results.length, 0, 'not by its stub text part');

    assert.equal((await searchJson(feed, { q: 'pangolin' })).results.length, 1);
    for (const q of [inbox, inbox.toUpperCase(), `${inbox}*`, inbox.slice(0, 10) + '*', tokenOf(feed), feed.address]) {
      assert.deepEqual((await searchJson(feed, { q })).results, [], `the secret ${q.slice(0, 4)}… is not searchable`);
    }
    const pangolin = await search(feed, { q: 'pangolin' });
    assert.ok(!pangolin.body.includes(inbox), 'the snippet does not show the inbox address');

    const ja = await searchJson(feed, { q: '美術館' });
    assert.equal(ja.results.length, 1);
    assert.equal(ja.results[0]!.subject, '今週のニュース');
    assert.match(ja.results[0]!.snippet_html, /<mark>美術館<\/mark>/);
    assert.equal((await searchJson(feed, { q: 'ご覧' })).results.length, 1, 'text glued after a URL stays searchable');
    assert.equal((await searchJson(feed, { q: 'ニュース' })).results.length, 1, 'subject and sender');
    assert.equal(await srv.app.stores.app.checkSearchIndex(), undefined);
  });

  it('drops deleted feeds, trimmed and reprocessed entries, and keeps shared bodies for the other feed', async () => {
    const app = srv.app.stores.app;
    const [a, b] = [await createFeed(srv.base, 'a'), await createFeed(srv.base, 'b')];
    const [aId, bId] = [(await app.feedByFeedToken(tokenOf(a)))!.id, (await app.feedByFeedToken(tokenOf(b)))!.id];
    const rng = prng(3);
    for (let i = 0; i < 5; i++) await app.insertEntry(bId, `b-${i}`, START + i * HOUR, Buffer.from(`b raw ${i}`), newsletter(rng, i, { body: `numbat${i} lives here.` }));
    // One message to both feeds: one shared body, two entries, two index rows.
    await sendRaw(srv.smtpPort, [a.address, b.address], `From: x@example.org\r\nTo: ${a.address}, ${b.address}\r\nSubject: shared wombat\r\n\r\nA wombat for both feeds.\r\n`);
    await waitFor(async () => (await app.countEntries(aId)) === 1 && (await app.countEntries(bId)) === 6, 10_000, 'both entries');
    assert.equal((await searchJson(a, { q: 'wombat' })).results.length, 1);
    assert.equal((await searchJson(b, { q: 'wombat' })).results.length, 1);

    // Deleting feed a (the manage page's delete): its search is gone, b's shared entry stays found.
    const res = await fetch(`${a.manage}/delete`, { method: 'POST', headers: { 'Content-Type': 'application/x-www-form-urlencoded' }, body: 'confirm=yes' });
    assert.equal(res.status, 200);
    assert.equal((await fetch(searchUrl(a, { q: 'wombat' }))).status, 404);
    assert.equal((await searchJson(b, { q: 'wombat' })).results.length, 1);
    assert.equal(await app.checkSearchIndex(), undefined);

    // Trimming b to its 3 newest entries: the three oldest numbats vanish from the results.
    await app.trimFeeds(3);
    assert.deepEqual((await searchJson(b, { q: 'numbat0 OR numbat1 OR numbat2' })).results, []);
    assert.equal((await searchJson(b, { q: 'numbat4' })).results.length, 1);
    assert.equal((await searchJson(b, { q: 'numbat*' })).results.length, 2);
    assert.equal(await app.checkSearchIndex(), undefined);

    // Reprocessing replaces an entry's content: the old words go, the new ones come.
    const entry = (await app.entriesOfFeed(bId, 10)).find((e) => e.text.includes('numbat4'))!;
    await app.replaceEntryContent(entry.id, newsletter(rng, 99, { subject: 'renamed quokka', body: 'Only a quokka now.' }));
    assert.deepEqual((await searchJson(b, { q: 'numbat4' })).results, []);
    assert.equal((await searchJson(b, { q: 'quokka' })).results.length, 1);
    assert.match((await searchJson(b, { q: 'quokka' })).results[0]!.subject_html, /renamed <mark>quokka<\/mark>/);
    assert.equal(await app.checkSearchIndex(), undefined);

    // Deleting b, and with it the last entry of the shared body.
    await srv.app.stores.removeFeed(bId);
    assert.equal((await fetch(searchUrl(b, { q: 'wombat' }))).status, 404);
    assert.equal(await app.checkSearchIndex(), undefined);
  });
});

describe('entries stored before search existed', () => {
  it('are indexed by the migration', async (t) => {
    if (sqliteOnly(t, 'builds an app.db of the previous SQLite schema')) return;
    const dir = tempDir();
    const at = appMigrations.findIndex((m) => m.name === 'full-text search');
    assert.ok(at > 0);
    // The database as the previous version left it: every migration before this one.
    const old = new AppStore(openSqlite<AppSchema>(path.join(dir, 'app.db'), appMigrations.slice(0, at), { synchronous: 'FULL' }), systemClock);
    const created = await old.createFeed('before', null);
    assert.ok('feed' in created);
    const rng = prng(5);
    for (let i = 0; i < 30; i++) {
      await old.insertEntry(created.feed.id, `old-${i}`, START + i * HOUR, Buffer.from(`old raw ${i}`), newsletter(rng, i, i === 7 ? { subject: 'Bandicoot news', body: '大阪の天気は晴れです。' } : {}));
    }
    await old.close();

    const stores = openStores(dir);
    try {
      const r = await stores.app.searchEntries(created.feed.id, { query: 'bandicoot', from: null, to: null, offset: 0, limit: 20 });
      assert.equal(r.hits.length, 1);
      assert.equal(r.hits[0]!.subject_marked, '\u0001Bandicoot\u0002 news');
      assert.equal((await stores.app.searchEntries(created.feed.id, { query: '天気', from: null, to: null, offset: 0, limit: 20 })).hits.length, 1);
      assert.deepEqual((await stores.app.searchEntries(created.feed.id, { query: 'trk7x9q', from: null, to: null, offset: 0, limit: 20 })).hits, []);
      const all = await stores.app.searchEntries(created.feed.id, { query: '', from: START, to: START + 100 * HOUR, offset: 0, limit: 50 });
      assert.equal(all.hits.length, 30);
      assert.equal(await stores.app.checkSearchIndex(), undefined);
    } finally {
      await stores.close();
    }
    // The operator's command checks and rebuilds the same index.
    for (const [action, said] of [['check', /The search index matches the entries/], ['rebuild', /Rebuilt the search index of 30 entries/]] as const) {
      const r = spawnSync(process.execPath, ['--import', 'tsx', 'src/cli.ts', 'search-index', action], {
        env: { ...process.env, ...testDatabaseEnvSync(dir), FEEDMAIL_DATA_DIR: dir, FEEDMAIL_ALLOW_UNSAFE_STORAGE: 'true', FEEDMAIL_MIN_FREE_BYTES: '0', FEEDMAIL_LOG_LEVEL: 'silent' },
        encoding: 'utf8',
      });
      assert.equal(r.status, 0, r.stderr);
      assert.match(r.stdout, said);
    }
  });
});

describe('the indexed text and the query language', () => {
  it('keeps searchText\'s output fixed (FTS5 deletes rows by deriving their text again)', () => {
    // Changing any of these needs a new function name and a migration that rebuilds the index.
    const z = '\u200b';
    const cases: [string, string][] = [
      ['Read more [https://t.example.com/c/abc?x=1]logo', 'Read more  logo'],
      ['see <https://a.example/b>, or (http://c.example/d).', 'see  , or  '],
      ['foohttps://x.example/y bar', '  bar'],
      [`${'x'.repeat(40)}https://t.example/abc end`, `${'x'.repeat(40)}https  end`],
      ['www.example.com/a?b=c and example.org/unsub?t=zz and example.com.', '  and   and example.com.'],
      ['mailto:a@b.example?subject=hi data:image/png;base64,AAAA end', '    end'],
      ['a\u0000b\u0001c\u0002d\u007fe\tf\ng', 'a b c d e\tf\ng'],
      ['東京タワー', `${z}東${z}${z}京${z}${z}タ${z}${z}ワ${z}${z}ー${z}`],
      ['서울 abc 北京', `${z}서${z}${z}울${z} abc ${z}北${z}${z}京${z}`],
      ['詳しくはhttps://example.jp/n?id=1をご覧', `${z}詳${z}${z}し${z}${z}く${z}${z}は${z} ${z}を${z}${z}ご${z}${z}覧${z}`],
      ['café naïve e.g. and/or 4.5/5', 'café naïve e.g. and/or 4.5/5'],
    ];
    for (const [input, output] of cases) assert.equal(searchText(input), output, input);
    assert.equal(searchText(null), '');
  });

  it('keeps searchBody\'s output fixed: the text the HTML shows, else the stored text', () => {
    const cases: [unknown, unknown, string][] = [
      ['<div><p>One</p><p>T<b>w</b>o &amp; <a href="https://t.example/x">three</a></p></div>', 'stub https://v.example/1', ' One Two & three '],
      ['<style>.a{color:red}</style><!-- [if mso] --><td>x&lt;y&#33;&#x263A;&nbsp;z</td>', '', ' x<y!\u263a z '],
      ['', 'only text https://u.example/1', 'only text  '],
      [null, 'plain', 'plain'],
      ['   ', 'blank html', 'blank html'],
      ['<p>unclosed <style>never ends', '', ' unclosed '],
    ];
    for (const [html, text, output] of cases) assert.equal(searchBody(html, text), output, String(html));
  });

  it('turns every query into quoted terms', () => {
    assert.deepEqual(parseQuery('a "b c" dd* -e OR f'), { all: [['"a"'], ['"b c"'], ['"dd" *'], ['"or"'], ['"f"']], none: ['"e"'], truncated: false, prefixesIgnored: false, typed: true });
    assert.deepEqual(parseQuery('a OR b OR c d').all, [['"a"', '"b"', '"c"'], ['"d"']]);
    assert.deepEqual(parseQuery('NEAR(x y) ^z : "q""r').all, [['"NEAR(x"'], ['"y)"'], ['"^z"'], ['"q"'], ['"r"']]);
    assert.deepEqual(parseQuery('say "it""s"').all, [['"say"'], ['"it"'], ['"s"']]);
    assert.deepEqual(parseQuery('x"y').all, [['"x"'], ['"y"']]);
    assert.deepEqual(parseQuery('東京').all, [['"\u200b東\u200b\u200b京\u200b"']]);
    assert.deepEqual(parseQuery('😀 : * - "').all, []);
    assert.equal(parseQuery('x '.repeat(40)).truncated, true);
    assert.equal(parseQuery('x '.repeat(40)).all.length, 16);
    // A prefix needs two letters, and a query holds four at most: the rest are plain words.
    assert.deepEqual(parseQuery('a* 東* ab*'), { all: [['"a"'], ['"\u200b東\u200b"'], ['"ab" *']], none: [], truncated: false, prefixesIgnored: true, typed: true });
    assert.deepEqual(parseQuery('aa* bb* -cc* dd* ee*').all, [['"aa" *'], ['"bb" *'], ['"dd" *'], ['"ee"']]);
    assert.deepEqual(parseQuery('aa* bb* -cc* dd* ee*').none, ['"cc" *']);
    assert.equal(parseQuery('aa* bb* cc* dd*').prefixesIgnored, false);
  });
});
