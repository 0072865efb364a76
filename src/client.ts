#!/usr/bin/env -S node --max-semi-space-size=2 --max-old-space-size=512
/**
 * The `ferry` command line (see ./cli/program.ts for the commands, ./cli/exit-codes.ts for the exit
 * codes). The functions behind the commands (start, status, decisions, list) are exported for use as
 * a library.
 */
import { runCli } from './cli/program';

export { EXIT, CliError } from './cli/exit-codes';
export {
  cancel,
  cutover,
  decide,
  getMigration,
  listMigrations,
  liveProgress,
  openSession,
  rollback,
  startMigration,
  type LiveProgress,
  type MigrationRow,
  type MigrationView,
  type TemporalSession,
} from './cli/operations';
export { runCli } from './cli/program';

if (require.main === module) {
  runCli(process.argv.slice(2), { stdout: process.stdout, stderr: process.stderr, env: process.env }).then(
    (code) => process.exit(code),
    (err: unknown) => {
      process.stderr.write(`ferry: ${err instanceof Error ? err.message : String(err)}\n`);
      process.exit(1);
    },
  );
}
