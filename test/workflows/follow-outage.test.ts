/**
 * `ferry status ID --follow` (the same follower as `ferry migrate`) through a Temporal outage: the
 * dev server is stopped under a following CLI and started again on the same database. The follower
 * says once that Temporal is unreachable and that the migration goes on, keeps trying past the
 * ~20 s after which it used to exit 4 with raw gRPC text, and follows the migration to its end once
 * the server is back. With a short limit it gives up with exit 4, saying how to follow again.
 * Issue 8 item 17.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { Client, Connection } from '@temporalio/client';
import { NativeConnection, type Worker } from '@temporalio/worker';
import { EXIT } from '../../src/cli/exit-codes';
import { runCli } from '../../src/cli/program';
import { resolveTemporal, type TemporalHandle } from '../../src/temporal/devserver';
import { createWorker } from '../../src/worker';
import { migrationWorkflow } from '../../src/workflows';
import { FakeCluster } from './support/fake-cluster';
import { temporalBinary, testPlan, TEST_TUNING, unique, waitFor, workflowBundle } from './support/env';

jest.setTimeout(180_000);

class Capture extends Writable {
  text = '';
  override _write(chunk: Buffer | string, _enc: BufferEncoding, cb: () => void): void {
    this.text += chunk.toString();
    cb();
  }
}

async function freePort(): Promise<number> {
  return new Promise<number>((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const p = (srv.address() as { port: number }).port;
      srv.close(() => resolve(p));
    });
  });
}

let dir: string;
let port: number;
let server: TemporalHandle | undefined;
/** gRPC status text in a message, e.g. "14 UNAVAILABLE: …" or "Error: 14 No connection established"; a clock
 *  ("17:21:14 Temporal …") is not: the lookbehind skips digits after a colon. */
const GRPC_TEXT = /UNAVAILABLE|grpc|(?<![:\d])\b14 [A-Z]/i;
const taskQueue = unique('outage');
const fake = new FakeCluster({ source: { shop: { pvcs: [{ name: 'data', bytes: 100 }], workloads: [{ name: 'web', replicas: 1 }] } }, transferMs: 20 });

/** Starts the dev server on the test's database and port (headless). */
async function startServer(): Promise<TemporalHandle> {
  const { TEMPORAL_ADDRESS: _a, ...env } = process.env;
  server = await resolveTemporal({ env: { ...env, FERRY_TEMPORAL_BIN: temporalBinary() }, stateDir: dir, port, headless: true });
  return server;
}

/** A worker on the current server, running until the returned stop() is called. */
async function startWorker(): Promise<() => Promise<void>> {
  const connection = await NativeConnection.connect({ address: `127.0.0.1:${port}` });
  const worker: Worker = await createWorker({
    connection,
    taskQueue,
    activities: fake.activities(),
    workflowBundle: await workflowBundle(),
    workerOptions: { shutdownGraceTime: '1s', stickyQueueScheduleToStartTimeout: '1s' },
  });
  const running = worker.run().catch(() => undefined);
  return async () => {
    if (worker.getState() === 'RUNNING') worker.shutdown();
    await running;
    await connection.close().catch(() => undefined);
  };
}

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'ferry-outage-'));
  port = await freePort();
});

afterAll(async () => {
  await server?.stop();
  rmSync(dir, { recursive: true, force: true });
});

/** Runs `ferry status ID --follow` in this process; resolves when it ends. */
function follower(id: string, extraEnv: NodeJS.ProcessEnv = {}) {
  const stdout = new Capture();
  const stderr = new Capture();
  const done = runCli(['status', id, '--follow'], {
    stdout,
    stderr,
    env: { ...process.env, TEMPORAL_ADDRESS: `127.0.0.1:${port}`, FERRY_TASK_QUEUE: taskQueue, ...extraEnv },
    interrupt: new AbortController().signal,
  });
  let code: number | undefined;
  void done.then((c) => (code = c));
  return { stdout, stderr, done, code: () => code };
}

test('a following CLI waits out a Temporal outage and follows the migration to its end; with a short limit it says how to follow again', async () => {
  await startServer();
  let stopWorker = await startWorker();
  fake.hold = () => true;
  const id = unique('outage-mig');
  const connection = await Connection.connect({ address: `127.0.0.1:${port}` });
  try {
    await new Client({ connection }).workflow.start(migrationWorkflow, { taskQueue, workflowId: id, args: [{ migrationId: id, plan: testPlan(), tuning: TEST_TUNING }] });
  } finally {
    await connection.close();
  }
  const f = follower(id);
  const short = follower(id, { FERRY_FOLLOW_OUTAGE_SECONDS: '3' });
  await waitFor('the follower to show the running sync', async () => /shop\/data: stage sync 1/.test(f.stderr.text), 60_000);

  // The outage: the worker and the dev server go away.
  await stopWorker();
  await server!.stop();
  await waitFor('the outage line', async () => f.stderr.text.includes('unreachable since'), 60_000);
  expect(f.stderr.text).toMatch(
    new RegExp(`Temporal at 127\\.0\\.0\\.1:${port} unreachable since \\d\\d:\\d\\d:\\d\\d UTC; the migration goes on in the worker; still trying… \\(Ctrl-C, then \`ferry status ${id} --follow\`\\)`),
  );
  // The follower with a 3 s limit gives up: exit 4, how to follow again, no gRPC text.
  expect(await short.done).toBe(EXIT.TEMPORAL_UNREACHABLE);
  expect(short.stderr.text).toContain(`stopped following. Migration ${id} goes on in the worker once Temporal is back`);
  expect(short.stderr.text).toContain(`ferry status ${id} --follow`);
  // gRPC's status text ("14 UNAVAILABLE: …", "Error: 14 No connection established"), not a clock:
  // "17:21:14 Temporal at …" once matched \b14 [A-Z] and failed CI (stop 18).
  expect(short.stderr.text).not.toMatch(GRPC_TEXT);
  expect('17:21:14 Temporal at 127.0.0.1:1 unreachable').not.toMatch(GRPC_TEXT);
  expect('Error: 14 No connection established').toMatch(GRPC_TEXT);

  // The outage line came after a first failed poll (the client retries ~20 s); 10 s more puts the
  // outage past the point where the follower used to exit 4.
  await new Promise((r) => setTimeout(r, 10_000));
  expect(f.code()).toBeUndefined();
  expect(f.stderr.text.match(/unreachable since/g)).toHaveLength(1); // said once

  // Temporal is back (same database), then a worker; the migration finishes.
  await startServer();
  stopWorker = await startWorker();
  fake.hold = () => false;
  try {
    expect(await f.done).toBe(EXIT.OK);
  } finally {
    await stopWorker();
  }
  expect(f.stderr.text).toMatch(new RegExp(`Temporal at 127\\.0\\.0\\.1:${port} answers again \\(unreachable for [\\dm.s ]+\\); following migration ${id}`));
  expect(f.stdout.text).toMatch(new RegExp(`^Migration ${id}: succeeded`));
  expect(f.stderr.text).not.toMatch(/UNAVAILABLE|grpc/i);
  if (process.env.FERRY_SHOW_OUTPUT === '1') process.stdout.write(`${f.stderr.text}\n---\n${short.stderr.text}\n`);
});
