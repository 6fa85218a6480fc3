/**
 * Security review 9, findings 7 and 8: open trackers that a size or a `background` attribute
 * used to carry past the filter, and forwarded-message CSS that escaped its scope.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { scopeCss } from '../src/mail/forwarded.js';
import { sanitizeNewsletterHtml } from '../src/mail/sanitize.js';

const STRIP = { keepTrackingPixels: false };
const KEEP = { keepTrackingPixels: true };

describe('open trackers (finding 8)', () => {
  it('a tiny sized image at a tracker path is removed', () => {
    for (const size of ['width="3" height="3"', 'width="4" height="4"', 'width="1" height="4"', 'style="width:3px;height:3px"']) {
      const out = sanitizeNewsletterHtml(`<p>hi</p><img src="https://esp.example/track/open?u=abc" ${size}>`, STRIP);
      assert.ok(!out.includes('esp.example'), `${size}: ${out}`);
      assert.ok(out.includes('<p>hi</p>'));
    }
  });

  it('a spacer or a real image at a tracker-looking path stays', () => {
    for (const size of ['width="20" height="1"', 'width="600" height="2"', 'width="5" height="5"', 'width="600"']) {
      const out = sanitizeNewsletterHtml(`<img src="https://cdn.example.com/pixel.gif" ${size}>`, STRIP);
      assert.ok(out.includes('https://cdn.example.com/pixel.gif'), `${size}: ${out}`);
    }
  });

  it('a background attribute at a tracker host or path is removed from tables, cells and the body', () => {
    const html = '<body background="https://x.list-manage.com/track/open.php?u=1"><table background="https://esp.example/track/open?u=2">'
      + '<tr><td background="https://sendgrid.net/wf/open?upn=3">a</td><th background="https://esp.example/pixel.gif?u=4">b</th></tr></table></body>';
    const out = sanitizeNewsletterHtml(html, STRIP);
    for (const host of ['list-manage', 'esp.example', 'sendgrid']) assert.ok(!out.includes(host), `${host}: ${out}`);
    assert.ok(out.includes('>a</td>') && out.includes('>b</th>'));
  });

  it('ordinary backgrounds stay, and trackers stay when the feed keeps them', () => {
    const html = '<body background="https://cdn.example.com/bg.png"><table background="https://cdn.example.com/t.png"><tr><td background="https://cdn.example.com/c.png">a</td></tr></table></body>';
    const out = sanitizeNewsletterHtml(html, STRIP);
    for (const file of ['bg.png', 't.png', 'c.png']) assert.ok(out.includes(`https://cdn.example.com/${file}`), `${file}: ${out}`);
    const kept = sanitizeNewsletterHtml('<table background="https://esp.example/track/open?u=2"><tr><td>a</td></tr></table><img src="https://esp.example/track/open?u=abc" width="3" height="3">', KEEP);
    assert.equal(kept.split('https://esp.example/track/open').length - 1, 2);
  });

  it('a HubSpot message keeps the images of its file manager and loses its open pixels, whatever their size', () => {
    const hubfs = 'https://hs-5555565.f.hubspotemail.net/hub/5555565/hubfs/VISUEL.png?width=1200&amp;upscale=true';
    const out = sanitizeNewsletterHtml(`<img alt="Summit" src="${hubfs}" width="600">`
      + '<img src="https://cGhbS04.na1.hubspotlinks.com/Cto/GD+113/cGhbS04/VWNdLj7" width="300" height="2">'
      + '<img src="https://t.hubspotemail.net/e1t/o/5/f18dQhb0S7" width="300" height="2">'
      + '<img src="https://x.hubspotemail.net/hub/abc/hubfs/open.gif" width="300" height="2">', STRIP);
    assert.ok(out.includes(hubfs), out);
    assert.equal(out.split('<img').length - 1, 1, out);
  });
});

describe('forwarded-message CSS stays in its message (finding 7)', () => {
  const scope = '[data-fm-message="1"]';

  it('@scope and other unknown block at-rules are dropped', () => {
    assert.equal(scopeCss('@scope (:root) { p.outer { color: red !important } } p{color:blue}', scope), `${scope} p{color:blue}`);
    assert.equal(scopeCss('@page { margin: 0 } @unknown x { a { b: c } } .x{y:1}', scope), `${scope} .x{y:1}`);
  });

  it('@starting-style is scoped like @media; font-face and keyframes are kept as they are', () => {
    assert.equal(scopeCss('@starting-style { p.outer { color: red } }', scope), `@starting-style{${scope} p.outer{ color: red }}`);
    assert.equal(scopeCss('@font-face{font-family:F} @keyframes k{from{a:1}to{a:2}} @-webkit-keyframes k{0%{a:1}}', scope),
      '@font-face{font-family:F}@keyframes k{from{a:1}to{a:2}}@-webkit-keyframes k{0%{a:1}}');
  });

  it('a string ends at an unescaped line break, as in CSS, so rules after it are scoped', () => {
    const css = 'x{a:"\n}\np.outer{color:red !important} div[data-fm-forward-head]{display:none !important}\ny{b:"}';
    const out = scopeCss(css, scope);
    assert.ok(out.includes(`${scope} p.outer{color:red !important}`), out);
    assert.ok(out.includes(`${scope} div[data-fm-forward-head]{display:none !important}`), out);
    assert.ok(!/(^|\})\s*p\.outer/.test(out), out);
    // An escaped line break continues the string.
    assert.equal(scopeCss('a[title="x\\\ny"]{c:1}', scope), `${scope} a[title="x\\\ny"]{c:1}`);
  });
});
