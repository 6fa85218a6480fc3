// The entry page's body frame at the full height of the message, so that the page scrolls as
// one. The frame is sandboxed without scripts but keeps its origin (allow-same-origin), so this
// script, ours, can read the message document's height; nothing in the message can run.
// Re-measured when the frame loads, when an image in it loads, when the body changes size and
// when the window is resized. Without JavaScript the frame keeps the tall height of style.css.
(() => {
  const frame = document.querySelector('iframe.message');
  if (!frame) return;
  let observed = null;
  let observer = null;

  /** The height the message needs, plus a sideways scrollbar's when a wide layout has one. */
  function needed(doc) {
    const root = doc.documentElement;
    const scroller = doc.scrollingElement || root;
    const bar = Math.max(0, frame.contentWindow.innerHeight - scroller.clientHeight);
    return Math.max(root.scrollHeight, scroller.scrollHeight) + bar;
  }

  /**
   * `shrink`: measure from a zero height first, because a document is never shorter than its
   * frame (on a wider window the message gets shorter). The page's scroll position is kept.
   */
  function fit(shrink) {
    let doc;
    try {
      doc = frame.contentDocument;
    } catch {
      return;
    }
    if (!doc || !doc.documentElement || !doc.body) return;
    frame.classList.add('fitted');
    if (shrink) {
      const y = window.scrollY;
      frame.style.height = '0px';
      frame.style.height = `${needed(doc)}px`;
      window.scrollTo(window.scrollX, y);
      return;
    }
    const height = needed(doc);
    if (Math.abs(height - frame.clientHeight) > 1) frame.style.height = `${height}px`;
  }

  function watch() {
    const doc = frame.contentDocument;
    if (!doc || !doc.body) return;
    // Images (and anything else that loads) inside the message: 'load' does not bubble, so capture it.
    doc.addEventListener('load', () => fit(false), true);
    doc.addEventListener('error', () => fit(false), true);
    if (typeof window.ResizeObserver === 'function' && observed !== doc.body) {
      if (observer) observer.disconnect();
      observer = new window.ResizeObserver(() => fit(false));
      observer.observe(doc.body);
      observed = doc.body;
    }
    fit(true);
  }

  frame.addEventListener('load', watch);
  // The frame may have loaded before this deferred script ran.
  if (frame.contentDocument && frame.contentDocument.readyState === 'complete' && frame.contentDocument.URL !== 'about:blank') watch();
  let width = window.innerWidth;
  window.addEventListener('resize', () => {
    // Only a change of width changes the message's height (a phone's toolbar changes the height).
    if (window.innerWidth === width) return;
    width = window.innerWidth;
    fit(true);
  });
})();
