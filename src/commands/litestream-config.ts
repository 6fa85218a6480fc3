/** `feedmail litestream-config`: a litestream.yml for the databases that matter (issue 13; docs/operations.md). */
import fs from 'node:fs';
import path from 'node:path';
import type { Config } from '../config.js';
import { isS3Url } from '../ops/backup-target.js';
import { BACKED_UP } from '../ops/backup.js';
import { checkedTarget, takeOption, UsageError } from './backup.js';

export const LITESTREAM_CONFIG_HELP = `Usage: feedmail litestream-config [--to <dir | s3://bucket/prefix>] [--out <file | ->] [--force] [settings]

Writes a Litestream configuration (default: ./litestream.yml) that replicates app.db and
queue.db of the data directory continuously. cache.db is left out: it is rebuilt on demand.

  --to     Where Litestream replicates to (default: FEEDMAIL_BACKUP_TO with /litestream added)
  --out    The file to write, or - for stdout (default: litestream.yml)
  --force  Overwrite an existing file

For s3:// the endpoint, region and path style come from the FEEDMAIL_S3_* settings; the
credentials are not written into the file: it refers to the environment variables
FEEDMAIL_S3_ACCESS_KEY_ID and FEEDMAIL_S3_SECRET_ACCESS_KEY, which Litestream expands.

Run feedmail under Litestream with FEEDMAIL_LITESTREAM=true, so feedmail leaves WAL
truncation to Litestream:
  litestream replicate -config litestream.yml -exec "feedmail serve"
See docs/operations.md for restoring at boot and when to prefer snapshots.
`;

function yamlString(s: string): string {
  return JSON.stringify(s);
}

export function litestreamYaml(config: Config, to: string): string {
  const lines = [
    '# Written by "feedmail litestream-config". Run feedmail with FEEDMAIL_LITESTREAM=true under',
    '#   litestream replicate -config litestream.yml -exec "feedmail serve"',
    '# cache.db is not replicated: feedmail rebuilds it on demand.',
    'dbs:',
  ];
  for (const { name } of BACKED_UP) {
    lines.push(`  - path: ${yamlString(path.join(config.dataDir, name))}`, '    replicas:');
    if (isS3Url(to)) {
      const m = /^s3:\/\/([^/]+)\/?(.*)$/.exec(to)!;
      const prefix = m[2]!.replace(/\/+$/, '');
      lines.push('      - type: s3', `        bucket: ${yamlString(m[1]!)}`, `        path: ${yamlString(prefix ? `${prefix}/${name}` : name)}`,
        `        region: ${yamlString(config.s3Region)}`);
      if (config.s3Endpoint) lines.push(`        endpoint: ${yamlString(config.s3Endpoint)}`);
      if (config.s3ForcePathStyle) lines.push('        force-path-style: true');
      if (config.s3AccessKeyId) {
        lines.push('        access-key-id: ${FEEDMAIL_S3_ACCESS_KEY_ID}', '        secret-access-key: ${FEEDMAIL_S3_SECRET_ACCESS_KEY}');
      }
    } else {
      lines.push('      - type: file', `        path: ${yamlString(path.join(path.resolve(to), name))}`);
    }
  }
  return `${lines.join('\n')}\n`;
}

export async function runLitestreamConfig(config: Config, argv: string[]): Promise<number> {
  const args = [...argv];
  const force = args.includes('--force');
  if (force) args.splice(args.indexOf('--force'), 1);
  const toArg = takeOption(args, '--to');
  const out = takeOption(args, '--out') ?? 'litestream.yml';
  if (args.length > 0) throw new UsageError(`unknown option "${args[0]}"; see "feedmail litestream-config --help"`);
  if (config.databaseUrl) {
    throw new UsageError('litestream-config is for the SQLite files of a data directory; with FEEDMAIL_DATABASE_URL the data is in PostgreSQL: '
      + 'back it up with pg_dump (or base backups and WAL archiving), see "feedmail backup"');
  }
  const to = toArg !== undefined ? checkedTarget(toArg, '--to') : (config.backupTo ? `${config.backupTo}/litestream` : undefined);
  if (!to) throw new UsageError('say where Litestream replicates to: --to <dir | s3://bucket/prefix>, or set FEEDMAIL_BACKUP_TO');
  const yaml = litestreamYaml(config, to);
  if (out === '-') {
    process.stdout.write(yaml);
    return 0;
  }
  if (fs.existsSync(out) && !force) throw new UsageError(`${out} exists; pass --force to overwrite it`);
  fs.writeFileSync(out, yaml);
  process.stdout.write(`Wrote ${path.resolve(out)} for ${BACKED_UP.map((b) => b.name).join(' and ')} in ${config.dataDir}, replicating to ${to}.\n`
    + 'Run feedmail with FEEDMAIL_LITESTREAM=true under: litestream replicate -config litestream.yml -exec "feedmail serve"\n');
  return 0;
}
