/**
 * Group commit: writes that arrive while the connection is busy, or in the same turn of the
 * event loop, are committed together in one transaction (one fsync), and each caller is
 * answered once that commit is done. There is no timer: a write that finds nothing running
 * starts at the next turn (setImmediate, after the I/O callbacks already due, so sessions
 * whose DATA ended together share a commit), and every write that arrives during a commit
 * goes into the next one. A lone write waits for nothing but that turn.
 *
 * A group whose commit fails (a full disk, say) is written again one item at a time, so one
 * item that cannot be written does not fail the others, and each caller gets the error of
 * its own write; nothing of a failed transaction is left behind (it is rolled back whole).
 */
export interface GroupCommitOptions<I, R> {
  /** Writes every item in one transaction, all or nothing; resolves with their results in order. */
  commitMany: (items: I[]) => Promise<R[]>;
  /** Writes one item on its own (a group of one, and the fallback after a failed group). */
  commitOne: (item: I) => Promise<R>;
  /** A group closes at this many items... */
  maxItems: number;
  /** ...or once it holds this much (by `sizeOf`), so no commit holds the event loop for long. */
  maxSize: number;
  sizeOf: (item: I) => number;
}

interface Waiting<I, R> {
  item: I;
  resolve: (result: R) => void;
  reject: (err: unknown) => void;
}

export class GroupCommit<I, R> {
  #waiting: Waiting<I, R>[] = [];
  #busy = false;
  /** Transactions committed, and the items they held (for /metrics: items per commit shows the grouping). */
  readonly stats = { commits: 0, items: 0 };

  constructor(private readonly options: GroupCommitOptions<I, R>) {}

  /** Resolves with the item's result once the transaction that holds it is committed. */
  submit(item: I): Promise<R> {
    return new Promise<R>((resolve, reject) => {
      this.#waiting.push({ item, resolve, reject });
      if (!this.#busy) {
        this.#busy = true;
        setImmediate(() => void this.#drain());
      }
    });
  }

  async #drain(): Promise<void> {
    try {
      while (this.#waiting.length > 0) {
        await this.#commit(this.#takeGroup());
        // One turn of the event loop: the replies of this group go out, and the writes that
        // arrived meanwhile (their sockets were read while the commit held the loop) join the next.
        if (this.#waiting.length > 0) await new Promise((resolve) => setImmediate(resolve));
      }
    } finally {
      this.#busy = false;
    }
  }

  #takeGroup(): Waiting<I, R>[] {
    const { maxItems, maxSize, sizeOf } = this.options;
    let n = 0;
    let size = 0;
    while (n < this.#waiting.length && n < maxItems && (n === 0 || size + sizeOf(this.#waiting[n]!.item) <= maxSize)) {
      size += sizeOf(this.#waiting[n]!.item);
      n++;
    }
    return this.#waiting.splice(0, n);
  }

  async #commit(group: Waiting<I, R>[]): Promise<void> {
    if (group.length > 1) {
      let results: R[] | undefined;
      try {
        results = await this.options.commitMany(group.map((w) => w.item));
      } catch {
        // Rolled back whole: each item is written again on its own below, and gets its own outcome.
      }
      if (results) {
        this.#count(group.length);
        group.forEach((w, i) => w.resolve(results[i]!));
        return;
      }
    }
    for (const w of group) {
      try {
        const result = await this.options.commitOne(w.item);
        this.#count(1);
        w.resolve(result);
      } catch (err) {
        w.reject(err);
      }
    }
  }

  #count(items: number): void {
    this.stats.commits++;
    this.stats.items += items;
  }
}

/** What writing one item came to: its value, or why it alone failed. */
export type Outcome<R> = { value: R } | { error: unknown };

/**
 * GroupCommit for writes that isolate their items themselves (a savepoint each): `write`
 * stores a group in one transaction and returns one outcome per item, in order, so an item
 * that fails costs only itself. When the transaction as a whole fails, each item is
 * written again alone (GroupCommit's fallback) and hears its own outcome.
 */
export function groupCommit<I, R>(write: (items: I[]) => Promise<Outcome<R>[]>, maxItems = 64): (item: I) => Promise<R> {
  const group = new GroupCommit<I, Outcome<R>>({
    commitMany: write,
    commitOne: async (item) => (await write([item]))[0] ?? { error: new Error('group commit: no outcome for an item') },
    maxItems,
    maxSize: Number.POSITIVE_INFINITY,
    sizeOf: () => 0,
  });
  return async (item) => {
    const outcome = await group.submit(item);
    if ('error' in outcome) throw outcome.error;
    return outcome.value;
  };
}
