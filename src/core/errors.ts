/**
 * Ferry's errors: one FerryError with a `category` that tells the activity layer how to report it
 * (src/activities maps categories to core/types.ts FailureType), and ProblemListError for invalid
 * input, which lists every problem in one shape (`Problem`). The layers subclass them only to be
 * recognisable (PlanValidationError, RsyncOptionsError, EndpointOptionsError, ...). The libraries never
 * import Temporal; the category is the whole interface.
 *
 * Not FerryErrors, on purpose: AbortedError (a cancellation, not a failure), k8s/client.ts
 * ApiRequestTimeoutError (a network condition waits treat as "not yet"), cli/exit-codes.ts CliError
 * (an exit code for the shell).
 */

/**
 * What kind of failure an error is:
 * - `transient`: retrying later may succeed (network, API server hiccup, pod evicted, timeout waiting);
 * - `preflight`: the clusters are not as the plan requires (missing namespace, StorageClass, permission);
 * - `auth`: authentication or authorization failed (RBAC, rsync auth, TLS peer verification);
 * - `noSpace`: the destination volume is full;
 * - `config`: a configuration problem found at run time (bad image, unschedulable pod, bad option);
 * - `partial`: a final sync that left files behind;
 * - `conflict`: an object Ferry must create exists and belongs to someone else;
 * - `fatal`: anything else retrying will not fix.
 */
export type FerryErrorCategory = 'transient' | 'preflight' | 'auth' | 'noSpace' | 'config' | 'partial' | 'conflict' | 'fatal';

/** An error whose category and operator-facing message are decided by the library. */
export class FerryError extends Error {
  /** How the activity layer reports it; see FerryErrorCategory. */
  readonly category: FerryErrorCategory;
  /** Plain JSON details safe to put in workflow history (never secrets). */
  readonly details?: Record<string, unknown>;

  constructor(category: FerryErrorCategory, message: string, options: { cause?: unknown; details?: Record<string, unknown> } = {}) {
    super(message, options.cause !== undefined ? { cause: options.cause } : undefined);
    this.name = 'FerryError';
    this.category = category;
    if (options.details) this.details = options.details;
  }
}

/** One problem of an input: where (a path like `namespaces[1].destination`, an option name, `(file)`)
 * and what, with the line in a file when known. */
export interface Problem {
  path: string;
  message: string;
  /** 1-based line in the plan file, when the input came from one. */
  line?: number;
}

/** Renders problems one per line: `  path: message (line N)`. */
export function formatProblems(problems: readonly Problem[]): string {
  return problems.map((p) => `  ${p.path}: ${p.message}${p.line !== undefined ? ` (line ${p.line})` : ''}`).join('\n');
}

/**
 * Invalid input, with EVERY problem found (an operator fixes them in one round trip). Category
 * `config`. The message is `invalid <subject>: N problem(s)` followed by one line per problem.
 */
export class ProblemListError extends FerryError {
  readonly problems: readonly Problem[];
  /**
   * @param subject what was invalid, e.g. "migration plan (plan.yaml)", "rsync options"
   * @param problems at least one
   */
  constructor(subject: string, problems: readonly Problem[]) {
    super('config', `invalid ${subject}: ${problems.length} problem${problems.length === 1 ? '' : 's'}\n${formatProblems(problems)}`);
    this.name = 'ProblemListError';
    this.problems = Object.freeze(problems.map((p) => Object.freeze({ ...p })));
  }
}

/** Thrown when an object Ferry must create already exists and is not Ferry's for this migration. */
export class ConflictError extends FerryError {
  constructor(message: string) {
    super('conflict', message);
    this.name = 'ConflictError';
  }
}

/** Thrown by `waitFor` when the condition is not met in time. Category `transient`. */
export class WaitTimeoutError extends FerryError {
  constructor(message: string) {
    super('transient', message);
    this.name = 'WaitTimeoutError';
  }
}

/** Thrown when a wait or a follow loop is aborted through its AbortSignal (activity cancelled). */
export class AbortedError extends Error {
  constructor(message = 'aborted') {
    super(message);
    this.name = 'AbortedError';
  }
}

/** The message of any thrown value, for logs and wrapped errors. */
export function errorMessage(err: unknown): string {
  // Not `instanceof Error`: errors from other realms (Node-required modules under Jest) fail it.
  const m = (err as { message?: unknown } | null)?.message;
  if (typeof m === 'string') return m;
  return typeof err === 'string' ? err : JSON.stringify(err);
}
