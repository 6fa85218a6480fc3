#!/usr/bin/env node
/** Subcommands. Parses arguments and hands over; the work lives in app.ts and the modules it wires. */
import cluster from 'node:cluster';
import { loadConfig, settingsHelp, splitFlags, type Config } from './config.js';
import { startApp, preflight } from './app.js';
import { ConfigError, messageWithCauses, StartupError, StoreError } from './errors.js';
import { DOCTOR_HELP, runDoctor } from './commands/doctor.js';
import { createLogger, type Logger } from './log.js';
import { DELIVER_HELP, EX_TEMPFAIL, runDeliver } from './commands/deliver.js';
import { joinCluster, runPrimary } from './ops/cluster.js';
import { processPoolFor } from './mail/process-pool.js';
import { reprocessEntries } from './mail/reprocess.js';
import { openStores } from './store/index.js';
import { feedmailVersion } from './ops/backup.js';
import { BACKUP_HELP, runBackup, UsageError } from './commands/backup.js';
import { LITESTREAM_CONFIG_HELP, runLitestreamConfig } from './commands/litestream-config.js';
import { REPLAY_HELP, runReplay } from './commands/replay.js';
import { RESTORE_HELP, runRestore } from './commands/restore.js';
import { COPY_DB_HELP, runCopyDb } from './commands/copy-db.js';

const USAGE = `feedmail: newsletters in, feeds out

Usage: feedmail <command> [options]

Commands:
  serve        Run the web server, the SMTP server and the job workers (what npm start runs)
  worker       Run only job workers, in a separate process, against the same data directory
  jobs         List failed jobs, retry them or discard them
  reprocess    Reprocess every stored entry from its raw message (after the sanitizer improved)
  search-index Check the full-text search index against the entries, or rebuild it
  doctor       Check the data directory, databases, queue and backups, and say what to fix
  deliver      Journal one message read on standard input (for a mail server on the same host)
  backup       Take a snapshot of the databases (to a directory or S3), list or verify snapshots
  restore      Restore the newest snapshot (at or before a time) into the data directory
  replay       Store again the journaled mail received since a time (after a restore)
  litestream-config  Write a litestream.yml for continuous replication with Litestream
  copy-db      Copy all data between SQLite and PostgreSQL (or SQLite to SQLite), resumably, and verify it
  help         Show this help

Run "feedmail <command> --help" for the options of a command.

${settingsHelp()}
`;

const COMMAND_HELP: Record<string, string> = {
  serve: `Usage: feedmail serve [settings]

Serves the web pages and feeds over HTTP, receives mail over SMTP and runs the
background jobs, all in one process. Stop it with Ctrl+C or SIGTERM: it stops
accepting new mail (421), finishes requests and jobs in flight, then exits.
SIGHUP reads the STARTTLS certificate and key (FEEDMAIL_SMTP_TLS_CERT/KEY) again.

With --processes N (2 or more) a primary process holds the ports and runs N worker
processes; "kill -HUP <primary pid>" replaces them one at a time without dropping
a request or a message (each new worker reads the STARTTLS certificate and key
afresh), and a worker that dies is restarted.

${settingsHelp()}
`,
  worker: `Usage: feedmail worker [settings]

Runs job workers only (no HTTP, no SMTP), against the data directory given by
FEEDMAIL_DATA_DIR / --data-dir. Any number of workers can run next to
"feedmail serve"; each job and each recurring slot runs once.

${settingsHelp()}
`,
  jobs: `Usage: feedmail jobs [list | retry <id>... | retry --all | discard <id>... | discard --all] [settings]

  list             Show failed jobs with their error (the default)
  retry <id>...    Put failed jobs back in the queue with a fresh attempt budget
  retry --all      Retry every failed job
  discard <id>...  Delete failed jobs for good
  discard --all    Delete every failed job

Uses the data directory from FEEDMAIL_DATA_DIR / --data-dir.
`,
  reprocess: `Usage: feedmail reprocess [settings]

Parses and sanitizes every stored entry again from its raw message, keeping its
share link. Run it after upgrading feedmail to apply sanitizer improvements.
Safe to run while the server is running. Prints progress as it goes.

Uses the data directory from FEEDMAIL_DATA_DIR / --data-dir.
`,
  'search-index': `Usage: feedmail search-index [check | rebuild] [settings]

  check     Compare the search index with the entries it is made from (the default);
            exits 1 when they differ
  rebuild   Build the index again from every entry

The index follows every new, changed and deleted entry by itself, and the upgrade that
introduced it indexed the entries stored before. Rebuild it only when "check" finds it
out of step (after rows were edited by hand with the sqlite3 shell, say). Safe to run
while the server is running: writes wait for the rebuild, which takes a second or two
per 10,000 entries.

Uses the data directory from FEEDMAIL_DATA_DIR / --data-dir.
`,
  doctor: DOCTOR_HELP,
  deliver: DELIVER_HELP,
  backup: BACKUP_HELP,
  restore: RESTORE_HELP,
  replay: REPLAY_HELP,
  'litestream-config': LITESTREAM_CONFIG_HELP,
  'copy-db': COPY_DB_HELP,
};

function fail(message: string, exitCode = 1): never {
  process.stderr.write(`feedmail: ${message}\n`);
  process.exit(exitCode);
}

async function serve(config: Config, log: Logger, roles: { web: boolean; smtp: boolean; jobs: boolean }): Promise<void> {
  const app = await startApp(config, log, roles);
  if (app.http) log.info({ url: `http://${app.http.address}:${app.http.port}` }, 'web: listening');
  if (app.smtp) log.info({ host: app.smtp.address, port: app.smtp.port, domains: config.mailDomains }, 'smtp: listening');
  if (roles.jobs) log.info({ concurrency: config.workerConcurrency, dataDir: config.dataDir }, 'jobs: running');
  process.stderr.write(roles.web
    ? `feedmail is running: open ${config.baseUrl || `http://${config.httpHost}:${app.http?.port}`}/ to create a feed; SMTP on ${app.smtp?.address}:${app.smtp?.port}\n`
    : `feedmail worker is running on ${config.dataDir}\n`);
  // A worker of `serve --processes N` tells its primary it is ready, and drains when told to.
  joinCluster(app, log);
  let stopping = false;
  const shutdown = (signal: string) => {
    if (stopping) return;
    stopping = true;
    log.info({ signal }, 'shutting down');
    app.stop().then(() => process.exit(0), (err: unknown) => {
      log.error({ err }, 'shutdown failed');
      process.exit(1);
    });
  };
  process.on('SIGTERM', () => shutdown('SIGTERM'));
  process.on('SIGINT', () => shutdown('SIGINT'));
  if (roles.smtp) process.on('SIGHUP', () => app.reloadCertificates());
}

async function jobsCommand(config: Config, args: string[]): Promise<void> {
  const [action = 'list', ...rest] = args;
  const stores = openStores(config.dataDir, { databaseUrl: config.databaseUrl, walMaxBytes: config.walMaxBytes });
  try {
    const all = rest.includes('--all');
    const ids = rest.filter((a) => a !== '--all').map((a) => {
      if (!/^\d+$/.test(a)) fail(`"${a}" is not a job id; run "feedmail jobs list" to see the ids`, 2);
      return Number(a);
    });
    if (action === 'list') {
      const failed = await stores.queue.jobsInState('failed');
      if (failed.length === 0) {
        process.stdout.write('No failed jobs.\n');
        return;
      }
      for (const j of failed) {
        const firstLine = (j.last_error ?? '').split('\n')[0];
        process.stdout.write(`#${j.id}  ${j.task}  attempts ${j.attempts}/${j.max_attempts}  failed ${new Date(j.updated_at).toISOString()}\n    ${firstLine}\n`);
      }
      process.stdout.write(`${failed.length} failed job(s). Retry with "feedmail jobs retry <id>" or "--all".\n`);
    } else if (action === 'retry' || action === 'discard') {
      if (!all && ids.length === 0) fail(`say which jobs to ${action}: "feedmail jobs ${action} <id>..." or "--all"`, 2);
      const n = action === 'retry'
        ? await stores.queue.retryFailedJobs(all ? undefined : ids)
        : await stores.queue.discardFailedJobs(all ? undefined : ids);
      process.stdout.write(`${action === 'retry' ? 'Retried' : 'Discarded'} ${n} job(s).\n`);
      if (!all && n < ids.length) process.stdout.write(`${ids.length - n} id(s) were not failed jobs.\n`);
    } else {
      fail(`unknown jobs action "${action}"; see "feedmail jobs --help"`, 2);
    }
  } finally {
    await stores.close();
  }
}

async function reprocess(config: Config, log: Logger): Promise<void> {
  preflight(config);
  const stores = openStores(config.dataDir, { databaseUrl: config.databaseUrl, walMaxBytes: config.walMaxBytes });
  const processor = processPoolFor(config);
  try {
    const r = await reprocessEntries(stores.app, processor, (p) => {
      process.stderr.write(p.done === 0 ? `reprocessing ${p.total} entr${p.total === 1 ? 'y' : 'ies'}…\n` : `reprocessed ${p.done} of ${p.total}…\n`);
    });
    process.stdout.write(`Reprocessed ${r.done} entr${r.done === 1 ? 'y' : 'ies'}${r.skipped ? `, skipped ${r.skipped} without a raw message` : ''}.\n`);
    log.info({ done: r.done, skipped: r.skipped }, 'reprocess finished');
  } finally {
    await processor.close();
    await stores.close();
  }
}

async function searchIndexCommand(config: Config, args: string[]): Promise<void> {
  const [action = 'check', ...extra] = args;
  if (extra.length > 0 || (action !== 'check' && action !== 'rebuild')) fail(`unknown search-index action "${[action, ...extra].join(' ')}"; see "feedmail search-index --help"`, 2);
  const stores = openStores(config.dataDir, { databaseUrl: config.databaseUrl, walMaxBytes: config.walMaxBytes });
  try {
    const entries = await stores.app.countAllEntries();
    if (action === 'rebuild') {
      process.stderr.write(`rebuilding the search index of ${entries} entr${entries === 1 ? 'y' : 'ies'}…\n`);
      const started = Date.now();
      await stores.app.rebuildSearchIndex();
      process.stdout.write(`Rebuilt the search index of ${entries} entr${entries === 1 ? 'y' : 'ies'} in ${((Date.now() - started) / 1000).toFixed(1)} s.\n`);
      return;
    }
    process.stderr.write(`checking the search index of ${entries} entr${entries === 1 ? 'y' : 'ies'}…\n`);
    const problem = await stores.app.checkSearchIndex();
    if (problem === undefined) {
      process.stdout.write('The search index matches the entries.\n');
      return;
    }
    process.stdout.write(`The search index does not match the entries (${problem}). Run "feedmail search-index rebuild".\n`);
    process.exitCode = 1;
  } finally {
    await stores.close();
  }
}

async function main(argv: string[]): Promise<void> {
  // Output that cannot be written (redirected to a full disk, a closed pipe) is lost; a
  // server must not die of it with an unhandled 'error' event.
  for (const stream of [process.stdout, process.stderr]) stream.on('error', () => undefined);
  const [command = 'help', ...args] = argv;
  if (command === 'help' || command === '--help' || command === '-h') {
    process.stdout.write(USAGE);
    return;
  }
  if (command === '--version' || command === '-v') {
    process.stdout.write(`feedmail ${feedmailVersion()}\n`);
    return;
  }
  if (!(command in COMMAND_HELP)) fail(`unknown command "${command}"; run "feedmail --help" for the list`, 2);
  if (args.includes('--help') || args.includes('-h')) {
    process.stdout.write(COMMAND_HELP[command]!);
    return;
  }
  let config: Config;
  let rest: string[];
  try {
    const split = splitFlags(args);
    rest = split.rest;
    config = loadConfig(process.env, split.flags);
  } catch (err) {
    // A mail server keeps a message whose delivery command exits EX_TEMPFAIL, and tries again once the settings are fixed.
    if (err instanceof ConfigError) fail(`${err.message}\nRun "feedmail ${command} --help" for the settings and what they allow.`, command === 'deliver' ? EX_TEMPFAIL : 2);
    throw err;
  }
  const log = createLogger(config.logLevel);
  if (!['jobs', 'search-index', 'doctor', 'deliver', 'backup', 'restore', 'replay', 'litestream-config', 'copy-db'].includes(command) && rest.length > 0) fail(`unknown option "${rest[0]}"; run "feedmail ${command} --help"`, 2);
  try {
    if (command === 'serve' && config.processes > 1 && cluster.isPrimary) await runPrimary(config, log);
    else if (command === 'serve') await serve(config, log, { web: true, smtp: true, jobs: true });
    else if (command === 'worker') await serve(config, log, { web: false, smtp: false, jobs: true });
    else if (command === 'jobs') await jobsCommand(config, rest);
    else if (command === 'reprocess') await reprocess(config, log);
    else if (command === 'search-index') await searchIndexCommand(config, rest);
    else if (command === 'doctor') await runDoctor(config, rest);
    else if (command === 'deliver') process.exitCode = await runDeliver(config, log, rest);
    else if (command === 'backup') process.exitCode = await runBackup(config, log, rest);
    else if (command === 'restore') process.exitCode = await runRestore(config, log, rest);
    else if (command === 'replay') process.exitCode = await runReplay(config, log, rest);
    else if (command === 'litestream-config') process.exitCode = await runLitestreamConfig(config, rest);
    else if (command === 'copy-db') process.exitCode = await runCopyDb(config, log, rest);
  } catch (err) {
    if (err instanceof UsageError) fail(err.message, 2);
    if (err instanceof StartupError) fail(err.message);
    // PostgreSQL refused or unreachable: its own reason (wrong password, no such database,
    // connection refused), in one line and without the password or a stack trace.
    if (err instanceof StoreError && config.databaseUrl) fail(`${messageWithCauses(err)}\nCheck FEEDMAIL_DATABASE_URL (${withoutPassword(config.databaseUrl)}: host, port, database, user, password) and that PostgreSQL runs; "feedmail doctor" checks the connection.`);
    if ((err as NodeJS.ErrnoException).code === 'EADDRINUSE') {
      fail(`${(err as Error).message}: another program uses that port; choose another with FEEDMAIL_HTTP_PORT / FEEDMAIL_SMTP_PORT`);
    }
    throw err;
  }
}

main(process.argv.slice(2)).catch((err: unknown) => {
  process.stderr.write(`feedmail: ${(err as Error)?.stack ?? String(err)}\n`);
  process.exit(1);
});

/** A database URL for messages: its password replaced. */
function withoutPassword(url: string): string {
  try {
    const u = new URL(url);
    if (u.password) u.password = '***';
    return u.toString();
  } catch {
    return 'the URL';
  }
}
