/** A clock for the stores that runs with real time but can be set ahead or behind, so tests age rows through the store. */
import type { Clock } from '../../src/store/index.js';

export class TestClock implements Clock {
  /** Milliseconds added to the real time; negative writes rows "in the past". */
  offsetMs = 0;

  now(): number {
    return Date.now() + this.offsetMs;
  }

  /** Runs `work` with the clock `offsetMs` away from real time, then puts it back. */
  async at<T>(offsetMs: number, work: () => Promise<T>): Promise<T> {
    const before = this.offsetMs;
    this.offsetMs = offsetMs;
    try {
      return await work();
    } finally {
      this.offsetMs = before;
    }
  }
}
