/** When mail sent to a benchmark's server has become entries. */

/**
 * True once `subject` is in the feed's JSON document and /metrics shows no job ready or
 * claimed. A keep-alive connection the server closed in between fails one poll (false);
 * the next one reconnects.
 */
export async function lastEntryVisible(base: string, jsonFeedUrl: string, subject: string): Promise<boolean> {
  const [doc, metrics] = await Promise.all([fetch(jsonFeedUrl).then((r) => r.text()), fetch(`${base}/metrics`).then((r) => r.text())]).catch(() => ['', '']);
  if (!metrics) return false;
  const pending = [...metrics.matchAll(/^feedmail_jobs\{state="(ready|claimed)"\} (\d+)/gm)].reduce((n, m) => n + Number(m[2]), 0);
  return pending === 0 && doc.includes(subject);
}
