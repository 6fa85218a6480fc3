/**
 * Group commit: calls that arrive while a group is being written, or in the same turn of
 * the event loop, are written together by one call of `write` (one transaction, one commit
 * and one fsync for all of them), and each caller hears its own outcome. A lone call is
 * written on the next turn of the event loop: no timer holds it back waiting for company.
 */

/** What writing one item came to: its value, or why it alone failed. */
export type Outcome<R> = { value: R } | { error: unknown };

interface Waiting<I, R> { item: I; resolve: (r: R) => void; reject: (err: unknown) => void }

/**
 * `write` stores a group and returns one outcome per item, in order; when it rejects, every
 * item of the group is rejected with its error (nothing of the group was written).
 */
export function groupCommit<I, R>(write: (items: I[]) => Promise<Outcome<R>[]>, maxGroup = 64): (item: I) => Promise<R> {
  let waiting: Waiting<I, R>[] = [];
  let busy = false;
  const flush = async () => {
    while (waiting.length > 0) {
      const group = waiting.slice(0, maxGroup);
      waiting = waiting.slice(group.length);
      try {
        const outcomes = await write(group.map((w) => w.item));
        group.forEach((w, i) => {
          const o = outcomes[i];
          if (o === undefined) w.reject(new Error('group commit: no outcome for an item'));
          else if ('error' in o) w.reject(o.error);
          else w.resolve(o.value);
        });
      } catch (err) {
        for (const w of group) w.reject(err);
      }
    }
    busy = false;
  };
  return (item: I) => new Promise<R>((resolve, reject) => {
    waiting.push({ item, resolve, reject });
    if (busy) return;
    busy = true;
    setImmediate(() => void flush());
  });
}
