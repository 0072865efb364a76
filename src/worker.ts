/**
 * Ferry's Temporal worker: runs the workflows (./workflows) and the activities (./activities) on one
 * task queue.
 *
 *   node dist/worker.js                         run the worker (also: `ferry worker`)
 *   node dist/worker.js bundle <file>           write the workflow bundle (the worker image does this
 *                                               at build time, so the worker starts without webpack)
 *
 * Environment: TEMPORAL_ADDRESS (else the embedded dev server, see ./temporal/devserver.ts),
 * TEMPORAL_NAMESPACE, FERRY_TASK_QUEUE (default "ferry"), FERRY_LOG_LEVEL (default "info"),
 * FERRY_WORKFLOW_BUNDLE (a bundle written by `bundle`; default: dist/workflow-bundle.js when present).
 * Metrics (off unless set; flags `--metrics`, `--sdk-metrics` of `node dist/worker.js` override them):
 * FERRY_METRICS_PORT ("9464" or "host:port": Ferry's Prometheus metrics, src/metrics), FERRY_SDK_METRICS_PORT
 * ("9465" or "host:port": the Temporal SDK's own Prometheus exporter); both serve /metrics.
 * Worker Versioning (./temporal/versioning.ts): FERRY_WORKER_VERSIONING (on|off, default on),
 * FERRY_BUILD_ID (default `<ferry version>-<workflowBundleKey>`), FERRY_DEPLOYMENT_NAME (default
 * "ferry" on the task queue "ferry", else "ferry-<task queue>"), FERRY_SET_CURRENT (always|if-none|never; default always on the embedded dev server,
 * if-none on an external Temporal).
 *
 * Logs are JSON lines (pino) on stdout; the Temporal SDK's own logs (worker, workflow `log`, core) are
 * forwarded into the same logger. SIGINT/SIGTERM shut the worker down gracefully (running activities get
 * `shutdownGraceTime` to finish, then are cancelled with WORKER_SHUTDOWN and retried elsewhere; a
 * transfer then leaves its client pod running, and the retry re-attaches to it); a second signal exits
 * at once. The embedded dev server, if this worker started it, keeps running after it.
 */
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { join, relative } from 'node:path';
import { Connection } from '@temporalio/client';
import {
  bundleWorkflowCode,
  DefaultLogger,
  makeTelemetryFilterString,
  NativeConnection,
  Runtime,
  Worker,
  type LogLevel,
  type WorkerOptions,
} from '@temporalio/worker';
import pino, { type Logger } from 'pino';
import type { FerryActivities } from './activities/contract';
import { ensureSearchAttributes, resolveTemporal } from './temporal/devserver';
import { parseListenAddress, startMetricsServer, type ListenAddress } from './metrics';
import { deploymentFromEnv, ensureCurrent, pinnedToOtherBuilds, setCurrentCommand, workerDeploymentOptions, type FerryDeployment } from './temporal/versioning';
import { DEFAULT_TASK_QUEUE } from './workflows/definitions';

/** Options of createWorker / runWorker. */
export interface RunWorkerOptions {
  connection: NativeConnection;
  activities: FerryActivities;
  /** Default: $FERRY_TASK_QUEUE, else "ferry". */
  taskQueue?: string;
  /** Temporal namespace. Default "default". */
  namespace?: string;
  /** Pre-bundled workflow code; default: bundled from ./workflows at start. */
  workflowBundle?: WorkerOptions['workflowBundle'];
  logger?: Logger;
  /** Overrides of Ferry's worker options (tests shorten timeouts with these). */
  workerOptions?: Partial<WorkerOptions>;
  /** Signals that shut the worker down gracefully (runWorker only). Default SIGINT, SIGTERM. */
  shutdownSignals?: NodeJS.Signals[];
  /**
   * Worker Versioning (./temporal/versioning.ts): the worker's deployment version, its workflows
   * PINNED to it; runWorker applies its set-current policy once it polls. Unset: an unversioned worker.
   */
  deployment?: FerryDeployment;
}

/** The task queue: $FERRY_TASK_QUEUE, else "ferry". */
export function taskQueueFromEnv(env: NodeJS.ProcessEnv = process.env): string {
  return env.FERRY_TASK_QUEUE || DEFAULT_TASK_QUEUE;
}

/** Path of the workflows module (src/workflows under tsx, dist/workflows when compiled). */
export function workflowsPath(): string {
  return require.resolve('./workflows');
}

/** The workflow bundle to load: $FERRY_WORKFLOW_BUNDLE, else workflow-bundle.js next to this file. */
function prebuiltBundle(env: NodeJS.ProcessEnv): WorkerOptions['workflowBundle'] | undefined {
  const file = env.FERRY_WORKFLOW_BUNDLE || join(__dirname, 'workflow-bundle.js');
  return existsSync(file) ? { codePath: file } : undefined;
}

/** Creates (does not run) a worker with Ferry's options. */
export async function createWorker(opts: RunWorkerOptions): Promise<Worker> {
  const bundle = opts.workflowBundle ?? prebuiltBundle(process.env);
  return Worker.create({
    connection: opts.connection,
    namespace: opts.namespace ?? 'default',
    taskQueue: opts.taskQueue ?? taskQueueFromEnv(),
    activities: opts.activities,
    ...(bundle ? { workflowBundle: bundle } : { workflowsPath: workflowsPath() }),
    // Transfer progress travels in heartbeat details, read by the CLI through describe(): keep it fresh.
    maxHeartbeatThrottleInterval: '2s',
    defaultHeartbeatThrottleInterval: '2s',
    // On shutdown, running activities get this long to finish before they are cancelled (a cancelled
    // transfer is retried by another worker, which re-attaches to the same client pod).
    shutdownGraceTime: '20s',
    ...(opts.deployment ? { workerDeploymentOptions: workerDeploymentOptions(opts.deployment) } : {}),
    ...opts.workerOptions,
  });
}

/**
 * Runs a worker until it is shut down (SIGINT/SIGTERM, or worker.shutdown()). A second signal exits
 * the process with code 130.
 */
export async function runWorker(opts: RunWorkerOptions): Promise<void> {
  const log = opts.logger;
  const worker = await createWorker(opts);
  let signals = 0;
  const onSignal = (signal: NodeJS.Signals) => {
    signals++;
    if (signals === 1 && worker.getState() === 'RUNNING') {
      log?.info({ signal }, 'shutting down: letting running activities finish (send the signal again to exit at once)');
      worker.shutdown();
    } else if (signals > 1) {
      log?.warn({ signal }, 'exiting without waiting for running activities');
      process.exit(130);
    }
  };
  const handled = opts.shutdownSignals ?? ['SIGINT', 'SIGTERM'];
  for (const s of handled) process.on(s, onSignal);
  const d = opts.deployment;
  log?.info({ taskQueue: worker.options.taskQueue, namespace: worker.options.namespace, ...(d ? { deployment: d.deploymentName, buildId: d.buildId } : {}) }, 'worker started');
  const promotion = new AbortController();
  if (d) {
    if (d.setCurrent === 'never') log?.info({ buildId: d.buildId, promotion: 'never' }, `this build takes new migrations once it is set current: ${setCurrentCommand(d)}`);
    const promoted = d.setCurrent === 'never' ? Promise.resolve() : promote(opts.connection, worker.options.namespace, d, promotion.signal, log);
    void promoted.then(() => reportPinnedElsewhere(opts.connection, worker.options.namespace, d, worker.options.taskQueue, log));
  }
  try {
    await worker.run();
  } finally {
    promotion.abort();
    for (const s of handled) process.off(s, onSignal);
    log?.info('worker stopped');
  }
}

/** Applies the deployment's set-current policy (in the background of a running worker) and logs the
 * outcome. Every outcome line carries the field `promotion` (set, already-current, kept, never, failed):
 * hack/e2e's startWorkerProcess waits for it, so keep the field when rewording the messages. */
async function promote(connection: NativeConnection, namespace: string, d: FerryDeployment, signal: AbortSignal, log: Logger | undefined): Promise<void> {
  try {
    const r = await ensureCurrent(connection.workflowService, namespace, d, { signal, identity: `ferry-worker ${process.pid}` });
    if (r.action === 'set') log?.info({ buildId: d.buildId, previous: r.previous, promotion: r.action }, 'this build is now the current version: new migrations run on it, running ones stay on their build');
    else if (r.action === 'already-current') log?.info({ buildId: d.buildId, promotion: r.action }, 'this build is the current version already: new migrations run on it');
    else if (r.action === 'kept') log?.info({ buildId: d.buildId, current: r.current, promotion: r.action }, `build ${r.current} stays current (FERRY_SET_CURRENT=if-none); to move new migrations to this build: ${setCurrentCommand(d)}`);
  } catch (err) {
    if (!signal.aborted) log?.warn({ err, buildId: d.buildId, promotion: 'failed' }, `could not set this build current; new migrations go to the current version. By hand: ${setCurrentCommand(d)}`);
  }
}

/** Logs the running workflows of the task queue pinned to other builds (they need workers of their build). */
async function reportPinnedElsewhere(connection: NativeConnection, namespace: string, d: FerryDeployment, taskQueue: string, log: Logger | undefined): Promise<void> {
  try {
    const pinned = await pinnedToOtherBuilds(connection.workflowService, namespace, d, taskQueue);
    if (Object.keys(pinned).length > 0) {
      log?.info(
        { buildId: d.buildId, pinnedToOtherBuilds: pinned },
        'running workflows are pinned to other builds: they run only on workers of their build (keep those workers until they end; README "Upgrading workers")',
      );
    }
  } catch (err) {
    log?.debug({ err }, 'cannot list the workflows pinned to other builds');
  }
}

/** Ferry's logger: JSON lines on stdout, level $FERRY_LOG_LEVEL (default info). */
export function createLogger(env: NodeJS.ProcessEnv = process.env): Logger {
  return pino({ name: 'ferry-worker', level: env.FERRY_LOG_LEVEL || 'info' });
}

const PINO_LEVEL: Record<LogLevel, 'trace' | 'debug' | 'info' | 'warn' | 'error'> = {
  TRACE: 'trace',
  DEBUG: 'debug',
  INFO: 'info',
  WARN: 'warn',
  ERROR: 'error',
};

/**
 * Routes the Temporal SDK's logs (worker, workflow and activity `log`, Rust core at WARN and above) into
 * `logger`, and leaves signal handling to runWorker. Call once, before any NativeConnection is made.
 */
export function installRuntimeLogger(logger: Logger, sdkMetrics?: ListenAddress): void {
  Runtime.install({
    logger: new DefaultLogger('DEBUG', (entry) => {
      logger[PINO_LEVEL[entry.level]]({ ...entry.meta, source: 'temporal' }, entry.message);
    }),
    telemetryOptions: {
      logging: { filter: makeTelemetryFilterString({ core: 'WARN', other: 'ERROR' }), forward: {} },
      // The SDK's own metrics (temporal_*: task slots, poll latencies, activity and workflow task counts).
      ...(sdkMetrics ? { metrics: { prometheus: { bindAddress: `${sdkMetrics.host}:${sdkMetrics.port}` } } } : {}),
    },
    shutdownSignals: [],
  });
}

/** Where the worker serves metrics: Ferry's (prom-client) and the Temporal SDK's; undefined = off. */
export interface MetricsAddresses {
  ferry?: ListenAddress;
  sdk?: ListenAddress;
}

/**
 * The metrics addresses from `--metrics <[host:]port>` / `--sdk-metrics <[host:]port>` in `argv`, else
 * FERRY_METRICS_PORT / FERRY_SDK_METRICS_PORT. Both off unless given.
 * @throws Error when a value is not a port or host:port, or both ask for the same port.
 */
export function metricsAddresses(argv: string[], env: NodeJS.ProcessEnv = process.env): MetricsAddresses {
  const flag = (name: string) => {
    const i = argv.indexOf(name);
    return i >= 0 ? (argv[i + 1] ?? '') : undefined;
  };
  const ferry = parseListenAddress(flag('--metrics') ?? env.FERRY_METRICS_PORT, 'FERRY_METRICS_PORT (--metrics)');
  const sdk = parseListenAddress(flag('--sdk-metrics') ?? env.FERRY_SDK_METRICS_PORT, 'FERRY_SDK_METRICS_PORT (--sdk-metrics)');
  if (ferry && sdk && ferry.port === sdk.port) throw new Error(`Ferry's metrics and the Temporal SDK's need two ports, both are ${ferry.port}: set FERRY_METRICS_PORT (e.g. 9464) and FERRY_SDK_METRICS_PORT (e.g. 9465) apart`);
  return { ...(ferry ? { ferry } : {}), ...(sdk ? { sdk } : {}) };
}

/**
 * The real activities (./activities, over the Kubernetes libraries), logging into `logger`. Loaded on
 * demand, so that tests and `ferry` commands other than `worker` do not load the Kubernetes client.
 * Also starts making the first transfer credentials' keys (migration/credentials.ts TRANSFER_KEY_POOL).
 */
export async function loadActivities(logger: Logger): Promise<FerryActivities> {
  const { createActivities } = await import('./activities');
  // The first migration's transfer keys, made while the worker connects (they are on its first byte's path).
  const { TRANSFER_KEY_POOL } = await import('./migration/credentials');
  TRANSFER_KEY_POOL.fill();
  return createActivities({ logger: logger.child({ name: 'ferry-activities' }) });
}

/**
 * A key of everything the workflow bundle is made of: the content of every source file under this
 * directory (src/ under tsx, dist/ when compiled) and the SDK's version. Hex, 16 characters.
 */
export function workflowBundleKey(root: string = __dirname): string {
  const h = createHash('sha256');
  const walk = (dir: string): void => {
    for (const name of readdirSync(dir).sort()) {
      const path = join(dir, name);
      if (statSync(path).isDirectory()) walk(path);
      else if (/\.(ts|js|cjs|mjs|json)$/.test(name) && name !== 'workflow-bundle.js') h.update(`${relative(root, path)}\0`).update(readFileSync(path));
    }
  };
  walk(root);
  h.update((require('@temporalio/workflow/package.json') as { version: string }).version);
  return h.digest('hex').slice(0, 16);
}

/** Bundles kept in the cache directory (the newest ones; older ones are deleted). */
const KEPT_BUNDLES = 4;

/**
 * The workflow bundle for this source tree from a cache directory (FERRY_BUNDLE_CACHE, default
 * ~/.cache/ferry/bundles), made on a miss by a child process (`worker bundle`): webpack then never runs
 * inside the long-lived worker, whose memory stays ~160 MB lower (issue 9: worker RSS 415 → 255 MB at
 * idle, measured). undefined when the bundle cannot be made that way (the worker then bundles itself).
 */
export function cachedWorkflowBundle(env: NodeJS.ProcessEnv, log: Pick<Logger, 'info' | 'warn'>): { codePath: string } | undefined {
  try {
    const dir = env.FERRY_BUNDLE_CACHE || join(homedir(), '.cache', 'ferry', 'bundles');
    const file = join(dir, `workflow-bundle-${workflowBundleKey()}.js`);
    if (existsSync(file)) return { codePath: file };
    mkdirSync(dir, { recursive: true });
    const tmp = `${file}.${process.pid}.tmp`;
    const started = Date.now();
    const r = spawnSync(process.execPath, [...process.execArgv, __filename, 'bundle', tmp], { stdio: ['ignore', 'ignore', 'pipe'], encoding: 'utf8', timeout: 300_000 });
    if (r.status !== 0) {
      rmSync(tmp, { force: true });
      log.warn({ exitCode: r.status, stderr: (r.stderr ?? '').slice(-500) }, 'could not bundle the workflows in a child process; bundling in the worker');
      return undefined;
    }
    renameSync(tmp, file);
    log.info({ file, seconds: (Date.now() - started) / 1000 }, 'workflow bundle made and cached');
    const old = readdirSync(dir)
      .filter((n) => /^workflow-bundle-[0-9a-f]+\.js$/.test(n))
      .map((n) => ({ n, t: statSync(join(dir, n)).mtimeMs }))
      .sort((a, b) => b.t - a.t)
      .slice(KEPT_BUNDLES);
    for (const o of old) rmSync(join(dir, o.n), { force: true });
    return { codePath: file };
  } catch (err) {
    log.warn({ err }, 'the workflow bundle cache is not usable; bundling in the worker');
    return undefined;
  }
}

/** Writes the workflow bundle to `file` (for images: the worker then starts without bundling). */
export async function writeWorkflowBundle(file: string): Promise<void> {
  const { code } = await bundleWorkflowCode({ workflowsPath: workflowsPath() });
  writeFileSync(file, code);
}

/**
 * The worker process: resolves Temporal (TEMPORAL_ADDRESS, else the embedded dev server, started when
 * none runs and left running when the worker stops), makes sure Ferry's search attributes exist,
 * loads the activities and runs until SIGINT/SIGTERM.
 * @returns the process exit code
 */
export async function main(argv: string[] = process.argv.slice(2), env: NodeJS.ProcessEnv = process.env): Promise<number> {
  if (argv[0] === 'bundle') {
    if (!argv[1]) {
      process.stderr.write('usage: worker bundle <output-file>\n');
      return 2;
    }
    await writeWorkflowBundle(argv[1]);
    return 0;
  }
  const logger = createLogger(env);
  const metricsAt = metricsAddresses(argv, env);
  installRuntimeLogger(logger, metricsAt.sdk);
  if (metricsAt.sdk) logger.info({ address: `${metricsAt.sdk.host}:${metricsAt.sdk.port}` }, 'Temporal SDK metrics at /metrics');
  const metricsServer = metricsAt.ferry ? await startMetricsServer(metricsAt.ferry) : undefined;
  if (metricsServer) logger.info({ address: `${metricsServer.address.host}:${metricsServer.address.port}` }, 'Ferry metrics at /metrics');
  const temporal = await resolveTemporal({ env, log: (m) => logger.info(m) });
  if (temporal.origin === 'started') {
    logger.info({ pid: temporal.pid, address: temporal.address }, 'the Temporal dev server runs on its own: it outlives this worker (`ferry server stop` stops it)');
  }
  if (temporal.origin === 'external') {
    // The dev server path registers them itself; an external server may lack them.
    const admin = await Connection.connect({ address: temporal.address });
    try {
      await ensureSearchAttributes(admin, temporal.namespace);
    } catch (e) {
      logger.warn({ err: e }, 'cannot check or register Ferry search attributes (ferry list --phase needs them)');
    } finally {
      await admin.close();
    }
  }
  const connection = await NativeConnection.connect({ address: temporal.address });
  try {
    const workflowBundle = prebuiltBundle(env) ?? cachedWorkflowBundle(env, logger);
    const deployment = deploymentFromEnv(env, workflowBundleKey(), { embedded: temporal.origin !== 'external', taskQueue: taskQueueFromEnv(env) });
    await runWorker({
      connection,
      namespace: temporal.namespace,
      taskQueue: taskQueueFromEnv(env),
      activities: await loadActivities(logger),
      logger,
      ...(workflowBundle ? { workflowBundle } : {}),
      ...(deployment ? { deployment } : {}),
    });
  } finally {
    await connection.close();
    await metricsServer?.close();
  }
  return 0;
}

if (require.main === module) {
  main().then(
    (code) => process.exit(code),
    (err: unknown) => {
      process.stderr.write(`ferry worker: ${err instanceof Error ? err.message : String(err)}\n`);
      process.exit(1);
    },
  );
}
