/** When mail sent to a benchmark's server has become entries. */

/**
 * True once the server has stored `stored` messages in all: its own count of messages from
 * journal to entry (`feedmail_mail_to_entry_seconds_count` on /metrics). An entry is in its
 * feed's next document from the moment it is stored (the feed version changes in the same
 * transaction). Looking for the last message's subject in the document is not enough: over
 * several connections, the message sent last is not the one stored last, and it can be
 * beyond the newest 50 entries that the document shows. A keep-alive connection the server
 * closed in between fails one poll (false); the next one reconnects.
 */
export async function allStored(base: string, stored: number): Promise<boolean> {
  const metrics = await fetch(`${base}/metrics`).then((r) => r.text()).catch(() => '');
  const m = /^feedmail_mail_to_entry_seconds_count (\d+)/m.exec(metrics);
  return m !== null && Number(m[1]) >= stored;
}
