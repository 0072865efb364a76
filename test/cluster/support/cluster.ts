/**
 * Shared set-up of the tests on the production Temporal of hack/temporal/cluster.sh (server 1.29.1
 * on PostgreSQL): what is missing to run it here, a free port range, and one cluster per test file
 * in a state directory of its own, with the real workflows bundled into a file for worker processes.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { chmodSync, existsSync, mkdtempSync, openSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Connection } from '@temporalio/client';
import { findTemporalBinary } from '../../../src/temporal/devserver';
import { workflowBundle } from '../../workflows/support/env';

export const ROOT = join(__dirname, '..', '..', '..');
const CLUSTER_SH = join(ROOT, 'hack', 'temporal', 'cluster.sh');

/** Why the cluster cannot be brought up here, or undefined. */
export function missingPiece(): string | undefined {
  const home = process.env.FERRY_TEMPORAL_HOME || join(process.env.XDG_CACHE_HOME || join(process.env.HOME ?? '', '.cache'), 'ferry', 'temporal-server-1.29.1');
  const built = existsSync(join(home, 'bin', 'temporal-server'));
  if (!built && spawnSync('go', ['version']).status !== 0) return 'Go is not installed and the Temporal server is not built (hack/temporal/build.sh)';
  const pg = existsSync('/usr/lib/postgresql') && readdirSync('/usr/lib/postgresql').some((v) => existsSync(join('/usr/lib/postgresql', v, 'bin', 'pg_ctl')));
  if (!pg) return 'PostgreSQL is not installed (apt-get install postgresql)';
  if (!findTemporalBinary()) return 'the temporal CLI is not installed (npm run setup)';
  return undefined;
}

/**
 * `describe`, or `describe.skip` with a warning naming `file` when a piece is missing and
 * FERRY_REQUIRE_TEMPORAL is not 1 (CI: then the missing piece fails the test).
 */
export function describeClusterIn(file: string): { describeCluster: jest.Describe; missing: string | undefined } {
  const missing = missingPiece();
  const skip = missing !== undefined && process.env.FERRY_REQUIRE_TEMPORAL !== '1';
  if (skip) console.warn(`SKIPPED ${file}: ${missing}; set FERRY_REQUIRE_TEMPORAL=1 to fail instead`);
  return { describeCluster: skip ? describe.skip : describe, missing };
}

/** Whether 127.0.0.1:port is free. */
function free(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = createServer();
    s.once('error', () => resolve(false));
    s.listen(port, '127.0.0.1', () => s.close(() => resolve(true)));
  });
}

/** A base port P whose every derived port (see cluster.sh) is free; at most 30000 (cluster.sh). */
export async function freeBasePort(): Promise<number> {
  const offsets = [0, 1, 2, 3, 10, 20, 100, 101, 102, 103, 1000, 2000];
  for (let attempt = 0; attempt < 100; attempt++) {
    const p = 15_000 + Math.floor(Math.random() * 15_000);
    if ((await Promise.all(offsets.map((o) => free(p + o)))).every(Boolean)) return p;
  }
  throw new Error('no free port range for the Temporal cluster');
}

/** A cluster of this test file (see startTestCluster). */
export interface TestCluster {
  /** Test directory: workflow-bundle.js, worker logs, the simulated clusters' files. */
  dir: string;
  /** The cluster's state directory. */
  stateDir: string;
  address: string;
  connection: Connection;
  /** Runs `cluster.sh <command>`; its stdout. @throws with stderr when it fails */
  cluster(command: string, timeoutMs: number): string;
  /** Starts a worker process (node --import tsx <script> <args>), output into dir/worker-<name>.log. */
  spawnWorker(script: string, args: string[], name: string, env?: NodeJS.ProcessEnv): ChildProcess;
  /** SIGKILLs the workers still running, closes the connection, `cluster.sh down`, removes dir. */
  stop(): Promise<void>;
}

/** Brings a cluster up (cluster.sh up; builds the server on first use) and bundles the workflows. */
export async function startTestCluster(prefix: string): Promise<TestCluster> {
  const dir = mkdtempSync(join(tmpdir(), `${prefix}-test-`));
  const stateDir = mkdtempSync(join(tmpdir(), `${prefix}-state-`));
  chmodSync(stateDir, 0o711); // PostgreSQL runs as `postgres` when the tests run as root
  const clusterEnv = { ...process.env, FERRY_TEMPORAL_CLUSTER_DIR: stateDir, FERRY_TEMPORAL_CLUSTER_PORT: String(await freeBasePort()) };
  const cluster = (command: string, timeoutMs: number) => {
    const r = spawnSync('bash', [CLUSTER_SH, command], { env: clusterEnv, encoding: 'utf8', timeout: timeoutMs });
    if (r.status !== 0) throw new Error(`cluster.sh ${command} failed (exit ${r.status ?? r.signal}):\n${r.stderr}${r.stdout}`);
    return r.stdout;
  };
  const [, bundle] = await Promise.all([
    // Builds the server on first use (17 s with the Go caches of the CLI build; minutes without).
    new Promise<void>((resolve, reject) => {
      const child = spawn('bash', [CLUSTER_SH, 'up'], { env: clusterEnv, stdio: ['ignore', 'ignore', 'pipe'] });
      let stderr = '';
      child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
      child.once('exit', (code) => (code === 0 ? resolve() : reject(new Error(`cluster.sh up failed (exit ${code}):\n${stderr}`))));
    }),
    workflowBundle(),
  ]);
  writeFileSync(join(dir, 'workflow-bundle.js'), bundle.code);
  const address = /TEMPORAL_ADDRESS=(\S+)/.exec(cluster('env', 10_000))![1]!;
  const connection = await Connection.connect({ address });
  const workers: ChildProcess[] = [];
  return {
    dir,
    stateDir,
    address,
    connection,
    cluster,
    spawnWorker(script, args, name, env = process.env) {
      const log = openSync(join(dir, `worker-${name}.log`), 'a');
      // tsx as a loader of this very process, so that SIGKILL hits the worker itself.
      const child = spawn(process.execPath, ['--import', 'tsx', script, ...args], { cwd: ROOT, stdio: ['ignore', log, log], env });
      workers.push(child);
      return child;
    },
    async stop() {
      for (const w of workers) if (w.exitCode === null && w.signalCode === null) w.kill('SIGKILL');
      await connection.close();
      if (existsSync(stateDir)) cluster('down', 120_000);
      if (process.env.FERRY_KEEP_TEST_DIRS !== '1') rmSync(dir, { recursive: true, force: true });
    },
  };
}
