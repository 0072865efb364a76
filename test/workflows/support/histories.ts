/**
 * Recorded workflow histories (test/fixtures/histories/*.json) for the replay test: the happy path and
 * the retry path, each with the histories of every workflow of one migration (migration, namespaces,
 * PVC syncs). Written by the migration tests when FERRY_RECORD_HISTORIES=1:
 *
 *   FERRY_RECORD_HISTORIES=1 npx jest --forceExit test/workflows/migration.test.ts
 *
 * Re-record only on purpose (a deliberate, versioned change of the workflows); the replay test exists
 * to catch accidental ones.
 *
 * Format: protobufjs's plain-object form of temporal.api.history.v1.History (enums and 64-bit
 * integers as strings, bytes as base64), written and read with @temporalio/proto's own classes. The
 * SDK's historyToJSON/historyFromJSON would give Temporal's canonical JSON, but fail in this install
 * ("type must be a Type"): @temporalio/common and @temporalio/proto each carry their own copy of
 * protobufjs 8 (the top-level one is grpc's protobufjs 7).
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Client } from '@temporalio/client';
import { temporal } from '@temporalio/proto';
import { pvcWorkflowId } from '../../../src/workflows/definitions';
import type { MigrationSummary } from '../../../src/core/state';

export const HISTORIES_DIR = join(__dirname, '..', '..', 'fixtures', 'histories');

/** Whether this run records histories. */
export const recordingHistories = process.env.FERRY_RECORD_HISTORIES === '1';

/** One recorded history. */
export interface RecordedHistory {
  workflowId: string;
  /** temporal.api.history.v1.History as a plain object (see toRecorded / fromRecorded). */
  history: Record<string, unknown>;
}

const HistoryType = temporal.api.history.v1.History;

/** A history → its plain-object form. */
export function toRecorded(history: temporal.api.history.v1.IHistory): Record<string, unknown> {
  return HistoryType.toObject(HistoryType.fromObject(history), { longs: String, enums: String, bytes: String });
}

/** The plain-object form → a history for Worker.runReplayHistories. */
export function fromRecorded(recorded: Record<string, unknown>): temporal.api.history.v1.History {
  return HistoryType.fromObject(recorded);
}

/** Every workflow id of a finished migration. */
export function workflowIdsOf(summary: MigrationSummary): string[] {
  const ids = [summary.workflowId];
  for (const ns of summary.namespaces) {
    ids.push(ns.workflowId);
    for (const p of ns.result?.pvcs ?? []) {
      for (let pass = 1; pass <= p.syncs; pass++) ids.push(pvcWorkflowId(ns.workflowId, p.name, pass));
    }
  }
  return ids;
}

/** Writes the histories of every workflow of the migration to <HISTORIES_DIR>/<name>.json. */
export async function recordHistories(client: Client, name: string, summary: MigrationSummary): Promise<void> {
  const entries: RecordedHistory[] = [];
  for (const workflowId of workflowIdsOf(summary)) {
    const history = await client.workflow.getHandle(workflowId).fetchHistory();
    entries.push({ workflowId, history: toRecorded(history) });
  }
  mkdirSync(HISTORIES_DIR, { recursive: true });
  writeFileSync(join(HISTORIES_DIR, `${name}.json`), `[\n${entries.map((e) => JSON.stringify(e)).join(',\n')}\n]\n`);
}
