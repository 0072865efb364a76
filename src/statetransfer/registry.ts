/**
 * The registry of the transfer layers: one table per layer. Adding an engine, a transport or an
 * endpoint type means a folder (or file) of its own plus one line here; the plan schema, preflight,
 * cleanup and the migration layer read these tables instead of listing the types themselves.
 */
import { RCLONE_ENGINE } from './transfer/rclone';
import { RSYNC_ENGINE } from './transfer/rsync';
import type { TransferEngine, TransferType } from './types';

/** Transfer engines by type (`plan.transfer`). */
export const TRANSFER_ENGINES: Readonly<Record<TransferType, TransferEngine>> = Object.freeze({
  rsync: RSYNC_ENGINE,
  rclone: RCLONE_ENGINE,
});

/**
 * The engine knowledge of a transfer type.
 * @throws Error for a type no engine is registered for (a plan is validated before, so this is a bug).
 */
export function transferEngine(type: TransferType): TransferEngine {
  const engine = TRANSFER_ENGINES[type];
  if (!engine) throw new Error(`no transfer engine registered for ${JSON.stringify(type)}`);
  return engine;
}
