/**
 * The Temporal side of a lab drill: a Temporal dev server of its own (state in a temp dir, a free
 * port), a real `ferry worker` child process on the lab kubeconfig with a task queue of its own, and a
 * client session, started in a drill's beforeAll and stopped in its afterAll. Kept apart from lib.ts,
 * which hack/demo.sh loads too (it needs no Temporal).
 */
import type { ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { openSession, type TemporalSession } from '../../src/cli/operations';
import { resolveTemporal, type TemporalHandle } from '../../src/temporal/devserver';
import { freePort, LAB_KUBECONFIG, startWorkerProcess } from './lib';

/** A running dev server + worker + session (see startLabWorker). */
export interface LabWorker {
  /** Client session on the dev server, for startMigration, getMigration, workflow handles. */
  readonly session: TemporalSession;
  /** The last MiB of the worker's output (stdout and stderr). */
  output(): string;
  /** Stops the worker (SIGTERM, SIGKILL after 30 s), closes the session, stops the dev server, removes the state dir. Never throws. */
  stop(): Promise<void>;
}

/**
 * Starts a dev server, a `ferry worker` process of the tree at `root` (FERRY_LOG_LEVEL info, task
 * queue `ferry-<name>`) and a session; `name` also prefixes the temp state dir.
 * @throws Error when the dev server or the worker does not start (what was started is stopped).
 */
export async function startLabWorker(root: string, name: string): Promise<LabWorker> {
  const stateDir = mkdtempSync(join(tmpdir(), `ferry-${name}-`));
  let temporal: TemporalHandle | undefined;
  let worker: ChildProcess | undefined;
  let session: TemporalSession | undefined;
  let out = '';
  const stop = async (): Promise<void> => {
    const w = worker;
    if (w && w.exitCode === null && w.signalCode === null) {
      const exited = new Promise((r) => w.once('exit', r));
      w.kill('SIGTERM');
      await Promise.race([exited, new Promise((r) => setTimeout(r, 30_000))]);
      if (w.exitCode === null && w.signalCode === null) w.kill('SIGKILL');
    }
    await session?.close().catch(() => undefined);
    await temporal?.stop().catch(() => undefined);
    rmSync(stateDir, { recursive: true, force: true });
  };
  try {
    const port = await freePort();
    const { TEMPORAL_ADDRESS: _ignored, ...env } = process.env;
    const workerEnv = { ...env, KUBECONFIG: LAB_KUBECONFIG, FERRY_STATE_DIR: stateDir, FERRY_TEMPORAL_PORT: String(port), FERRY_TASK_QUEUE: `ferry-${name}`, FERRY_LOG_LEVEL: 'info' };
    temporal = await resolveTemporal({ env: workerEnv, stateDir, port, headless: true });
    worker = await startWorkerProcess(root, workerEnv, (chunk) => (out = (out + chunk).slice(-(1 << 20))));
    session = await openSession(workerEnv);
  } catch (e) {
    await stop();
    throw e;
  }
  const s = session;
  return { session: s, output: () => out, stop };
}
