/**
 * Errors of the kube and images libraries, each with a `category` that tells the activity layer how
 * to report it (src/activities maps categories to contract.ts FailureType). The library never imports
 * Temporal; the category is the whole interface.
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
