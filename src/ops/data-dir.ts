/**
 * What a data directory holds (issue 13): no databases yet, the full set, or a partial set.
 * app.db and queue.db belong together (the journal's mail points at app.db's feeds);
 * cache.db only holds rendered feeds and is rebuilt when missing. `doctor` reports a partial
 * set, `serve` refuses to start without app.db beside queue.db, and the commands that work on existing data
 * (`backup`, `replay`) refuse a directory without databases.
 */
import fs from 'node:fs';
import path from 'node:path';

/** The databases that must exist together. */
export const REQUIRED_DATABASES = ['app.db', 'queue.db'] as const;

export type DataDirState =
  | { kind: 'empty' }
  | { kind: 'complete' }
  | { kind: 'partial'; present: string[]; missing: string[] };

export function dataDirState(dataDir: string): DataDirState {
  const present = REQUIRED_DATABASES.filter((f) => fs.existsSync(path.join(dataDir, f)));
  if (present.length === 0) return { kind: 'empty' };
  if (present.length === REQUIRED_DATABASES.length) return { kind: 'complete' };
  return { kind: 'partial', present, missing: REQUIRED_DATABASES.filter((f) => !present.includes(f)) };
}

export function partialDetail(state: { present: string[]; missing: string[] }): string {
  return `${state.missing.join(' and ')} missing beside ${state.present.join(' and ')}`;
}

export const PARTIAL_FIX = 'The files belong together: restore the data directory with "feedmail restore", or put back the files that were moved away. Do not start the server on a partial set.';

/**
 * Why a command that works on existing data (backup, replay) must not run on this
 * directory, or undefined when it holds app.db and queue.db.
 */
export function existingDataProblem(dataDir: string): string | undefined {
  const state = dataDirState(dataDir);
  if (state.kind === 'empty') {
    return `${dataDir} holds no feedmail data (no app.db or queue.db): check FEEDMAIL_DATA_DIR / --data-dir (and that the volume is mounted)`;
  }
  if (state.kind === 'partial') return `${dataDir} is incomplete: ${partialDetail(state)}. ${PARTIAL_FIX} ("feedmail doctor" checks it.)`;
  return undefined;
}

/**
 * Why `serve` must not start on this directory, or undefined: queue.db without app.db would
 * start a working but empty server (every feed gone). A missing queue.db beside app.db is
 * started on (a new, empty queue.db: the feeds are all there, the journal and pending jobs
 * are not); doctor still reports it.
 */
export function startDataProblem(dataDir: string): string | undefined {
  const state = dataDirState(dataDir);
  if (state.kind !== 'partial' || !state.missing.includes('app.db')) return undefined;
  return `refusing to start: ${dataDir} is incomplete: ${partialDetail(state)}, and starting would create an empty ${state.missing.join(' and ')}. `
    + 'Restore the data directory with "feedmail restore" (or put back the files that were moved away); "feedmail doctor" checks it.';
}
