/**
 * The time the store writes into rows and compares them with. Injected, so tests
 * can age feeds, jobs and journal rows by moving a clock instead of writing SQL.
 */
export interface Clock {
  now(): number;
}

export const systemClock: Clock = { now: () => Date.now() };
