// "My feeds" (issue 11): this browser remembers the feeds it created, in localStorage only.
// Nothing of the list is ever sent to the server: the home page reads each feed's own
// JSON Feed (same origin) to show its latest entry, and OPML is built here, as a Blob.
// The inbox address is never stored; the manage link only when the user ticks the box.
(() => {
  const KEY = 'feedmail.myFeeds';

  function load() {
    try {
      const list = JSON.parse(localStorage.getItem(KEY) || '[]');
      return Array.isArray(list) ? list.filter((f) => f && typeof f.atom === 'string' && typeof f.page === 'string') : [];
    } catch {
      return [];
    }
  }

  function save(list) {
    try {
      localStorage.setItem(KEY, JSON.stringify(list));
      return true;
    } catch {
      return false;
    }
  }

  function sameOrigin(url) {
    try {
      return new URL(url, location.href).origin === location.origin;
    } catch {
      return false;
    }
  }

  // The created page: remember the new feed.
  const created = document.getElementById('my-feed');
  if (created) {
    const d = created.dataset;
    const feed = { title: d.title || '', page: d.page, atom: d.atom, json: d.json, created: Date.now() };
    const list = load().filter((f) => f.atom !== feed.atom);
    list.unshift(feed);
    if (!save(list)) return;
    created.hidden = false;
    const box = document.getElementById('remember-manage');
    const manage = document.getElementById('manage');
    if (box && manage) {
      box.addEventListener('change', () => {
        const now = load();
        const mine = now.find((f) => f.atom === feed.atom);
        if (!mine) return;
        if (box.checked) mine.manage = manage.value;
        else delete mine.manage;
        save(now);
      });
    }
  }

  // The home page: list the remembered feeds.
  const section = document.getElementById('my-feeds');
  if (!section) return;
  const listEl = section.querySelector('ul');
  const exportButton = section.querySelector('button.export');

  function el(tag, cls, text) {
    const e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined) e.textContent = text;
    return e;
  }

  async function latest(feed, into) {
    if (!sameOrigin(feed.json)) {
      into.textContent = 'Latest entry unavailable here.';
      return;
    }
    try {
      const res = await fetch(feed.json, { headers: { Accept: 'application/feed+json' }, credentials: 'omit', cache: 'no-store' });
      if (res.status === 404 || res.status === 410) {
        into.textContent = 'This feed no longer exists (deleted, or its feed URL was changed).';
        return;
      }
      if (!res.ok) throw new Error(String(res.status));
      const doc = await res.json();
      const item = Array.isArray(doc.items) ? doc.items[0] : undefined;
      if (!item) {
        into.textContent = 'No entries yet.';
        return;
      }
      into.textContent = 'Latest: ';
      const subject = el('span', 'latest-subject', typeof item.title === 'string' && item.title ? item.title : '(no subject)');
      into.append(subject);
      const when = new Date(item.date_published);
      if (!Number.isNaN(when.getTime())) {
        const time = el('time', null, when.toLocaleString());
        time.dateTime = when.toISOString();
        into.append(' · ', time);
      }
    } catch {
      into.textContent = 'Latest entry could not be loaded.';
    }
  }

  function render() {
    const list = load();
    listEl.replaceChildren();
    section.hidden = list.length === 0;
    for (const feed of list) {
      const li = el('li');
      const link = el('a', 'subject', feed.title || 'Untitled feed');
      link.href = sameOrigin(feed.page) ? feed.page : '#';
      li.append(link);
      const info = el('span', 'meta latest', 'Loading the latest entry…');
      li.append(info);
      const actions = el('div', 'my-feed-actions');
      if (typeof feed.manage === 'string' && sameOrigin(feed.manage)) {
        const manage = el('a', null, 'Manage');
        manage.href = feed.manage;
        actions.append(manage, ' ');
      }
      const remove = el('button', 'secondary remove', 'Remove from this list');
      remove.type = 'button';
      remove.addEventListener('click', () => {
        save(load().filter((f) => f.atom !== feed.atom));
        render();
      });
      actions.append(remove);
      li.append(actions);
      listEl.append(li);
      void latest(feed, info);
    }
  }

  function xml(s) {
    return String(s).replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&apos;' })[c])
      // Characters XML 1.0 cannot carry at all.
      .replace(/[\u0000-\u0008\u000b\u000c\u000e-\u001f\ufffe\uffff]/g, '');
  }

  function opml(list) {
    const lines = [
      '<?xml version="1.0" encoding="UTF-8"?>',
      '<opml version="2.0">',
      '<head>',
      '<title>My feedmail feeds</title>',
      `<dateCreated>${new Date().toUTCString()}</dateCreated>`,
      '</head>',
      '<body>',
    ];
    for (const f of list) {
      const title = xml(f.title || 'feedmail feed');
      lines.push(`<outline type="rss" text="${title}" title="${title}" xmlUrl="${xml(f.atom)}" htmlUrl="${xml(f.page)}"/>`);
    }
    lines.push('</body>', '</opml>', '');
    return lines.join('\n');
  }

  exportButton.addEventListener('click', () => {
    const blob = new Blob([opml(load())], { type: 'text/x-opml;charset=utf-8' });
    const url = URL.createObjectURL(blob);
    const a = document.createElement('a');
    a.href = url;
    a.download = 'feedmail-feeds.opml';
    document.body.append(a);
    a.click();
    a.remove();
    setTimeout(() => URL.revokeObjectURL(url), 10_000);
  });

  render();
  // Another tab created or removed a feed.
  window.addEventListener('storage', (e) => { if (e.key === KEY) render(); });
})();
