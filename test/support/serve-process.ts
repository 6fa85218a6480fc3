/** `feedmail serve` as a child process (node --import tsx src/cli.ts), for tests and benchmarks of --processes. */
import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { freePort, tempDir } from './helpers.js';
import { testDatabaseEnv } from './pg.js';

const REPO = fileURLToPath(new URL('../..', import.meta.url));

/** One JSON log line of the server (pino), as far as the tests read it. */
export interface LogLine {
  level: number;
  msg: string;
  pid?: number;
  worker?: number;
  /** The primary's lines about a worker carry the worker's pid here. */
  workerPid?: number;
  [key: string]: unknown;
}

export interface ServeProcess {
  child: ChildProcess;
  /** The process started: with --processes N, the primary. */
  pid: number;
  base: string;
  smtpPort: number;
  dataDir: string;
  /** Every log line so far. */
  logs: LogLine[];
  /** Resolves with the first log line (already seen or to come) that `match` accepts after the `after`-th line. */
  waitForLog(match: (line: LogLine) => boolean, timeoutMs?: number, after?: number): Promise<LogLine>;
  /** Resolves with the exit code once the process is gone. */
  exited: Promise<number | null>;
  /** SIGTERM, then the exit code. */
  stop(): Promise<number | null>;
}

/** `built`: run the compiled `dist/cli.js` (after `npm run build`) instead of the sources through tsx; `nodeArgs` go before it (e.g. --cpu-prof). */
export async function startServeProcess(options: { processes: number; env?: Record<string, string>; dataDir?: string; built?: boolean; nodeArgs?: string[] }): Promise<ServeProcess> {
  const dataDir = options.dataDir ?? tempDir();
  const [httpPort, smtpPort] = [await freePort(), await freePort()];
  const child = spawn(process.execPath, [...(options.nodeArgs ?? []), ...(options.built ? ['dist/cli.js'] : ['--import', 'tsx', 'src/cli.ts']), 'serve', '--processes', String(options.processes)], {
    cwd: REPO,
    env: {
      ...process.env,
      FEEDMAIL_DATA_DIR: dataDir,
      FEEDMAIL_HTTP_PORT: String(httpPort),
      FEEDMAIL_SMTP_PORT: String(smtpPort),
      FEEDMAIL_ALLOW_UNSAFE_STORAGE: 'true',
      FEEDMAIL_MIN_FREE_BYTES: '0',
      FEEDMAIL_LOG_LEVEL: 'info',
      ...(options.env?.FEEDMAIL_DATABASE_URL === undefined ? await testDatabaseEnv(dataDir) : {}),
      ...options.env,
    },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  const logs: LogLine[] = [];
  const watchers = new Set<() => void>();
  let tail = '';
  let buffer = '';
  child.stderr!.setEncoding('utf8');
  child.stderr!.on('data', (chunk: string) => {
    tail = (tail + chunk).slice(-4000);
    buffer += chunk;
    let i;
    while ((i = buffer.indexOf('\n')) >= 0) {
      const line = buffer.slice(0, i);
      buffer = buffer.slice(i + 1);
      if (!line.startsWith('{')) continue;
      try {
        logs.push(JSON.parse(line) as LogLine);
      } catch {
        // not a log line
      }
    }
    for (const w of watchers) w();
  });
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => {
    for (const w of watchers) w();
    resolve(code);
  }));
  const waitForLog = (match: (line: LogLine) => boolean, timeoutMs = 60_000, after = 0) => new Promise<LogLine>((resolve, reject) => {
    const timer = setTimeout(() => {
      watchers.delete(check);
      reject(new Error(`no matching log line within ${timeoutMs} ms; stderr tail:\n${tail}`));
    }, timeoutMs);
    function check() {
      const found = logs.slice(after).find(match);
      if (found) {
        clearTimeout(timer);
        watchers.delete(check);
        resolve(found);
      } else if (child.exitCode !== null || child.signalCode !== null) {
        clearTimeout(timer);
        watchers.delete(check);
        reject(new Error(`server exited (${child.exitCode ?? child.signalCode}); stderr tail:\n${tail}`));
      }
    }
    watchers.add(check);
    check();
  });
  const server: ServeProcess = {
    child, pid: child.pid!, base: `http://127.0.0.1:${httpPort}`, smtpPort, dataDir, logs, waitForLog, exited,
    stop: () => {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
      return exited;
    },
  };
  try {
    // One process: "web: listening"; several: the primary's "workers ready".
    await waitForLog((l) => l.msg === (options.processes > 1 ? 'cluster: workers ready; SIGHUP restarts them one at a time' : 'jobs: running'));
  } catch (err) {
    child.kill('SIGKILL');
    throw err;
  }
  return server;
}
