// Live updates on a feed page: a newly mailed entry is added to the top of the list as soon as
// it is stored, through server-sent events. Without JavaScript (or EventSource) the page is as
// before: reload it to see new mail. Everything from the server is set as text, never as HTML.
(() => {
  const list = document.getElementById('entries');
  const url = list && list.dataset.events;
  if (!url || typeof EventSource !== 'function') return;
  const status = document.getElementById('live-status');
  // Entries the page already lists (the stream may repeat those stored while the page loaded).
  const seen = new Set(Array.from(list.querySelectorAll('a.subject'), (a) => a.href));
  const source = new EventSource(url);
  source.addEventListener('entry', (event) => {
    let entry;
    try {
      entry = JSON.parse(event.data);
    } catch {
      return;
    }
    if (!entry || typeof entry.url !== 'string') return;
    let href;
    try {
      href = new URL(entry.url, location.href);
    } catch {
      return;
    }
    if ((href.protocol !== 'http:' && href.protocol !== 'https:') || seen.has(href.href)) return;
    seen.add(href.href);
    const item = document.createElement('li');
    item.className = 'live-new';
    const link = document.createElement('a');
    link.className = 'subject';
    link.href = href.href;
    link.textContent = String(entry.subject || '(no subject)');
    const meta = document.createElement('span');
    meta.className = 'meta';
    meta.textContent = `${String(entry.from || '')} · ${new Date(Number(entry.received_at)).toUTCString()}`;
    item.append(link, '\n', meta);
    list.prepend(item);
    list.hidden = false;
    const empty = document.getElementById('no-mail');
    if (empty) empty.remove();
    if (status) status.textContent = `New: ${link.textContent}`;
  });
})();
