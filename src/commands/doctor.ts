/** `feedmail doctor`: the checks live in ops/doctor.ts; this prints them and sets the exit code. */
import type { Config } from '../config.js';
import { diagnose, doctorText } from '../ops/doctor.js';

export const DOCTOR_HELP = `Usage: feedmail doctor [--json] [settings]

Checks the data directory without starting anything: its filesystem (tmpfs,
overlay and network filesystems lose data or lock badly) and free space, the
SQLite version, each database's journal mode and WAL size, the job queue and
failed jobs, and the last backup. Every problem comes with what to do about it.

Safe to run while the server is running: the databases are opened read-only,
and a data directory without databases is reported, not created.

  --json   Print the report as JSON

Exits 0 when no problem was found, 1 otherwise.
Uses the data directory from FEEDMAIL_DATA_DIR / --data-dir.
`;

export async function runDoctor(config: Config, args: string[]): Promise<void> {
  const unknown = args.filter((a) => a !== '--json');
  if (unknown.length > 0) {
    process.stderr.write(`feedmail: unknown option "${unknown[0]}"; run "feedmail doctor --help"\n`);
    process.exitCode = 2;
    return;
  }
  const report = await diagnose(config);
  process.stdout.write(args.includes('--json') ? `${JSON.stringify(report, null, 2)}\n` : doctorText(report));
  process.exitCode = report.healthy ? 0 : 1;
}
