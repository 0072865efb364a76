/**
 * Shared set-up of the workflow tests: a real Temporal dev server (the temporal CLI binary that
 * `npm run setup` installs, or $FERRY_TEMPORAL_BIN) with Ferry's search attributes, the workflow
 * bundle (built once per test file), test plans and a polling helper.
 */
import { TestWorkflowEnvironment } from '@temporalio/testing';
import { bundleWorkflowCode, DefaultLogger, Runtime, type WorkflowBundleWithSourceMap } from '@temporalio/worker';
import { parsePlan } from '../../../src/plan/load';
import type { MigrationPlan } from '../../../src/plan/schema';
import { findTemporalBinary } from '../../../src/temporal/devserver';
import { SEARCH_ATTRIBUTES } from '../../../src/workflows/search-attributes';
import type { WorkflowTuning } from '../../../src/core/state';
import { createWorker, workflowsPath } from '../../../src/worker';
import type { FakeCluster } from './fake-cluster';

/** Short timings: a dead worker is noticed in 3 s, retries wait ~0.1 s. */
export const TEST_TUNING: WorkflowTuning = { heartbeatTimeoutSeconds: 3, retryIntervalScale: 0.01 };

/** The temporal CLI binary, or a clear error. */
export function temporalBinary(): string {
  const path = findTemporalBinary();
  if (!path) throw new Error('temporal CLI not found: run `npm run setup` (installs it into ~/.cache/ferry/bin) or set FERRY_TEMPORAL_BIN');
  return path;
}

/** A fresh dev server (in memory) with Ferry's search attributes registered. */
export async function startTemporal(): Promise<TestWorkflowEnvironment> {
  try {
    // The SDK's INFO logs (worker state changes) and WARN logs (every expected workflow failure)
    // drown the test output.
    Runtime.install({ logger: new DefaultLogger('ERROR') });
  } catch {
    // Already installed in this test file.
  }
  return TestWorkflowEnvironment.createLocal({
    server: {
      executable: { type: 'existing-path', path: temporalBinary() },
      searchAttributes: Object.values(SEARCH_ATTRIBUTES),
      log: { format: 'pretty', level: 'error' },
    },
  });
}

/**
 * The test file's dev server and workflow bundle: started in beforeAll, torn down in afterAll (call
 * at the top level of the file). Returns the getter of the environment.
 */
export function suiteTemporal(): () => TestWorkflowEnvironment {
  let env: TestWorkflowEnvironment | undefined;
  beforeAll(async () => {
    [env] = await Promise.all([startTemporal(), workflowBundle()]);
  });
  afterAll(async () => {
    await env?.teardown();
  });
  return () => {
    if (!env) throw new Error('the Temporal test environment is not started (suiteTemporal runs in beforeAll)');
    return env;
  };
}

/** Runs `fn` with a worker of the simulated clusters `fake` on a fresh task queue (its argument). */
export async function withFakeWorker<T>(env: TestWorkflowEnvironment, fake: FakeCluster, fn: (taskQueue: string) => Promise<T>): Promise<T> {
  const taskQueue = unique('tq');
  const worker = await createWorker({ connection: env.nativeConnection, taskQueue, activities: fake.activities(), workflowBundle: await workflowBundle() });
  return worker.runUntil(fn(taskQueue));
}

let bundle: Promise<WorkflowBundleWithSourceMap> | undefined;
/** The workflow code, bundled once per test file. */
export function workflowBundle(): Promise<WorkflowBundleWithSourceMap> {
  bundle ??= bundleWorkflowCode({ workflowsPath: workflowsPath(), logger: quietLogger });
  return bundle;
}

const quietLogger = {
  log: () => undefined,
  trace: () => undefined,
  debug: () => undefined,
  info: () => undefined,
  warn: (m: string) => process.stderr.write(`bundler: ${m}\n`),
  error: (m: string) => process.stderr.write(`bundler: ${m}\n`),
};

/** A valid plan for the simulated clusters; `overrides` are plan fields (input form). */
export function testPlan(overrides: Record<string, unknown> = {}): MigrationPlan {
  return parsePlan({
    source: { context: 'src' },
    destination: { context: 'dst' },
    namespaces: ['shop'],
    stagePasses: 1,
    stageIntervalSeconds: 0,
    concurrency: 2,
    ...overrides,
  });
}

/** Polls `fn` every 50 ms until it returns something truthy. */
export async function waitFor<T>(what: string, fn: () => Promise<T | undefined | false | null>, timeoutMs = 30_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const v = await fn();
      if (v) return v;
    } catch (e) {
      last = e;
    }
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}${last ? `: ${(last as Error).message}` : ''}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

let counter = 0;
/** A task queue and migration id unique to one test. */
export function unique(prefix: string): string {
  return `${prefix}-${process.pid}-${Date.now().toString(36)}-${++counter}`;
}
