/**
 * Progress of long commands (backup, verify, restore, replay; reprocess may follow): a
 * cli-progress bar with counts, rate and time left when stderr is a terminal, plain log lines
 * (at most one every few seconds per step, and one when a step ends) when it is not.
 * Results go to stdout; progress goes to stderr, so piping a command's output stays clean.
 */
import cliProgress from 'cli-progress';
import { sizeText } from '../web/routes/manage-common.js';

export interface Progress {
  /** Starts a step of `total` units (bytes when the progress counts bytes). */
  step(label: string, total: number): void;
  /** How far the current step is. */
  update(done: number): void;
  /** Ends the current step (and the bar). */
  stop(): void;
}

export interface ProgressOptions {
  /** 'bytes' shows sizes (12.3 MB); otherwise counts followed by this word. */
  unit: string;
  stream?: NodeJS.WriteStream;
  /** Least time between two plain lines of one step. */
  lineEveryMs?: number;
}

function amount(n: number, unit: string): string {
  return unit === 'bytes' ? sizeText(Math.round(n)) : `${Math.round(n)} ${unit}`;
}

function duration(seconds: number): string {
  if (!Number.isFinite(seconds)) return 'unknown';
  if (seconds < 90) return `${Math.max(0, Math.round(seconds))} s`;
  if (seconds < 5400) return `${Math.round(seconds / 60)} min`;
  return `${(seconds / 3600).toFixed(1)} h`;
}

export function createProgress({ unit, stream = process.stderr, lineEveryMs = 5000 }: ProgressOptions): Progress {
  let label = '';
  let total = 0;
  let done = 0;
  let started = 0;
  let lastLine = 0;
  let active = false;
  const rate = () => done / Math.max(0.001, (Date.now() - started) / 1000);
  const payload = () => ({
    label, shown: amount(done, unit), totalShown: amount(total, unit),
    rateShown: `${amount(rate(), unit)}/s`, left: done > 0 ? duration((total - done) / rate()) : 'unknown',
  });

  if (stream.isTTY) {
    const bar = new cliProgress.SingleBar({
      stream, hideCursor: true, clearOnComplete: false, etaBuffer: 50,
      format: '{label} [{bar}] {percentage}% | {shown} of {totalShown} | {rateShown} | {left} left',
    }, cliProgress.Presets.shades_classic);
    return {
      step(l, t) {
        if (active) bar.stop();
        label = l; total = Math.max(t, 0); done = 0; started = Date.now(); active = true;
        bar.start(Math.max(total, 1), 0, payload());
      },
      update(d) {
        if (!active) return;
        done = d;
        bar.update(Math.min(d, Math.max(total, 1)), payload());
      },
      stop() {
        if (active) bar.stop();
        active = false;
      },
    };
  }
  const line = (final: boolean) => {
    const p = payload();
    stream.write(final
      ? `${label}: ${p.totalShown} done in ${duration((Date.now() - started) / 1000)}\n`
      : `${label}: ${p.shown} of ${p.totalShown} (${total > 0 ? Math.floor((100 * done) / total) : 0}%, ${p.rateShown}, ${p.left} left)\n`);
  };
  return {
    step(l, t) {
      if (active) line(true);
      label = l; total = Math.max(t, 0); done = 0; started = Date.now(); lastLine = started; active = true;
      stream.write(`${label}: ${amount(total, unit)}…\n`);
    },
    update(d) {
      if (!active) return;
      done = d;
      const now = Date.now();
      if (now - lastLine >= lineEveryMs && done < total) {
        lastLine = now;
        line(false);
      }
    },
    stop() {
      if (active) line(true);
      active = false;
    },
  };
}

/** Feeds a Progress from an operation that reports `{ step, done, total }` (see ops/backup.ts). */
export function followSteps(progress: Progress): (p: { step: string; done: number; total: number }) => void {
  let current: string | undefined;
  return (p) => {
    if (p.step !== current) {
      current = p.step;
      progress.step(p.step, p.total);
    }
    progress.update(p.done);
  };
}
