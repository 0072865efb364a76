/**
 * Turning Temporal failure chains into one line an operator can act on. Workflow-safe; the client uses
 * it too.
 *
 * A PVC sync that fails reaches the namespace workflow as ChildWorkflowFailure → ActivityFailure →
 * ApplicationFailure (the activity's classified error) or TimeoutFailure (dead worker, hung transfer).
 * The innermost failure says what happened; the wrappers only say where.
 */
import { ApplicationFailure, TimeoutFailure } from '@temporalio/common';

/** The innermost cause of an error chain. */
export function rootCause(err: unknown): unknown {
  let e = err;
  for (let i = 0; i < 20 && e instanceof Error && e.cause instanceof Error; i++) e = e.cause;
  return e;
}

/** The first ApplicationFailure in the chain whose type is one of Ferry's (FailureType: "Ferry…"):
 * the activity's classified error, which wraps the library error it came from as its cause. */
function ferryFailure(err: unknown): ApplicationFailure | undefined {
  let e = err;
  for (let i = 0; i < 20 && e instanceof Error; i++, e = e.cause) {
    if (e instanceof ApplicationFailure && e.type?.startsWith('Ferry')) return e;
  }
  return undefined;
}

/** Type and message of a failure: Ferry's classified ApplicationFailure when the chain has one,
 * else the innermost cause (`type` is the ApplicationFailure type, or e.g. "Timeout:HEARTBEAT"). */
export function describeFailure(err: unknown): { type?: string; message: string } {
  const classified = ferryFailure(err);
  if (classified) return { type: classified.type!, message: classified.message };
  const root = rootCause(err);
  if (root instanceof ApplicationFailure) return { ...(root.type ? { type: root.type } : {}), message: root.message };
  if (root instanceof TimeoutFailure) {
    return { type: `Timeout${root.timeoutType ? `:${root.timeoutType}` : ''}`, message: root.message || 'timed out' };
  }
  if (root instanceof Error) return { message: root.message || root.name };
  return { message: String(root) };
}

/** One line: "message (type)". */
export function failureMessage(err: unknown): string {
  const { type, message } = describeFailure(err);
  return type ? `${message} (${type})` : message;
}
