/**
 * `ferry worker` as an operator runs it: without TEMPORAL_ADDRESS it starts the embedded dev server,
 * loads the real activities, polls the task queue with JSON logs (the SDK's own logs forwarded), and
 * on SIGTERM shuts down gracefully and stops the dev server it started.
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Client, Connection } from '@temporalio/client';
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

test('ferry worker: embedded dev server, polling, graceful SIGTERM', async () => {
  const stateDir = mkdtempSync(join(tmpdir(), 'ferry-worker-'));
  const port = await freePort();
  const { TEMPORAL_ADDRESS: _ignored, ...env } = process.env;
  const child = spawn(process.execPath, ['--import', 'tsx', join(ROOT, 'src', 'client.ts'), 'worker'], {
    cwd: ROOT,
    env: { ...env, FERRY_STATE_DIR: stateDir, FERRY_TEMPORAL_PORT: String(port), FERRY_TEMPORAL_BIN: temporalBinary(), FERRY_TASK_QUEUE: 'ferry-test' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  child.stdout.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr.on('data', (d: Buffer) => (out += d.toString()));
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  let devServerPid: number | undefined;
  try {
    await waitFor('the worker to start', async () => out.includes('"msg":"worker started"'), 60_000);
    devServerPid = (JSON.parse(readFileSync(join(stateDir, 'temporal.pid'), 'utf8')) as { pid: number }).pid;
    const connection = await Connection.connect({ address: `127.0.0.1:${port}` });
    try {
      const client = new Client({ connection });
      await waitFor('a poller on the task queue', async () => {
        const res = await client.workflowService.describeTaskQueue({ namespace: 'default', taskQueue: { name: 'ferry-test' }, taskQueueType: 1 });
        return (res.pollers ?? []).length > 0;
      });
    } finally {
      await connection.close();
    }
    // Every line is JSON, the SDK's logs included.
    const lines = out.trim().split('\n');
    expect(lines.every((l) => l.startsWith('{'))).toBe(true);
    expect(lines.some((l) => (JSON.parse(l) as { source?: string }).source === 'temporal')).toBe(true);

    child.kill('SIGTERM');
    expect(await exited).toBe(0);
    expect(out).toContain('"msg":"worker stopped"');
    await waitFor('the dev server to stop', async () => !alive(devServerPid!), 15_000);
  } finally {
    if (child.exitCode === null) child.kill('SIGKILL');
    if (devServerPid && alive(devServerPid)) process.kill(devServerPid, 'SIGKILL');
    rmSync(stateDir, { recursive: true, force: true });
  }
});
