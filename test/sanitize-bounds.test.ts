/**
 * The sanitizer flattens markup beyond HTML_BOUNDS before sanitize-html sees it, in linear
 * time, because sanitize-html's time grows with the square of the nesting depth (one 1.65 MB
 * message of 150,000 nested <div>s held a render thread for the whole 20 s budget: security
 * review F5). These tests check that hostile structure is flattened, that its text survives,
 * that ordinary mail is untouched, and that flattening opens no way around the allowlist.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import { describe, it } from 'node:test';
import { Parser } from 'htmlparser2';
import { parseMessage } from '../src/mail/parse.js';
import { processMessage } from '../src/mail/process.js';
import { boundMarkup, HTML_BOUNDS, sanitizeNewsletterHtml, sanitizeNewsletterHtmlWithReport, type HtmlBounds } from '../src/mail/sanitize.js';
import { createFeed, fixture, sendRaw, startTestServer, waitForEntries } from './support/helpers.js';
import { unsafeConstructs, XSS_VECTORS } from './support/html-safety.js';
import { prng } from './support/mutate.js';

const UNBOUNDED: HtmlBounds = { maxDepth: Infinity, maxElements: Infinity };
const STRIP = { keepTrackingPixels: false };
const KEEP = { keepTrackingPixels: true };

/** The review's message body. */
const nestedDivs = (n: number) => '<div>'.repeat(n) + 'x' + '</div>'.repeat(n);

/** The deepest nesting and the number of elements a parser finds in `html`. */
function structure(html: string): { depth: number; elements: number } {
  let depth = 0;
  let maxDepth = 0;
  let elements = 0;
  // Only ever used on sanitized output, which is bounded, so htmlparser2's own cost stays small.
  const parser = new Parser({
    onopentag() { elements++; depth++; maxDepth = Math.max(maxDepth, depth); },
    onclosetag() { depth--; },
  }, { decodeEntities: true });
  parser.write(html);
  parser.end();
  return { depth: maxDepth, elements };
}

const count = (s: string, sub: string) => s.split(sub).length - 1;

// What hostile structure costs is measured by bench/sanitize-bounds.ts; the timeouts here only stop a hang.
const HANG_MS = 60_000;

describe('sanitizer bounds: hostile structure is flattened', () => {
  it('flattens the review\'s 150,000 nested <div>s to the depth cap and keeps the text', { timeout: HANG_MS }, () => {
    const { html, flattened } = sanitizeNewsletterHtmlWithReport(nestedDivs(150_000), STRIP);
    assert.equal(flattened, true);
    assert.ok(html.includes('x'), html.slice(0, 200));
    assert.equal(structure(html).depth, HTML_BOUNDS.maxDepth);
    assert.equal(count(html, '<div>'), HTML_BOUNDS.maxDepth);
  });

  it('keeps every text of 300,000 flat elements, and the tags of the first 50,000', { timeout: HANG_MS }, () => {
    const { html, flattened } = sanitizeNewsletterHtmlWithReport('<span>w</span>'.repeat(300_000), STRIP);
    assert.equal(flattened, true);
    assert.equal(count(html, 'w'), 300_000);
    assert.equal(count(html, '<span>'), HTML_BOUNDS.maxElements);
  });

  for (const [name, html] of [
    ['nested tables', '<table><tr><td>'.repeat(50_000) + 'x' + '</td></tr></table>'.repeat(50_000)],
    ['alternating <b><i>, never closed', '<b><i>'.repeat(75_000) + 'x'],
    ['unclosed <div>s', '<div>'.repeat(150_000) + 'x'],
    ['unclosed <font>s with attributes', '<font color="red" face="a&amp;b">'.repeat(100_000) + 'x'],
    ['nesting under a stray end tag storm', '<div>'.repeat(200) + '</span>'.repeat(200_000) + '<i>'.repeat(100_000) + 'x'],
  ] as const) {
    it(`bounds deep nesting of ${name}`, { timeout: HANG_MS }, () => {
      const { html: out, flattened } = sanitizeNewsletterHtmlWithReport(html, STRIP);
      assert.equal(flattened, true);
      assert.ok(out.endsWith('x') || out.includes('x<'), out.slice(-200));
      const s = structure(out);
      assert.ok(s.depth <= HTML_BOUNDS.maxDepth, `depth ${s.depth}`);
      assert.ok(s.elements <= HTML_BOUNDS.maxElements, `elements ${s.elements}`);
    });
  }

  it('does not count void elements or implied ends as nesting', () => {
    const html = '<div>'.repeat(250) + '<br><img src="https://cdn.example.com/a.png"><hr><wbr>'.repeat(1000) + '<ul>' + '<li>item'.repeat(5000) + '</ul>'
      + '<p>one<p>two'.repeat(2000) + '<table>' + '<tr><td>a<td>b'.repeat(2000) + '</table>' + '</div>'.repeat(250);
    const { html: out, flattened } = sanitizeNewsletterHtmlWithReport(html, STRIP);
    assert.equal(flattened, false);
    assert.equal(out, sanitizeNewsletterHtml(html, { ...STRIP, bounds: UNBOUNDED }));
  });

  it('keeps the layout above the cap as it was: only the part beyond it is flattened', () => {
    const inner = '<table width="600"><tr><td style="color:#333"><a href="https://example.com/a">read</a> &amp; <b>more</b></td></tr></table>';
    const html = '<div>'.repeat(HTML_BOUNDS.maxDepth - 1) + inner + '</div>'.repeat(HTML_BOUNDS.maxDepth - 1);
    const out = sanitizeNewsletterHtml(html, STRIP);
    assert.ok(out.includes('<table width="600">read &amp; more</table>'), out.slice(-300));
  });

  it('drops the content of elements sanitize-html would drop whole, also beyond the cap', () => {
    const hidden = '<style>.x{color:red}</style><title>T</title><script>S()</script><svg><text>V</text></svg><noscript>N</noscript><textarea>A</textarea>';
    const out = sanitizeNewsletterHtml('<div>'.repeat(300) + `visible${hidden}shown` + '</div>'.repeat(300), STRIP);
    assert.ok(out.includes('visibleshown'), out.slice(-300));
    for (const gone of ['color:red', 'T<', 'S()', 'V', 'N', 'A<']) assert.ok(!out.includes(gone), `${gone} in ${out.slice(-300)}`);
  });

  it('reports nothing for mail within bounds', () => {
    assert.equal(sanitizeNewsletterHtmlWithReport('<p>hello</p>', STRIP).flattened, false);
    assert.equal(sanitizeNewsletterHtmlWithReport(nestedDivs(HTML_BOUNDS.maxDepth), STRIP).flattened, false);
    assert.equal(sanitizeNewsletterHtmlWithReport(nestedDivs(HTML_BOUNDS.maxDepth + 1), STRIP).flattened, true);
  });

  it('renders the review\'s whole message, headers and all, without the fallback', { timeout: HANG_MS }, async () => {
    const raw = Buffer.from(`Subject: nested\r\nContent-Type: text/html\r\n\r\n${nestedDivs(150_000)}\r\n`);
    const rendered = await processMessage(raw, { maxPartBytes: 25 * 1024 * 1024, keepTrackingPixels: false });
    assert.equal(rendered.subject, 'nested');
    assert.ok(rendered.html.includes('x'));
    assert.ok(rendered.html.length < 10_000, `${rendered.html.length} characters`);
  });

  // How soon the victim's entry shows is measured by bench/attacks.ts (F5).
  it('delivers a victim\'s mail while three nested-div bombs arrive, and stores the bombs flattened (the review\'s reproduction)', { timeout: 3 * HANG_MS }, async () => {
    const server = await startTestServer();
    try {
      const attacker = await createFeed(server.base);
      const victim = await createFeed(server.base);
      for (let i = 0; i < 3; i++) {
        await sendRaw(server.smtpPort, attacker.address, `Subject: nested ${i}\r\nContent-Type: text/html\r\n\r\n${nestedDivs(150_000)}\r\n${i}\r\n`);
      }
      await sendRaw(server.smtpPort, victim.address, 'Subject: legit\r\n\r\nhello\r\n');
      const [legit] = await waitForEntries(victim.feeds.json, 'json', 1, HANG_MS, 'the victim\'s entry');
      assert.equal(legit!.title, 'legit');
      // Before the fix each bomb ran into the processing budget and fell back to its text.
      const bombs = await waitForEntries(attacker.feeds.json, 'json', 3, HANG_MS, 'the three nested messages');
      for (const bomb of bombs) {
        assert.ok(bomb.html.includes('x'), bomb.html.slice(0, 300));
        assert.ok(!bomb.html.includes('could not be processed'), bomb.html.slice(0, 300));
      }
    } finally {
      await server.stop();
    }
  });
});

describe('sanitizer bounds: ordinary mail is untouched', () => {
  const names = fs.readdirSync(new URL('./fixtures/', import.meta.url)).filter((f) => f.endsWith('.eml')).sort();

  it('sanitizes every fixture byte for byte as it did without the bounding pass', async () => {
    let withHtml = 0;
    for (const name of names) {
      const { html } = await parseMessage(fixture(name), { maxPartBytes: 25 * 1024 * 1024 });
      if (!html.trim()) continue;
      withHtml++;
      for (const options of [STRIP, KEEP]) {
        const before = sanitizeNewsletterHtml(html, { ...options, bounds: UNBOUNDED });
        const report = sanitizeNewsletterHtmlWithReport(html, options);
        assert.equal(report.flattened, false, name);
        assert.equal(report.html, before, name);
        // The rewriting used for flattened mail is itself faithful: written out again
        // (with nothing beyond bounds) a fixture sanitizes to the same bytes.
        assert.equal(sanitizeNewsletterHtml(boundMarkup(html, UNBOUNDED, { rewrite: true }).html, { ...options, bounds: UNBOUNDED }), before, `${name} rewritten`);
      }
    }
    assert.ok(withHtml >= 20, `only ${withHtml} fixtures with HTML`);
  });

  it('writes random tag soup out again so that it sanitizes to the same bytes', () => {
    const pieces = ['<p>', '</p>', '<div class="a&amp;b">', '</div>', '<table>', '<tr>', '<td>', '</td>', '</tr>', '</table>', '<li>', '<ul>',
      '</ul>', '<b>', '</b>', '<i>', '</I>', '<br>', '</br>', '<br/>', '<img src="https://x.example/a.png" width=1 height=1>', '<img src=cid:x>',
      '<style>a>b{c:d}</style>', '<style>', '<svg>', '</svg>', '<circle/>', '<title>t&amp;</title>', '<textarea>&lt;x</textarea>', '<script>x</script>',
      '<!-- c -->', '<![CDATA[x]]>', '<!DOCTYPE html>', 'text', ' &foo; ', '&amp;', '&lt;', '&nbsp;', '&amp;lt;', '<', '>', '&', '"', "'",
      '<a href="https://e.example/?a=1&b=2&amp;c">', '</a>', '<a href=javascript:x>', '<a name=n href=#top>', '<h1>', '<dd>', '<dt>', '<option>', '<select>',
      '<font color=red>', '</font>', '<span style="color:red;background:url(&quot;javascript:x&quot;)">', '</span>', '<x-y z=1>', '</x-y>', '<tbody>',
      '<tfoot>', '<th>', '<math>', '<mtext>', '</math>', '<xmp>', '</xmp>', '<noscript>', '</noscript>', '<div/>', '<p/>', '</ p>', '</>', '<a', ' b="c"',
      '<DIV ID=X TITLE=\'q"\' id=y>', '</DIV>', '<td nowrap>', '<img src=x onerror=alert(1)>', '<img src="https://t.example/open.gif">'];
    const rnd = prng(0xb0de);
    for (let i = 0; i < 3000; i++) {
      let html = '';
      for (let n = 1 + Math.floor(rnd() * 30); n > 0; n--) html += pieces[Math.floor(rnd() * pieces.length)];
      const rewritten = boundMarkup(html, UNBOUNDED, { rewrite: true });
      if (rewritten.selfClosedStyle) continue; // rewritten on purpose, see the <style/> test below
      for (const options of [STRIP, KEEP]) {
        const o = { ...options, bounds: UNBOUNDED };
        assert.equal(sanitizeNewsletterHtml(rewritten.html, o), sanitizeNewsletterHtml(html, o), html);
      }
    }
  });
});

describe('sanitizer bounds: flattening stays safe', () => {
  // A <style/> stays open in htmlparser2 while what follows is read as markup, and
  // sanitize-html copied its decoded text into the <style> unescaped.
  const selfClosedStyle = '<style/>&lt;/style&gt;&lt;img src=x onerror=alert(1)&gt;';

  it('keeps decoded text after a self-closed <style/> inside the style element', () => {
    for (const html of [selfClosedStyle, `<p>a</p>${selfClosedStyle}<p>b</p>`, `<table><tr><td>${selfClosedStyle}</td></tr></table>`]) {
      const out = sanitizeNewsletterHtml(html, STRIP);
      assert.deepEqual(unsafeConstructs(out), [], out);
      assert.equal(sanitizeNewsletterHtml(out, STRIP), out);
    }
  });

  // Small bounds take the same paths as the default ones, 400 times faster.
  const bounds: HtmlBounds = { maxDepth: 16, maxElements: 40 };
  const tight = { ...STRIP, bounds };
  /** Where a vector goes, and whether the wrapping alone is beyond the bounds. */
  const placements: [string, (v: string) => string, boolean][] = [
    ['beyond the depth cap', (v) => '<div>'.repeat(bounds.maxDepth + 10) + v + '</div>'.repeat(bounds.maxDepth + 10), true],
    // The vector's own element is the last one kept, what it holds is flattened.
    ['straddling the depth cap', (v) => '<div>'.repeat(bounds.maxDepth - 1) + v + '<b><i>z</i></b>' + '</div>'.repeat(bounds.maxDepth - 1), false],
    ['after the element cap', (v) => '<i></i>'.repeat(bounds.maxElements) + v + '<b>z</b>', false],
    ['unclosed beyond the cap', (v) => '<b>'.repeat(bounds.maxDepth + 5) + v, true],
  ];

  it('neutralizes every XSS vector wherever flattening happens', () => {
    for (const vector of [...XSS_VECTORS, selfClosedStyle]) {
      for (const [where, place, beyond] of placements) {
        const { html: out, flattened } = sanitizeNewsletterHtmlWithReport(place(vector), tight);
        if (beyond) assert.equal(flattened, true, `${vector} ${where}`);
        assert.deepEqual(unsafeConstructs(out), [], `${vector} ${where}: ${out.slice(-400)}`);
        assert.equal(sanitizeNewsletterHtml(out, tight), out, `${vector} ${where} is stable`);
      }
    }
    // And once with the real bounds.
    const deep = '<div>'.repeat(HTML_BOUNDS.maxDepth + 1) + XSS_VECTORS.join('');
    assert.deepEqual(unsafeConstructs(sanitizeNewsletterHtml(deep, STRIP)), []);
  });

  it('keeps the hostile fixtures safe when they are flattened almost entirely', async () => {
    const tightest = { ...STRIP, bounds: { maxDepth: 2, maxElements: 5 } };
    for (const name of ['hostile-css.eml', 'hostile-links.eml', 'hostile-parts.eml', 'hostile-script.eml']) {
      const { html } = await parseMessage(fixture(name), { maxPartBytes: 25 * 1024 * 1024 });
      const { html: out, flattened } = sanitizeNewsletterHtmlWithReport(html, tightest);
      assert.equal(flattened, true, name);
      assert.deepEqual(unsafeConstructs(out), [], `${name}: ${out}`);
      assert.deepEqual(unsafeConstructs(sanitizeNewsletterHtml(html, STRIP)), [], name);
    }
  });
});
