/**
 * `ferry worker` with metrics on (FERRY_METRICS_PORT, FERRY_SDK_METRICS_PORT), as compose runs it: the
 * process serves Ferry's metrics (prom-client) and the Temporal SDK's own (its Prometheus exporter)
 * on two ports, both at /metrics. Own dev server (FERRY_STATE_DIR, port), stopped at the end.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort } from '../../hack/e2e/lib';
import { scrape } from '../support/prometheus';
import { temporalBinary, waitFor } from './support/env';

jest.setTimeout(120_000);

const ROOT = join(__dirname, '..', '..');
const ferry = (args: string[], env: NodeJS.ProcessEnv) => spawn(process.execPath, ['--import', 'tsx', join(ROOT, 'src', 'client.ts'), ...args], { cwd: ROOT, env, stdio: ['ignore', 'pipe', 'pipe'] });

test('ferry worker serves its metrics and the Temporal SDK metrics on the configured ports', async () => {
  const stateDir = mkdtempSync(join(tmpdir(), 'ferry-metrics-worker-'));
  const [port, ferryPort, sdkPort] = [await freePort(), await freePort(), await freePort()];
  const { TEMPORAL_ADDRESS: _ignored, ...env } = process.env;
  const ferryEnv = {
    ...env,
    FERRY_STATE_DIR: stateDir,
    FERRY_TEMPORAL_PORT: String(port),
    FERRY_TEMPORAL_BIN: temporalBinary(),
    FERRY_TASK_QUEUE: `metrics-${process.pid}`,
    FERRY_METRICS_PORT: `127.0.0.1:${ferryPort}`,
    FERRY_SDK_METRICS_PORT: `127.0.0.1:${sdkPort}`,
  };
  let child: ChildProcess | undefined;
  try {
    child = ferry(['worker'], ferryEnv);
    let out = '';
    child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr!.on('data', (d: Buffer) => (out += d.toString()));
    const exited = new Promise<number | null>((resolve) => child!.once('exit', (code) => resolve(code)));
    await waitFor('the worker to start', async () => out.includes('"msg":"worker started"') || child!.exitCode !== null, 90_000);
    expect(out).toContain('"msg":"worker started"');
    expect(out).toContain('"msg":"Ferry metrics at /metrics"');

    const own = await scrape(`http://127.0.0.1:${ferryPort}/metrics`);
    expect(own.status).toBe(200);
    expect(own.text).toMatch(/^# TYPE ferry_transfer_bytes_total counter$/m);
    expect(own.text).toMatch(/^# TYPE ferry_downtime_seconds histogram$/m);
    expect(own.samples.some((s) => s.name === 'process_resident_memory_bytes' && s.value > 0)).toBe(true);

    // The SDK's exporter: its pollers report once the worker polls.
    const sdk = await waitFor('temporal_ metrics from the SDK', async () => {
      const r = await scrape(`http://127.0.0.1:${sdkPort}/metrics`).catch(() => undefined);
      return r && r.status === 200 && r.samples.some((s) => s.name.startsWith('temporal_')) ? r : undefined;
    }, 30_000);
    const names = [...new Set(sdk.samples.map((s) => s.name))];
    process.stdout.write(`[metrics-worker] SDK metrics: ${names.join(' ')}\n`);
    expect(names.filter((n) => n.startsWith('temporal_')).length).toBeGreaterThan(0);
    expect(names.some((n) => n.startsWith('ferry_'))).toBe(false); // two registries, two ports

    child.kill('SIGTERM');
    expect(await exited).toBe(0);
  } finally {
    if (child && child.exitCode === null) child.kill('SIGKILL');
    const stop = ferry(['server', 'stop'], ferryEnv);
    await new Promise((r) => stop.once('exit', r));
    const pidFile = join(stateDir, 'temporal.pid');
    if (existsSync(pidFile)) {
      const { pid } = JSON.parse(readFileSync(pidFile, 'utf8')) as { pid: number };
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        /* stopped */
      }
    }
    rmSync(stateDir, { recursive: true, force: true });
  }
});
