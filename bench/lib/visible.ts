/** When mail sent to a benchmark's server has become entries. */

/**
 * True once the server has stored `stored` messages in all (its own count of messages from
 * journal to entry, `feedmail_mail_to_entry_seconds_count` on /metrics) and `subject` is in
 * the feed's JSON document. (Counting ready jobs instead never settles: a recurring task
 * scheduled for later is a ready job too.) A keep-alive connection the server closed in
 * between fails one poll (false); the next one reconnects.
 */
export async function lastEntryVisible(base: string, jsonFeedUrl: string, subject: string, stored: number): Promise<boolean> {
  const [doc, metrics] = await Promise.all([fetch(jsonFeedUrl).then((r) => r.text()), fetch(`${base}/metrics`).then((r) => r.text())]).catch(() => ['', '']);
  const m = /^feedmail_mail_to_entry_seconds_count (\d+)/m.exec(metrics);
  return m !== null && Number(m[1]) >= stored && doc.includes(subject);
}
