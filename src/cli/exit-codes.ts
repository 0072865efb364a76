/**
 * Exit codes of the `ferry` CLI, and the error type that carries one.
 */

/** Every exit code `ferry` uses. */
export const EXIT = {
  /** The command did what was asked (a followed migration succeeded). */
  OK: 0,
  /** The migration failed, was rolled back or was cancelled. */
  MIGRATION_FAILED: 1,
  /** Invalid input: plan, flags, or a command the migration rejects (e.g. retry of a PVC that is not failed). */
  INVALID_INPUT: 2,
  /** No migration with this id. */
  NOT_FOUND: 3,
  /** Temporal cannot be reached (or started), or no worker answers. */
  TEMPORAL_UNREACHABLE: 4,
  /** The data is migrated, but restoring the source workloads after the final sync failed: they are
   * still scaled down (the summary prints what to restore). */
  SOURCE_NOT_RESTORED: 5,
  /** Interrupted (Ctrl-C). The migration itself goes on: it runs in the worker, not in the CLI. */
  INTERRUPTED: 130,
} as const;
export type ExitCode = (typeof EXIT)[keyof typeof EXIT];

/** The exit code table, as shown by `ferry --help`. */
export const EXIT_CODES_HELP = `Exit codes:
  0    ok (a followed migration succeeded)
  1    the migration failed, was rolled back or was cancelled
  2    invalid input (plan, flags, or a command the migration rejects)
  3    migration not found
  4    Temporal unreachable, or no worker answering
  5    migrated, but the source applications were not restored (still scaled down)
  130  interrupted (Ctrl-C); the migration goes on in the worker`;

/** An error that ends the command with `exitCode`; `details` is shown with --output json. */
export class CliError extends Error {
  override readonly name = 'CliError';
  constructor(
    message: string,
    readonly exitCode: ExitCode,
    readonly details?: unknown,
  ) {
    super(message);
  }
}
