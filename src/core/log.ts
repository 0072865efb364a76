/**
 * The logging interface of the kube and images libraries: the subset of pino's Logger they use, so
 * callers pass a pino logger (or the Temporal activity logger through a small adapter) and tests pass
 * nothing. Messages never contain secrets (keys, passwords, registry credentials).
 */

/** A structured logger: `fields` first, then the message (pino's argument order). */
export interface Logger {
  debug(fields: object, message: string): void;
  info(fields: object, message: string): void;
  warn(fields: object, message: string): void;
  error(fields: object, message: string): void;
}

/** A logger that drops everything (the default of every library function). */
export const silentLogger: Logger = Object.freeze({
  debug: () => undefined,
  info: () => undefined,
  warn: () => undefined,
  error: () => undefined,
});
