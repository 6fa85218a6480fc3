/**
 * Live updates (issue 11): open feed pages hear of new entries through server-sent events.
 *
 * The pub/sub goes through queue.db, which every process on the data directory shares:
 * whoever stores an entry records a notification (mail/ingest.ts), and each web process
 * runs one poller that reads the notifications after the last it saw — one range read of
 * the primary key every POLL_MS — and hands each to the open streams of its feed. The
 * poller runs only while at least one stream is open: an idle process does no database
 * work for live updates. Streams are bounded in all and per client network; a stream that
 * reconnects with Last-Event-ID is first sent what its feed missed (at most BACKLOG_MAX).
 */
import { LiveStreamsBusyError, ShuttingDownError } from '../errors.js';
import type { Logger } from '../log.js';
import type { LiveCounters } from '../ops/metrics.js';
import type { EntrySummary } from '../store/entries.js';
import type { Stores } from '../store/index.js';
import type { Notification } from '../store/notifications.js';

/** How often the poller reads new notifications while a stream is open. */
export const POLL_MS = 250;
/** A comment line this often keeps proxies and browsers from closing a quiet stream. */
export const HEARTBEAT_MS = 25_000;
/** Notifications a reconnecting stream is sent at most (the newest ones of its feed after its Last-Event-ID). */
export const BACKLOG_MAX = 50;
/** Notifications read per query; more are read at once when there are. */
const PAGE = 500;
/** A client that reads this little of its stream has its stream closed rather than buffered. */
const MAX_UNSENT_BYTES = 256 * 1024;

/** Where a stream's events go: the route writes them to its response. */
export interface LiveSink {
  entry(notificationId: number, entry: EntrySummary): void;
  comment(text: string): void;
  /** Bytes written but not yet taken by the client. */
  unsent(): number;
  close(): void;
}

interface Subscriber {
  feedId: number;
  feedToken: string;
  network: string | undefined;
  sink: LiveSink;
  lastSent: number;
  /** Until its backlog is sent, what the poller finds for it waits here. */
  buffer: { id: number; entry: EntrySummary }[] | null;
  closed: boolean;
}

export interface LiveStream {
  /**
   * Sends what the feed missed — after `lastEventId` (a reconnection), or else since `since`
   * (ms; a page that just loaded) — then lets the poller's events through.
   */
  start(lastEventId: number | undefined, since?: number): Promise<void>;
  /** Gives the slot back (the client went away); idempotent. */
  release(): void;
}

export interface LiveHubOptions {
  stores: Pick<Stores, 'app' | 'queue'>;
  counters: LiveCounters;
  log: Logger;
  maxStreams: number;
  maxStreamsPerNetwork: number;
  pollMs?: number;
  heartbeatMs?: number;
}

export class LiveHub {
  readonly #byFeed = new Map<number, Set<Subscriber>>();
  readonly #perNetwork = new Map<string, number>();
  #count = 0;
  /** The last notification id handed out; -1 while the poller has not read where to start. */
  #last = -1;
  #timer: NodeJS.Timeout | undefined;
  #heartbeat: NodeJS.Timeout | undefined;
  #polling = false;
  #closed = false;
  /** On PostgreSQL, a NOTIFY from any instance's new notification wakes the poller at once (the timer stays the fallback). */
  #listening: Promise<() => Promise<void>> | undefined;

  constructor(private readonly o: LiveHubOptions) {}

  #listen(): void {
    if (this.#listening || this.#closed) return;
    this.#listening = this.o.stores.queue.onNotifications(() => this.#wake()).catch((err: unknown) => {
      this.o.log.warn({ err }, 'live: unable to listen for new entries; polling only');
      return async () => undefined;
    });
  }

  /** Polls now instead of at the next tick, unless a poll is running or the hub is idle. */
  #wake(): void {
    if (!this.#timer) return;
    clearTimeout(this.#timer);
    this.#timer = undefined;
    void this.#poll();
  }

  get enabled(): boolean {
    return this.o.maxStreams > 0;
  }

  /**
   * Takes a stream slot for a feed, or throws LiveStreamsBusyError (503) at a cap. Synchronous,
   * so the route can refuse before it writes its headers.
   */
  open(feedId: number, feedToken: string, network: string | undefined, sink: LiveSink): LiveStream {
    if (this.#closed) throw new ShuttingDownError();
    if (this.#count >= this.o.maxStreams) {
      this.o.counters.refused++;
      throw new LiveStreamsBusyError();
    }
    if (network !== undefined && (this.#perNetwork.get(network) ?? 0) >= this.o.maxStreamsPerNetwork) {
      this.o.counters.refused++;
      throw new LiveStreamsBusyError(true);
    }
    const sub: Subscriber = { feedId, feedToken, network, sink, lastSent: 0, buffer: [], closed: false };
    let subs = this.#byFeed.get(feedId);
    if (!subs) this.#byFeed.set(feedId, subs = new Set());
    subs.add(sub);
    if (network !== undefined) this.#perNetwork.set(network, (this.#perNetwork.get(network) ?? 0) + 1);
    this.#count++;
    this.o.counters.openStreams = this.#count;
    this.#heartbeat ??= setInterval(() => this.#beat(), this.o.heartbeatMs ?? HEARTBEAT_MS).unref();
    return {
      start: async (lastEventId, since) => this.#start(sub, lastEventId, since),
      release: () => this.#release(sub),
    };
  }

  /** Ends every stream (shutdown) and refuses new ones; the poller stops. */
  close(): void {
    this.#closed = true;
    void this.#listening?.then((stop) => stop());
    for (const subs of [...this.#byFeed.values()]) {
      for (const sub of [...subs]) {
        sub.sink.close();
        this.#release(sub);
      }
    }
    this.#idle();
  }

  async #start(sub: Subscriber, lastEventId: number | undefined, since: number | undefined): Promise<void> {
    try {
      if (this.#last < 0) {
        this.#listen();
        // The first stream of a quiet process: where the poller starts is the newest notification now.
        const last = await this.o.stores.queue.lastNotificationId();
        this.o.counters.polls++;
        if (this.#last < 0 && this.#count > 0) this.#last = last;
      }
      if ((lastEventId !== undefined || since !== undefined) && !sub.closed) {
        const missed = lastEventId !== undefined
          ? await this.o.stores.queue.notificationsOfFeedAfter(sub.feedId, lastEventId, BACKLOG_MAX + 1)
          : await this.o.stores.queue.notificationsOfFeedSince(sub.feedId, since!, BACKLOG_MAX + 1);
        this.o.counters.polls++;
        // Only the newest BACKLOG_MAX: a page that was away longer gets those, and reloads for the rest.
        for (const n of missed.slice(-BACKLOG_MAX)) {
          const entry = await this.o.stores.app.entrySummaryOfFeed(n.feed_id, n.entry_id);
          if (entry) this.#send(sub, n.id, entry);
          sub.lastSent = Math.max(sub.lastSent, n.id);
        }
        sub.lastSent = Math.max(sub.lastSent, lastEventId ?? 0);
      }
    } finally {
      const waiting = sub.buffer ?? [];
      sub.buffer = null;
      for (const w of waiting) if (w.id > sub.lastSent) this.#send(sub, w.id, w.entry);
      this.#schedule();
    }
  }

  #release(sub: Subscriber): void {
    if (sub.closed) return;
    sub.closed = true;
    const subs = this.#byFeed.get(sub.feedId);
    subs?.delete(sub);
    if (subs?.size === 0) this.#byFeed.delete(sub.feedId);
    if (sub.network !== undefined) {
      const left = (this.#perNetwork.get(sub.network) ?? 1) - 1;
      if (left <= 0) this.#perNetwork.delete(sub.network);
      else this.#perNetwork.set(sub.network, left);
    }
    this.#count--;
    this.o.counters.openStreams = this.#count;
    if (this.#count === 0) this.#idle();
  }

  /** No stream left: no timer, no database work; the next stream reads where to start again. */
  #idle(): void {
    clearTimeout(this.#timer);
    clearInterval(this.#heartbeat);
    this.#timer = undefined;
    this.#heartbeat = undefined;
    this.#last = -1;
  }

  #schedule(): void {
    if (this.#timer || this.#polling || this.#count === 0 || this.#closed) return;
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      void this.#poll();
    }, this.o.pollMs ?? POLL_MS);
    this.#timer.unref();
  }

  async #poll(): Promise<void> {
    if (this.#count === 0 || this.#last < 0) return;
    this.#polling = true;
    try {
      for (;;) {
        const rows = await this.o.stores.queue.notificationsAfter(this.#last, PAGE);
        this.o.counters.polls++;
        for (const n of rows) {
          if (this.#last < 0) return; // went idle meanwhile
          this.#last = n.id;
          const subs = this.#byFeed.get(n.feed_id);
          if (subs?.size) await this.#dispatch(n, subs);
        }
        if (rows.length < PAGE) break;
      }
    } catch (err) {
      this.o.log.warn({ err }, 'live: unable to read new entry notifications');
    } finally {
      this.#polling = false;
      this.#schedule();
    }
  }

  async #dispatch(n: Notification, subs: Set<Subscriber>): Promise<void> {
    const feed = await this.o.stores.app.feedById(n.feed_id);
    const entry = feed ? await this.o.stores.app.entrySummaryOfFeed(n.feed_id, n.entry_id) : undefined;
    for (const sub of [...subs]) {
      // A deleted feed, or one whose URL was rotated: a stream opened with the old secret ends.
      if (!feed || feed.feed_token !== sub.feedToken) {
        sub.sink.close();
        this.#release(sub);
        continue;
      }
      if (!entry) continue; // deleted since it was stored
      if (sub.buffer) sub.buffer.push({ id: n.id, entry });
      else if (n.id > sub.lastSent) this.#send(sub, n.id, entry);
    }
  }

  #send(sub: Subscriber, id: number, entry: EntrySummary): void {
    if (sub.closed) return;
    if (sub.sink.unsent() > MAX_UNSENT_BYTES) {
      sub.sink.close();
      this.#release(sub);
      return;
    }
    sub.sink.entry(id, entry);
    sub.lastSent = id;
    this.o.counters.eventsSent++;
  }

  #beat(): void {
    for (const subs of this.#byFeed.values()) for (const sub of subs) sub.sink.comment('keep-alive');
  }
}
