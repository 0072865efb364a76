/**
 * `ferry worker` and the embedded dev server as an operator runs them: without TEMPORAL_ADDRESS the
 * first ferry command starts the dev server as a process of its own, which outlives it; the worker
 * reuses it, loads the real activities, polls the task queue with JSON logs (the SDK's own logs
 * forwarded), and on SIGTERM shuts down gracefully, leaving the server running until
 * `ferry server stop`.
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Client, Connection } from '@temporalio/client';
import { deploymentNameFor, describeDeployment } from '../../src/temporal/versioning';
import { temporalAnswers } from '../../src/temporal/devserver';
import { temporalBinary, waitFor } from './support/env';

jest.setTimeout(90_000);

const ROOT = join(__dirname, '..', '..');

/** A free TCP port whose +1000 neighbour (the dev server's UI) is free too. */
async function freePort(): Promise<number> {
  for (;;) {
    const port = await new Promise<number>((resolve, reject) => {
      const srv = createServer();
      srv.once('error', reject);
      srv.listen(0, '127.0.0.1', () => {
        const p = (srv.address() as { port: number }).port;
        srv.close(() => resolve(p));
      });
    });
    if (port > 64000) continue;
    const uiFree = await new Promise<boolean>((resolve) => {
      const srv = createServer();
      srv.once('error', () => resolve(false));
      srv.listen(port + 1000, '127.0.0.1', () => srv.close(() => resolve(true)));
    });
    if (uiFree) return port;
  }
}

const alive = (pid: number) => {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};

/** Runs `ferry <args>` as its own process and waits for it. */
function ferryProcess(args: string[], env: NodeJS.ProcessEnv): Promise<{ code: number | null; out: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, ['--import', 'tsx', join(ROOT, 'src', 'client.ts'), ...args], { cwd: ROOT, env, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (out += d.toString()));
    child.once('exit', (code) => resolve({ code, out }));
  });
}

test('the embedded dev server outlives the ferry process that started it; ferry worker reuses it, stops gracefully on SIGTERM; ferry server stop stops it', async () => {
  const stateDir = mkdtempSync(join(tmpdir(), 'ferry-worker-'));
  const port = await freePort();
  const { TEMPORAL_ADDRESS: _ignored, ...env } = process.env;
  const ferryEnv = { ...env, FERRY_STATE_DIR: stateDir, FERRY_TEMPORAL_PORT: String(port), FERRY_TEMPORAL_BIN: temporalBinary(), FERRY_TASK_QUEUE: 'ferry-test' };
  const address = `127.0.0.1:${port}`;
  let devServerPid: number | undefined;
  let child: ReturnType<typeof spawn> | undefined;
  try {
    const none = await ferryProcess(['server', 'status'], ferryEnv);
    expect(none.code).toBe(4);
    expect(none.out).toContain('not running');

    // 1. A short-lived command starts the server and ends: the server stays.
    const list = await ferryProcess(['list'], ferryEnv);
    expect(list.code).toBe(0);
    expect(list.out).toMatch(/started the Temporal dev server \(pid \d+.*keeps running/);
    devServerPid = (JSON.parse(readFileSync(join(stateDir, 'temporal.pid'), 'utf8')) as { pid: number }).pid;
    expect(alive(devServerPid)).toBe(true);
    expect(await temporalAnswers(address)).toBe(true);

    // 2. The worker, another process, reuses it.
    child = spawn(process.execPath, ['--import', 'tsx', join(ROOT, 'src', 'client.ts'), 'worker'], { cwd: ROOT, env: ferryEnv, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr!.on('data', (d: Buffer) => (out += d.toString()));
    const exited = new Promise<number | null>((resolve) => child!.once('exit', (code) => resolve(code)));
    await waitFor('the worker to start', async () => out.includes('"msg":"worker started"'), 60_000);
    expect(out).toContain(`using the Temporal dev server at ${address}`);
    const connection = await Connection.connect({ address });
    try {
      const client = new Client({ connection });
      await waitFor('a poller on the task queue', async () => {
        const res = await client.workflowService.describeTaskQueue({ namespace: 'default', taskQueue: { name: 'ferry-test' }, taskQueueType: 1 });
        return (res.pollers ?? []).length > 0;
      });
      // Worker Versioning on the embedded dev server: the worker's build (Ferry's version + code hash)
      // becomes the current version of the deployment of its task queue (FERRY_SET_CURRENT defaults to always here).
      const buildId = /"buildId":"([^"]+)","msg":"worker started"/.exec(out)?.[1];
      expect(buildId).toMatch(/^\d+\.\d+\.\d+-[0-9a-f]{16}$/);
      await waitFor('the build to become current', async () => (await describeDeployment(client.workflowService, 'default', deploymentNameFor('ferry-test')))?.current === buildId, 30_000);
      // The outcome line carries the field hack/e2e's startWorkerProcess({ current: true }) waits for.
      await waitFor('the promotion outcome line', async () => /"promotion":"(set|already-current)"/.test(out), 30_000);
    } finally {
      await connection.close();
    }
    // Every line is JSON, the SDK's logs included (with a cached workflow bundle there is no bundling
    // log: the SDK's first line may be its worker-state change, just after "worker started").
    await waitFor("the SDK's first log line", async () => out.includes('"source":"temporal"'), 30_000);
    const lines = out.trim().split('\n');
    expect(lines.every((l) => l.startsWith('{'))).toBe(true);
    expect(lines.some((l) => (JSON.parse(l) as { source?: string }).source === 'temporal')).toBe(true);

    // 3. SIGTERM: the worker stops gracefully; the server it used goes on.
    child.kill('SIGTERM');
    expect(await exited).toBe(0);
    expect(out).toContain('"msg":"worker stopped"');
    expect(alive(devServerPid)).toBe(true);
    expect(await temporalAnswers(address)).toBe(true);

    const status = await ferryProcess(['server', 'status'], ferryEnv);
    expect(status.code).toBe(0);
    expect(status.out).toContain(`running, pid ${devServerPid}`);

    // 4. `ferry server stop` stops it.
    const stop = await ferryProcess(['server', 'stop'], ferryEnv);
    expect(stop).toMatchObject({ code: 0, out: `Temporal dev server (pid ${devServerPid}) stopped.\n` });
    await waitFor('the dev server to stop', async () => !alive(devServerPid!), 15_000);
    expect(await temporalAnswers(address)).toBe(false);
    expect((await ferryProcess(['server', 'status'], ferryEnv)).code).toBe(4);
  } finally {
    if (child && child.exitCode === null) child.kill('SIGKILL');
    if (devServerPid && alive(devServerPid)) process.kill(devServerPid, 'SIGKILL');
    rmSync(stateDir, { recursive: true, force: true });
  }
});
