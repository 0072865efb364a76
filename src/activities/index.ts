/**
 * Ferry's activities: thin adapters from the contract (./contract.ts) to the libraries (src/migration, src/k8s,
 * src/images, src/statetransfer). Each one builds the cluster clients from the plan, calls the
 * library, heartbeats while it waits, and turns errors into ApplicationFailures typed with
 * FailureType (non-retryable ones carry an explanation an operator can act on).
 *
 * Error mapping (`toApplicationFailure`):
 *   FerryError category    → FailureType        retryable
 *   transient              → FerryTransient      yes
 *   preflight, conflict    → FerryPreflight      no
 *   auth                   → FerryAuth           no
 *   noSpace                → FerryNoSpace        no
 *   config                 → FerryConfig         no
 *   partial                → FerryPartial        no
 *   fatal                  → FerryFatal          no
 *   API errors: transient (network, 408, 429, 5xx, 409 races) → FerryTransient; a 403 from Pod
 *   Security admission ("violates PodSecurity") → FerryConfig with the namespace-label fix; other 401/403 → FerryAuth;
 *   other 4xx → FerryConfig. Programming errors (TypeError, RangeError, …) → FerryFatal; any other
 *   error → FerryTransient (the retry policy bounds the attempts).
 * A cancelled activity rethrows Temporal's cancellation. runTransfer leaves its client pod running when
 * the cancellation is the worker's shutdown (isWorkerShutdown), so that the next worker re-attaches.
 */
import { Context } from '@temporalio/activity';
import type { Client } from '@temporalio/client';
import { ApplicationFailure } from '@temporalio/common';
import pino from 'pino';
import type { V1StorageClass } from '@kubernetes/client-node';
import type { ClusterRef, MigrationPlan, NamespaceMapping } from '../plan/schema';
import { apiErrorMessage, isTransient, KubeClient, podSecurityRejection, statusCode } from '../k8s/client';
import { cleanupMigration } from '../migration/cleanup';
import { clearCutoverMarks, deleteDestinationPVCs, ensureDestinationNamespace, markCutover, prepareDestination } from '../migration/destination';
import { discoverNamespace } from '../migration/discovery';
import { endpointTypeInUse, ensureEndpoint } from '../migration/endpoint';
import { AbortedError, FerryError, errorMessage, type FerryErrorCategory } from '../core/errors';
import type { Logger } from '../core/log';
import { ENDPOINT_TYPES, type EndpointType } from '../statetransfer/types';
import { POD_SECURITY_ENFORCE_LABEL, runPreflight, type PreflightCluster } from '../migration/preflight';
import { quiesceWorkloads, recordsFromAnnotations, unquiesceWorkloads, waitForQuiesced } from '../migration/quiesce';
import { clientLifecycleFor, clientSideTransferFor, namespaceTransferFor } from '../migration/compose';
import { DEFAULT_PENDING_LIMITS, type PendingLimits } from '../migration/follow';
import { checkSourceWriters } from '../migration/writers';
import { probeConnectivity } from '../migration/probe';
import { runClientTransfer, type ClientTransferOptions } from '../migration/client-run';
import { ensureServer } from '../migration/server';
import { ensureCredentials, readClientCredentials } from '../migration/credentials';
import { ensureServerForSync, explainSyncFailure } from '../migration/server-sync';
import { prepareGroupSnapshot, preparePointInTime, releaseGroupSnapshot, releasePointInTime, type GroupSnapshotRun } from '../migration/snapshot';
import { holdBackgroundHooks, runHook } from '../migration/hooks';
import { checkDestination } from '../migration/destination-check';
import { rebindClaim } from '../migration/rebind';
import { hookCluster } from '../plan/hooks';
import { agentAllowed, ensureAgents, probeThroughAgent, readyAgent, releaseAgent, releaseAgents, runAgentSync } from '../migration/agent';
import { copyNamespaceImages } from '../images';
import type { SkopeoOptions } from '../images/skopeo';
import { describeNamespaceWorkflow } from '../temporal/namespace-workflows';
import { isWorkerShutdown } from './shutdown';
import { defaultMetrics, type ActivityOutcome, type FerryMetrics, type SyncLabels } from '../metrics';
import { DEFAULT_MAX_AGENTS, type FerryActivities, type NamespaceContext, type TransferRequest } from './contract';
import { DEFAULT_VERIFY_DESTINATION_SECONDS, FailureType, type ClusterSide, type FailureTypeName, type HookResult, type PVCInfo, type RebindResult } from '../core/types';

/** Builds the client of one cluster from the plan's reference. */
export type ClientFactory = (ref: ClusterRef, side: ClusterSide) => KubeClient;

/** Dependencies of `createActivities` (all optional). */
export interface ActivityDeps {
  /** Default: a KubeClient from the kubeconfig and context of the reference (loadKubeConfig). */
  clientFactory?: ClientFactory;
  /** Default: pino at info level on stdout, named "ferry-activities". */
  logger?: Logger;
  /** skopeo settings for copyImages (binary, timeouts). */
  skopeo?: SkopeoOptions;
  /** Seconds between progress polls of a running transfer (default 5). */
  pollIntervalSeconds?: number;
  /** The Temporal Client describeNamespaceWorkflows uses. Default: the worker's own client
   * (Context.current().client, same connection and Temporal namespace as the worker). */
  temporalClient?: () => Client;
  /** Where the activities record their metrics. Default: the process's (metrics/index.ts defaultMetrics). */
  metrics?: FerryMetrics;
}

const CATEGORY_TYPES: Record<FerryErrorCategory, FailureTypeName> = {
  transient: FailureType.Transient,
  preflight: FailureType.Preflight,
  conflict: FailureType.Preflight,
  auth: FailureType.Auth,
  noSpace: FailureType.NoSpace,
  config: FailureType.Config,
  partial: FailureType.Partial,
  fatal: FailureType.Fatal,
};

/**
 * Turns any error into an ApplicationFailure per the table in the module docstring. `activity` names
 * the activity in the message.
 */
export function toApplicationFailure(err: unknown, activity: string): ApplicationFailure {
  if (err instanceof ApplicationFailure) return err;
  let type: FailureTypeName;
  let message: string;
  let details: unknown[] = [];
  if (err instanceof FerryError) {
    type = CATEGORY_TYPES[err.category];
    message = err.message;
    if (err.details) details = [err.details];
  } else if (statusCode(err) !== undefined && !isTransient(err)) {
    const code = statusCode(err)!;
    message = apiErrorMessage(err);
    const rejected = podSecurityRejection(err);
    if (rejected) {
      type = FailureType.Config;
      message =
        `Pod Security admission rejected a transfer pod: ${rejected}; the namespace's ${POD_SECURITY_ENFORCE_LABEL} label does not admit the pods of the plan's security.mode ` +
        `(preserve-ownership needs "baseline"): label the namespace ${POD_SECURITY_ENFORCE_LABEL}=baseline for the migration, or use security.mode: restricted`;
    } else if (code === 401 || code === 403) {
      type = FailureType.Auth;
      message = `the Kubernetes API refused Ferry's identity: ${message}; fix the kubeconfig credentials or grant the RBAC permissions preflight lists`;
    } else type = code === 409 ? FailureType.Transient : FailureType.Config;
  } else if (isTransient(err)) {
    type = FailureType.Transient;
    message = statusCode(err) !== undefined ? apiErrorMessage(err) : errorMessage(err);
  } else if (err instanceof TypeError || err instanceof RangeError || err instanceof ReferenceError || err instanceof SyntaxError) {
    type = FailureType.Fatal;
    message = `internal error: ${errorMessage(err)}`;
  } else {
    type = FailureType.Transient;
    message = errorMessage(err);
  }
  return ApplicationFailure.create({
    type,
    message: `${activity}: ${message}`,
    nonRetryable: type !== FailureType.Transient,
    details,
    ...(err instanceof Error ? { cause: err } : {}),
  });
}

/** The activity context, or undefined outside an activity (library use, tests). */
function activityContext(): Context | undefined {
  try {
    return Context.current();
  } catch {
    return undefined;
  }
}

/** The details of each running activity's latest heartbeat, re-sent by `keepAlive`. */
const lastHeartbeat = new WeakMap<Context, unknown>();

function heartbeat(details?: unknown): void {
  const context = activityContext();
  if (!context) return;
  lastHeartbeat.set(context, details);
  context.heartbeat(details);
}

/**
 * Heartbeats the activity's latest details (or none) every third of its heartbeat timeout (at most
 * every 10 s) while `body` runs, whatever the library is doing between its own heartbeats (deleting
 * an old pod, a skopeo copy, an API call being retried): with the heartbeat timeout of
 * activity-options.ts, a dead worker is noticed within that timeout instead of the start-to-close
 * timeout. Activities without a heartbeat timeout run `body` as is.
 */
async function keepAlive<T>(body: () => Promise<T>): Promise<T> {
  const context = activityContext();
  const timeoutMs = context?.info.heartbeatTimeoutMs;
  if (!context || !timeoutMs) return body();
  const timer = setInterval(() => {
    context.heartbeat(lastHeartbeat.get(context));
  }, Math.max(10, Math.min(10_000, Math.floor(timeoutMs / 3))));
  try {
    return await body();
  } finally {
    clearInterval(timer);
  }
}

/**
 * Seconds a wait inside the activity may last so that it ends with its own explanation before
 * Temporal's start-to-close timeout ends the attempt without one: the start-to-close timeout less
 * 10 % (at most 60 s). undefined outside an activity.
 */
function waitBudgetSeconds(): number | undefined {
  const ms = activityContext()?.info.startToCloseTimeoutMs;
  if (!ms) return undefined;
  return Math.max(1, (ms - Math.min(60_000, ms / 10)) / 1000);
}

function cancellationSignal(): AbortSignal | undefined {
  return activityContext()?.cancellationSignal;
}

/** A Logger that adds `base` fields to every entry. */
function withFields(log: Logger, base: Record<string, unknown>): Logger {
  return {
    debug: (f, m) => log.debug({ ...base, ...f }, m),
    info: (f, m) => log.info({ ...base, ...f }, m),
    warn: (f, m) => log.warn({ ...base, ...f }, m),
    error: (f, m) => log.error({ ...base, ...f }, m),
  };
}

/**
 * Creates the activities. The returned object is what the worker registers.
 */
export function createActivities(deps: ActivityDeps = {}): FerryActivities {
  const baseLog: Logger = deps.logger ?? pino({ name: 'ferry-activities' });
  const factory: ClientFactory = deps.clientFactory ?? ((ref) => KubeClient.fromOptions({ kubeconfig: ref.kubeconfig, context: ref.context }));
  const clients = (plan: MigrationPlan) => ({ source: () => factory(plan.source, 'source'), destination: () => factory(plan.destination, 'destination') });
  const metrics = deps.metrics ?? defaultMetrics();

  /** Runs one activity body with its logger; maps errors (see module docstring); records how it ended
   * (metrics: every activity, and `onEnd` for the activity's own). */
  async function run<T>(activity: string, fields: Record<string, unknown>, body: (log: Logger, signal: AbortSignal | undefined) => Promise<T>, onEnd?: (outcome: ActivityOutcome<T>) => void): Promise<T> {
    const log = withFields(baseLog, { activity, ...fields });
    const signal = cancellationSignal();
    const ended = (outcome: ActivityOutcome<T>) => {
      try {
        metrics.activityEnded(activity, { migration: String(fields.migrationId ?? ''), ...(typeof fields.namespace === 'string' ? { namespace: fields.namespace } : {}) }, outcome);
        onEnd?.(outcome);
      } catch (err) {
        log.warn({ error: errorMessage(err) }, 'could not record the metrics of the activity');
      }
    };
    try {
      const value = await keepAlive(() => body(log, signal));
      ended({ result: 'success', value });
      return value;
    } catch (err) {
      if (signal?.aborted || err instanceof AbortedError) ended({ result: 'cancelled' });
      if (signal?.aborted) throw signal.reason ?? err;
      if (err instanceof AbortedError) throw err;
      const failure = toApplicationFailure(err, activity);
      log.warn({ failureType: failure.type, nonRetryable: failure.nonRetryable }, failure.message);
      ended({ result: 'failed', failureType: failure.type ?? '' });
      throw failure;
    }
  }

  const nsFields = (ctx: NamespaceContext) => ({ migrationId: ctx.migrationId, namespace: ctx.namespace.source });
  /** The group snapshot of a stage pass, as the plan says (prepareGroupSnapshot, prepareHeldGroupSnapshot). */
  const groupSnapshotRun = (input: NamespaceContext & { pass: number; pvcs: string[] }, log: Logger, signal: AbortSignal | undefined): GroupSnapshotRun => ({
    migrationId: input.migrationId,
    namespace: input.namespace.source,
    pass: input.pass,
    pvcs: input.pvcs,
    ...(input.plan.volumeGroupSnapshotClass !== undefined ? { volumeGroupSnapshotClass: input.plan.volumeGroupSnapshotClass } : {}),
    timeoutSeconds: input.plan.timeouts.podStartSeconds,
    ...(signal ? { signal } : {}),
    logger: log,
  });

  return {
    discoverNamespace: (ctx) =>
      run('discoverNamespace', nsFields(ctx), async (log) => {
        const c = clients(ctx.plan);
        let destinationClasses: V1StorageClass[] | undefined;
        try {
          destinationClasses = await c.destination().list<V1StorageClass>({ apiVersion: 'storage.k8s.io/v1', kind: 'StorageClass' });
        } catch (err) {
          log.warn({ error: errorMessage(err) }, 'destination StorageClasses not readable; keeping source class names (preflight checks them)');
        }
        return discoverNamespace(c.source(), { mapping: ctx.namespace, plan: ctx.plan, migrationId: ctx.migrationId, ...(destinationClasses ? { destinationClasses } : {}), logger: log });
      }),

    preflight: (input) =>
      run('preflight', { migrationId: input.migrationId }, async () => {
        const cluster = (ref: ClusterRef, side: ClusterSide): PreflightCluster => {
          try {
            return { client: factory(ref, side) };
          } catch (err) {
            return { error: errorMessage(err) };
          }
        };
        return runPreflight({
          migrationId: input.migrationId,
          plan: input.plan,
          discoveries: input.discoveries,
          source: cluster(input.plan.source, 'source'),
          destination: cluster(input.plan.destination, 'destination'),
        });
      }),

    prepareDestination: (input) =>
      run('prepareDestination', nsFields(input), async (log) => {
        const c = clients(input.plan);
        return prepareDestination(c.source(), c.destination(), input.migrationId, input.discovery, log);
      }),

    createEndpoint: (ctx) =>
      run('createEndpoint', nsFields(ctx), async (log, signal) => {
        // Runs beside prepareDestination (patch setup-concurrent): the endpoint's objects need the
        // namespace, made the same way (idempotent; Ferry's whichever activity creates it).
        const c = clients(ctx.plan);
        const destination = c.destination();
        await ensureDestinationNamespace(c.source(), destination, ctx.migrationId, ctx.namespace.source, ctx.namespace.destination, log);
        const { address, type, reason } = await ensureEndpoint(destination, ctx.plan, ctx.migrationId, ctx.namespace.destination, {
          timeoutSeconds: ctx.plan.timeouts.endpointReadySeconds,
          onTick: (reason) => heartbeat({ reason }),
          ...(ctx.exclude?.length ? { exclude: ctx.exclude.filter((t): t is EndpointType => (ENDPOINT_TYPES as readonly string[]).includes(t)) } : {}),
          ...(signal ? { signal } : {}),
          logger: log,
        });
        return { ...address, chosen: { type, reason } };
      }),

    createServer: (input) =>
      run('createServer', nsFields(input), async (log, signal) => {
        if (input.discovery.pvcs.length === 0) {
          log.info({}, 'no PVC to transfer in this namespace; no server needed');
          return;
        }
        const c = clients(input.plan);
        const source = c.source();
        const destination = c.destination();
        const type = await endpointTypeInUse(destination, input.plan, input.migrationId, input.namespace.destination);
        if (!type) throw new FerryError('config', `the endpoint of namespace ${input.namespace.destination} does not exist: createEndpoint must run first`);
        const nt = namespaceTransferFor(input.plan, input.migrationId, input.namespace, input.discovery.pvcs, type);
        const { credentials } = await ensureCredentials(source, destination, nt, input.address, { logger: log, ...(signal ? { signal } : {}) });
        heartbeat({ reason: 'credentials ready' });
        const server = ensureServer(destination, nt, credentials, {
          timeoutSeconds: input.plan.timeouts.serverReadySeconds,
          onTick: (reason) => heartbeat({ reason }),
          ...(signal ? { signal } : {}),
          logger: log,
        });
        // The source's warm agents start while the server does (they need only the credentials and
        // the address): the probe runs in one, and the first syncs find their agents warm.
        // Not for a ReadWriteOncePod PVC in use (no second pod can mount it before quiesce). Best
        // effort: an agent that cannot start here is made again (and explained) by its first sync.
        // Only the first stage wave's (plan concurrency): the others start with their own first sync,
        // while earlier syncs copy, instead of delaying the first byte.
        const early = input.discovery.pvcs
          .filter((p) => !(p.accessModes.includes('ReadWriteOncePod') && p.nodeName))
          .slice(0, Math.min(input.plan.concurrency, input.plan.maxAgents ?? DEFAULT_MAX_AGENTS));
        // A server that fails ends the set-up at once: the agents' wait stops with it.
        const stopAgents = new AbortController();
        const agentSignal = signal ? AbortSignal.any([signal, stopAgents.signal]) : stopAgents.signal;
        const agents =
          input.plan.agents === 'per-sync' || early.length === 0
            ? Promise.resolve([])
            : ensureAgents(source, clientSideTransferFor(input.plan, input.migrationId, input.namespace, input.discovery.pvcs), early, input.address, credentials, {
                timeoutSeconds: Math.min(SETUP_AGENT_SECONDS, input.plan.timeouts.podStartSeconds),
                pendingLimits: { ...pendingLimitsOf(input.plan), pendingSeconds: Math.min(SETUP_AGENT_SECONDS, input.plan.timeouts.podStartSeconds) },
                onTick: (reason) => heartbeat({ reason }),
                signal: agentSignal,
                logger: log,
              });
        const s = await server.then(
          () => undefined,
          (err: unknown) => err,
        );
        if (s !== undefined) {
          stopAgents.abort();
          await agents.catch(() => undefined);
          throw s;
        }
        const [a] = await Promise.allSettled([agents]);
        if (a.status === 'rejected') {
          if (signal?.aborted) throw a.reason;
          log.warn({ error: errorMessage(a.reason) }, 'the transfer agents did not all start during set-up; each PVC\'s first sync makes its own');
        }
      }),

    probeConnectivity: (input) =>
      run('probeConnectivity', nsFields(input), async (log, signal) => {
        const source = clients(input.plan).source();
        const credentials = await readClientCredentials(source, input.migrationId, input.namespace.source);
        if (input.plan.agents !== 'per-sync') {
          // A warm agent made by createServer: the probe is an exec in it, not a pod to start.
          const nsTransfer = clientSideTransferFor(input.plan, input.migrationId, input.namespace, [probeVolume()]);
          const agent = await readyAgent(source, nsTransfer);
          if (agent) {
            await probeThroughAgent(source, nsTransfer, agent, input.address, { ...(signal ? { signal } : {}), logger: log });
            return;
          }
        }
        const nt = clientSideTransferFor(input.plan, input.migrationId, input.namespace, [probeVolume()], clientLifecycleFor(await source.version()));
        await probeConnectivity(source, nt, credentials, input.address, {
          pendingLimits: pendingLimitsOf(input.plan),
          onTick: (reason) => heartbeat({ reason }),
          ...(signal ? { signal } : {}),
          logger: log,
        });
      }),

    runTransfer: (req) =>
      run('runTransfer', { ...nsFields(req), pvc: req.pvc.name, pass: req.pass, final: req.final }, async (log, signal) => {
        const labels = syncLabels(req);
        const c = clients(req.plan);
        const source = c.source();
        const destination = c.destination();
        // The server and both sides' credentials, made right before every sync (server-sync.ts).
        const serverOptions = { timeoutSeconds: req.plan.timeouts.serverReadySeconds, onTick: () => heartbeat(), ...(signal ? { signal } : {}), logger: log };
        const server = await ensureServerForSync(source, destination, req, serverOptions);
        const credentials = server.credentials;
        // The agent's pod does not depend on the cluster's sidecar support; a client pod per sync does.
        let nt = clientSideTransferFor(req.plan, req.migrationId, req.namespace, [req.pvc]);
        let result;
        try {
          // How every sync of this activity runs and reports, whatever runs it (client pod or agent).
          const runOptions: ClientTransferOptions = {
            onProgress: (progress) => {
              heartbeat(progress);
              metrics.syncProgress(labels, progress);
            },
            ...(signal ? { signal } : {}),
            // A worker shutting down leaves the pod copying: the next attempt re-attaches to it.
            keepPodOnAbort: () => isWorkerShutdown(activityContext()),
            logger: log,
            pendingLimits: pendingLimitsOf(req.plan),
            ...(req.plan.timeouts.transferSeconds !== undefined ? { timeoutSeconds: req.plan.timeouts.transferSeconds } : {}),
            ...(deps.pollIntervalSeconds !== undefined ? { intervalSeconds: deps.pollIntervalSeconds } : {}),
          };
          // A stage sync from a point-in-time copy (sourceCopyMethod snapshot | clone) reads a new claim
          // each time: a client pod per sync, not the agent (which mounts the source PVC for the final sync).
          const pointInTime = !req.final && req.plan.sourceCopyMethod !== 'direct' ? req.plan.sourceCopyMethod : undefined;
          if (pointInTime) {
            const pit = { migrationId: req.migrationId, namespace: req.namespace.source, pvc: req.pvc.name, capacity: req.pvc.capacity, volumeMode: req.pvc.volumeMode, pass: req.pass, ...(req.pvc.storageClass !== undefined ? { storageClass: req.pvc.storageClass } : {}) };
            const readFrom = await preparePointInTime(source, {
              ...pit,
              method: pointInTime,
              ...(req.plan.volumeSnapshotClass !== undefined ? { volumeSnapshotClass: req.plan.volumeSnapshotClass } : {}),
              ...(req.fromSnapshot !== undefined ? { fromSnapshot: req.fromSnapshot } : {}),
              timeoutSeconds: req.plan.timeouts.podStartSeconds,
              ...(signal ? { signal } : {}),
              logger: log,
            });
            nt = clientSideTransferFor(req.plan, req.migrationId, req.namespace, [req.pvc], clientLifecycleFor(await source.version()));
            const active = metrics.clientPodActive({ migration: req.migrationId, namespace: req.namespace.source }, 'pod');
            try {
              result = await runClientTransfer(source, nt, credentials, { pvc: req.pvc, address: req.address, final: false, pass: req.pass, readFrom }, runOptions).finally(active);
            } finally {
              // A worker shutting down leaves the pod copying from the claim: keep both for the next attempt.
              if (!isWorkerShutdown(activityContext())) await releasePointInTime(source, pit, log);
            }
            return result;
          }
          const warm = req.plan.agents !== 'per-sync' && (await agentAllowed(source, nt, req.pvc.name, req.plan.maxAgents ?? DEFAULT_MAX_AGENTS));
          if (req.plan.agents !== 'per-sync' && !warm) log.info({ maxAgents: req.plan.maxAgents ?? DEFAULT_MAX_AGENTS }, 'the namespace has its maximum of warm agents: this PVC syncs with a client pod per sync');
          if (!warm) nt = clientSideTransferFor(req.plan, req.migrationId, req.namespace, [req.pvc], clientLifecycleFor(await source.version()));
          const sync = warm ? runAgentSync : runClientTransfer;
          const active = metrics.clientPodActive({ migration: req.migrationId, namespace: req.namespace.source }, warm ? 'agent' : 'pod');
          result = await sync(source, nt, credentials, { pvc: req.pvc, address: req.address, final: req.final, pass: req.pass }, { ...runOptions, agentStartSeconds: req.plan.timeouts.podStartSeconds }).finally(active);
        } catch (err) {
          throw await explainSyncFailure(err, destination, server, serverOptions);
        }
        // The final sync succeeded: the destination PVC now belongs to the cut-over application; the
        // mark keeps any later migration (or a new run of this id) from overwriting it (preflight).
        if (req.final) await markCutover(destination, req.migrationId, req.namespace.destination, req.pvc.destinationName);
        // Its agent has nothing left to do: its pod slot and its read-only mount go now, not at cleanup
        // (unless the namespace deletes all its agents after the last final sync: keepAgent).
        if (req.final && !req.keepAgent) await releaseAgent(source, nt, req.pvc.name).catch((err: unknown) => log.warn({ error: errorMessage(err) }, 'could not delete the transfer agent after the final sync; cleanup deletes it'));
        return result;
      }, (outcome) => metrics.syncEnded(syncLabels(req), outcome)),

    prepareGroupSnapshot: (input) =>
      run('prepareGroupSnapshot', nsFields(input), async (log, signal) => prepareGroupSnapshot(clients(input.plan).source(), groupSnapshotRun(input, log, signal))),

    prepareHeldGroupSnapshot: (input) =>
      run('prepareHeldGroupSnapshot', nsFields(input), async (log, signal) => {
        const source = clients(input.plan).source();
        const hooks = input.hooks.map((n) => {
          const h = (input.plan.hooks ?? []).find((x) => x.name === n);
          if (!h) throw new FerryError('config', `the plan has no hook named ${n}`);
          return h;
        });
        const beat = setInterval(() => heartbeat({ hooks: input.hooks }), 10_000);
        let held: Awaited<ReturnType<typeof holdBackgroundHooks>> | undefined;
        let results: HookResult[] | undefined;
        const release = async () => {
          if (held && !results) results = await held.release();
        };
        try {
          held = await holdBackgroundHooks(source, input.namespace.source, hooks, input.migrationId, { ...(signal ? { signal } : {}), logger: log });
          if (held.failedFatally) {
            await release();
            return { members: {}, hooks: results! };
          }
          const members = await prepareGroupSnapshot(source, { ...groupSnapshotRun(input, log, signal), onCut: release });
          await release();
          return { members, hooks: results! };
        } finally {
          // never leave the application held: an error or a cancellation releases it too
          await release().catch((err: unknown) => log.warn({ error: errorMessage(err) }, 'releasing the background hooks failed (their own limit releases them)'));
          clearInterval(beat);
        }
      }),

    releaseGroupSnapshot: (input) =>
      run('releaseGroupSnapshot', nsFields(input), async (_log, signal) => releaseGroupSnapshot(clients(input.plan).source(), { migrationId: input.migrationId, namespace: input.namespace.source }, signal)),

    runHook: (input) =>
      run('runHook', { ...nsFields(input), hook: input.hook }, async (log, signal) => {
        const hook = (input.plan.hooks ?? []).find((h) => h.name === input.hook);
        if (!hook) throw new FerryError('config', `the plan has no hook named ${input.hook}`);
        const where = hookCluster(hook);
        const client = where === 'source' ? clients(input.plan).source() : clients(input.plan).destination();
        // A hook's command is silent while it runs: heartbeat so that a lost worker is noticed.
        const beat = setInterval(() => heartbeat({ hook: hook.name }), 10_000);
        try {
          return await runHook(client, where === 'source' ? input.namespace.source : input.namespace.destination, hook, input.migrationId, { ...(signal ? { signal } : {}), logger: log });
        } finally {
          clearInterval(beat);
        }
      }),

    quiesce: (input) =>
      run('quiesce', { migrationId: input.migrationId }, async (log) =>
        metrics.timeQuiesce(input.migrationId, 'scale', () => quiesceWorkloads(clients(input.plan).source(), input.workloads, { logger: log, migrationId: input.migrationId })),
      ),

    checkSourceWriters: (input) =>
      run('checkSourceWriters', nsFields(input), async (log, signal) =>
        checkSourceWriters(clients(input.plan).source(), input.namespace.source, input.pvcs, {
          deleteUnmanaged: input.deleteUnmanaged,
          ...(input.retentionGuard ? { retentionOf: input.migrationId } : {}),
          onTick: (remaining) => heartbeat({ terminating: remaining }),
          ...(signal ? { signal } : {}),
          logger: log,
        }),
      ),

    rebindPVCs: (input) =>
      run('rebindPVCs', nsFields(input), async (log, signal) => {
        const c = clients(input.plan);
        const ns = input.namespace.source;
        // no Ferry pod (server, agent) may hold a claim while it is deleted
        await cleanupMigration(c.source(), c.destination(), input.migrationId, { source: [ns], destination: [input.namespace.destination] }, { ...(signal ? { signal } : {}), logger: log });
        const out: RebindResult[] = [];
        for (const p of input.pvcs) {
          heartbeat({ pvc: p.name });
          out.push(await rebindClaim(c.destination(), input.namespace.destination, p.name, p.temporary, { ...(signal ? { signal } : {}), logger: log }));
        }
        return out;
      }),

    checkDestination: (input) =>
      run('checkDestination', nsFields(input), async (log, signal) =>
        checkDestination(clients(input.plan).destination(), input.namespace.destination, input.claims, {
          timeoutSeconds: input.plan.timeouts.verifyDestinationSeconds ?? DEFAULT_VERIFY_DESTINATION_SECONDS,
          onTick: (waitingFor) => heartbeat({ waitingFor }),
          ...(signal ? { signal } : {}),
          logger: log,
        }),
      ),

    waitForQuiesced: (input) =>
      run('waitForQuiesced', { migrationId: input.migrationId }, async (log, signal) =>
        metrics.timeQuiesce(input.migrationId, 'wait', () => waitForQuiesced(clients(input.plan).source(), input.workloads, {
          logger: log,
          // Ends with the pods still running named, before the start-to-close timeout would.
          ...withTimeout(waitBudgetSeconds()),
          migrationId: input.migrationId,
          onTick: (remaining) => heartbeat({ remaining: remaining.length, pods: remaining.slice(0, 20) }),
          ...(signal ? { signal } : {}),
        })),
      ),

    releaseAgents: (ctx) =>
      run('releaseAgents', nsFields(ctx), async (log) => {
        const released = await releaseAgents(clients(ctx.plan).source(), ctx.namespace.source, ctx.migrationId);
        log.info({ released }, 'transfer agents deleted after the final sync');
        return { released };
      }),

    unquiesce: (input) =>
      run('unquiesce', { migrationId: input.migrationId }, async (log) => {
        const source = clients(input.plan).source();
        const fromAnnotations = input.workloads ? await recordsFromAnnotations(source, input.workloads, input.records, { migrationId: input.migrationId, logger: log }) : [];
        await unquiesceWorkloads(source, [...input.records, ...fromAnnotations], { logger: log });
      }),

    cleanup: (input) =>
      run('cleanup', { migrationId: input.migrationId, ...(input.namespace ? { namespace: input.namespace.source } : {}) }, async (log, signal) => {
        const c = clients(input.plan);
        const namespaces: NamespaceMapping[] = input.namespace ? [input.namespace] : input.plan.namespaces;
        if (input.clearCutoverMarks) for (const n of namespaces) await clearCutoverMarks(c.destination(), input.migrationId, n.destination, log);
        const report = await cleanupMigration(c.source(), c.destination(), input.migrationId, { source: namespaces.map((n) => n.source), destination: namespaces.map((n) => n.destination) }, {
          onTick: (remaining) => heartbeat({ remaining }),
          ...(signal ? { signal } : {}),
          logger: log,
        });
        if (input.downtimeSeconds !== undefined && input.namespace) metrics.observeDowntime({ migration: input.migrationId, namespace: input.namespace.source }, input.downtimeSeconds);
        return report;
      }),

    deleteDestinationPVCs: (input) =>
      run('deleteDestinationPVCs', nsFields(input), async (log) => {
        await deleteDestinationPVCs(clients(input.plan).destination(), input.migrationId, input.namespace.destination, input.pvcs, log);
      }),

    copyImages: (ctx) =>
      run('copyImages', nsFields(ctx), async (log, signal) =>
        copyNamespaceImages(clients(ctx.plan).source(), ctx.plan, ctx.namespace, {
          logger: log,
          onProgress: (done, total, current) => heartbeat({ done, total, current }),
          ...(signal ? { signal } : {}),
          ...(deps.skopeo ? { skopeo: deps.skopeo } : {}),
        }),
        (outcome) => {
          if (outcome.result === 'success') metrics.imagesCopied({ migration: ctx.migrationId, namespace: ctx.namespace.source }, outcome.value);
        },
      ),

    describeNamespaceWorkflows: (input) =>
      run('describeNamespaceWorkflows', { migrationId: input.migrationId }, async () => {
        const client = deps.temporalClient?.() ?? Context.current().client;
        const out = [];
        for (const workflowId of input.workflowIds) {
          out.push(await describeNamespaceWorkflow(client, workflowId));
          heartbeat({ described: out.length, of: input.workflowIds.length });
        }
        return out;
      }),
  };
}

/** The metric labels of one sync. */
function syncLabels(req: TransferRequest): SyncLabels {
  return { migration: req.migrationId, namespace: req.namespace.source, pvc: req.pvc.name, final: req.final, pass: req.pass };
}

function withTimeout(timeoutSeconds: number | undefined): { timeoutSeconds?: number } {
  return timeoutSeconds !== undefined ? { timeoutSeconds } : {};
}

/** Seconds createServer waits for the warm agents it starts (the first sync of a PVC waits for its own). */
const SETUP_AGENT_SECONDS = 120;

/** The bounds of a transfer or probe pod that cannot start: the defaults, pendingSeconds from the plan. */
function pendingLimitsOf(plan: MigrationPlan): PendingLimits {
  return { ...DEFAULT_PENDING_LIMITS, pendingSeconds: plan.timeouts.podStartSeconds };
}

/** A stand-in PVC for the probe pod (its volume is removed; only the transfer's client pieces are used). */
function probeVolume(): PVCInfo {
  return { name: 'probe', destinationName: 'probe', capacity: '0', capacityBytes: 0, accessModes: [], destinationAccessModes: [], volumeMode: 'Filesystem', usedBy: [] };
}
