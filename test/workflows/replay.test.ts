/**
 * Replays recorded histories (test/fixtures/histories/*.json: the happy path and the retry path, every
 * workflow of each) against the current workflow code. A change that would break running migrations
 * (different commands for the same history) fails here; make such changes behind workflow.patched()
 * and record new histories on purpose (see ./support/histories.ts). No server needed.
 */
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Worker } from '@temporalio/worker';
import { workflowBundle } from './support/env';
import { fromRecorded, HISTORIES_DIR, type RecordedHistory } from './support/histories';

jest.setTimeout(60_000);

const REQUIRED = ['happy-path.json', 'retry-path.json'];

test('the recorded histories exist', () => {
  const missing = REQUIRED.filter((f) => !existsSync(join(HISTORIES_DIR, f)));
  if (missing.length > 0) {
    throw new Error(`missing ${missing.join(', ')} in ${HISTORIES_DIR}: record them with FERRY_RECORD_HISTORIES=1 npx jest --forceExit test/workflows/migration.test.ts`);
  }
});

const files = existsSync(HISTORIES_DIR) ? readdirSync(HISTORIES_DIR).filter((f) => f.endsWith('.json')) : [];

test.each(files)('%s replays against the current workflows', async (file) => {
  const recorded = JSON.parse(readFileSync(join(HISTORIES_DIR, file), 'utf8')) as RecordedHistory[];
  const types = new Set<string>();
  const histories = recorded.map((r) => {
    const history = fromRecorded(r.history);
    types.add(history.events?.[0]?.workflowExecutionStartedEventAttributes?.workflowType?.name ?? '?');
    return { workflowId: r.workflowId, history };
  });
  // Every workflow type is covered: the migration, its namespaces and their PVC syncs.
  expect([...types].sort()).toEqual(['migrationWorkflow', 'namespaceWorkflow', 'pvcTransferWorkflow']);
  const failures: string[] = [];
  let replayed = 0;
  for await (const result of Worker.runReplayHistories({ workflowBundle: await workflowBundle(), replayName: file }, histories)) {
    replayed++;
    if (result.error) failures.push(`${result.workflowId}: ${result.error.message}`);
  }
  expect(failures).toEqual([]);
  expect(replayed).toBe(recorded.length);
});
