/**
 * The warm transfer agents in the source cluster (statetransfer/pods/agent.ts builds them): one
 * long-lived pod per PVC, made at its first sync and kept until cleanup, which runs every later sync
 * of the PVC through `exec` instead of a new client pod. A sync then costs an exec and the rsync
 * delta, not a pod's scheduling, volume mount, image and container start (issue 9: ~5 s per sync).
 *
 * `ensureAgent` keeps the agent right: an agent built from anything else than what the sync needs
 * now (another endpoint address, renewed certificates, another node for a ReadWriteOnce PVC, a new
 * Ferry version) is replaced; an agent that ended or is being deleted is made again.
 *
 * `runAgentSync` starts (or re-attaches to) one sync in the agent and follows it: the start exec itself
 * waits up to `intervalSeconds` for the sync's end and returns its result (a small delta costs one
 * exec), then it long-polls the agent (an exec that returns as soon as the sync ends, or after
 * `intervalSeconds`), reads progress
 * from the agent's log between polls, and turns the sync's report into a TransferResult with the same
 * verdict as a client pod's (progress.ts `transferVerdict`).
 */
import { createHash } from 'node:crypto';
import type { V1Pod } from '@kubernetes/client-node';
import type { TransferProgress, TransferResult } from '../core/types';
import type { NamespaceTransfer, TransferCredentials } from '../statetransfer/namespace-transfer';
import { parseTerminationMessage, WAIT_PORT_FN } from '../statetransfer/pods/lifecycle';
import {
  AGENT_ANNOTATION,
  AGENT_SPEC_ANNOTATION,
  AGENT_STATE_MARKER,
  AGENT_TUNNEL_WAIT_SECONDS,
  agentStartCommand,
  agentStopCommand,
  agentSyncId,
  agentWaitCommand,
  parseAgentState,
  parseAttachedSince,
  parseStartedAt,
  syncLines,
  type AgentSyncState,
} from '../statetransfer/pods/agent';
import { isTransient, ringOnChange, selectorString, sleep, Wakeup, type KubeClient } from '../k8s/client';
import { LABELS, migrationSelector } from '../statetransfer/names';
import { AbortedError, FerryError, errorMessage } from '../core/errors';
import { silentLogger, type Logger } from '../core/log';
import { diagnosePod, describePodState, FINAL_LIMIT_BYTES, FINAL_TAIL_LINES, progressFromLogTail, PROGRESS_LIMIT_BYTES, PROGRESS_TAIL_LINES, readLogTail, transferVerdict, type PendingLimits } from './follow';
import { explainProbeFailure, PROBE_EXIT, probeScript, refusedByEndpoint } from '../statetransfer/probe';
import { deletePodAndWait, type ClientTransferOptions, type ClientTransferRequest } from './client-run';
import { ensureOwned } from './server';

/**
 * Whether the sync of `pvcName` may use a warm agent: it has one already, or the namespace has fewer
 * than `max` agents of this migration (concurrent syncs may overshoot by their number: each counts
 * before it creates). The limit keeps a namespace of many PVCs within its nodes' maxPods.
 */
export async function agentAllowed(source: KubeClient, nt: NamespaceTransfer, pvcName: string, max: number): Promise<boolean> {
  const own = nt.clientPodName(pvcName);
  // The common case, a PVC that has its agent: one GET, not a list of every agent's pod.
  const mine = await source.get<V1Pod>(podRef(nt.sourceNamespace, own));
  if (mine?.metadata?.annotations?.[AGENT_ANNOTATION] === 'true' && !mine.metadata.deletionTimestamp) return true;
  const agents = await liveAgents(source, nt.sourceNamespace, nt.migrationId);
  if (agents.some((p) => p.metadata?.name === own)) return true;
  return agents.length < max;
}

/** The migration's warm agents in `namespace` that are not being deleted (per-sync client pods excluded). */
async function liveAgents(source: KubeClient, namespace: string, migrationId: string): Promise<V1Pod[]> {
  const pods = await source.list<V1Pod>({ apiVersion: 'v1', kind: 'Pod' }, namespace, { labelSelector: selectorString({ ...migrationSelector(migrationId), [LABELS.role]: 'client' }) });
  return pods.filter((p) => p.metadata?.annotations?.[AGENT_ANNOTATION] === 'true' && !p.metadata?.deletionTimestamp);
}

/** Deletes the agent of `pvcName` (no wait): after its final sync it has nothing left to do. */
export async function releaseAgent(source: KubeClient, nt: NamespaceTransfer, pvcName: string): Promise<void> {
  const pod = await source.get<V1Pod>(podRef(nt.sourceNamespace, nt.clientPodName(pvcName)));
  if (pod?.metadata?.annotations?.[AGENT_ANNOTATION] === 'true') await source.delete(pod, 0, pod.metadata.uid);
}

/**
 * Deletes every warm agent of the migration in the source namespace (no wait), e.g. after the
 * namespace's last final sync; returns how many deletions were requested. Per-sync client pods are
 * left alone (each is deleted by its own sync).
 */
export async function releaseAgents(source: KubeClient, sourceNamespace: string, migrationId: string): Promise<number> {
  const agents = await liveAgents(source, sourceNamespace, migrationId);
  await Promise.all(agents.map((p) => source.delete(p, 0, p.metadata?.uid)));
  return agents.length;
}

/** Options of `ensureAgent`. */
export interface EnsureAgentOptions {
  /** Seconds to wait for the agent to be Ready (plan timeouts.podStartSeconds). */
  timeoutSeconds: number;
  /** Bounds of an agent that cannot start or keeps crashing (default DEFAULT_PENDING_LIMITS). */
  pendingLimits?: PendingLimits;
  onTick?: (reason: string) => void;
  signal?: AbortSignal;
  logger?: Logger;
}

function podRef(namespace: string, name: string) {
  return { apiVersion: 'v1', kind: 'Pod', namespace, name };
}

/** A short hash of everything an agent is built from (objects in creation order, pod last). */
export function agentSpecHash(objects: readonly unknown[]): string {
  return createHash('sha256').update(JSON.stringify(objects)).digest('hex').slice(0, 20);
}

/** Pure: why a live pod cannot serve as the agent with spec hash `hash`, or undefined when it can. */
export function staleAgentReason(live: V1Pod, hash: string): string | undefined {
  if (live.metadata?.deletionTimestamp) return 'it is being deleted';
  if (live.metadata?.annotations?.[AGENT_ANNOTATION] !== 'true') return 'it is a per-sync client pod, not an agent';
  if (live.metadata?.annotations?.[AGENT_SPEC_ANNOTATION] !== hash) return 'it was built for other credentials, endpoint address, node or Ferry version';
  const phase = live.status?.phase;
  if (phase === 'Failed' || phase === 'Succeeded') return `it ended (${phase})`;
  return undefined;
}

/**
 * Pure: whether the agent can take execs now: Running, not being deleted, and every container of its
 * spec running. Its Ready condition is not waited for. Ready comes from the tunnel's startup probe,
 * which the kubelet runs only on the probe's ticker (period 1 s; kubelet pkg/kubelet/prober
 * worker.go), so Ready lags the running tunnel by half a second on average plus the probe's exec
 * (measured on the lab: Ready 0.5-1 s after the containers ran). Every exec that needs the tunnel
 * waits for its port itself instead: the sync script (lifecycle.ts wait_port) and probeThroughAgent.
 * A tunnel that cannot start still shows: its container restarts (not running), which diagnosePod
 * explains, or the exec's port wait fails with rsync's exit 35.
 */
export function agentRunning(p: V1Pod): boolean {
  if (p.metadata?.deletionTimestamp || p.status?.phase !== 'Running') return false;
  const names = (p.spec?.containers ?? []).map((c) => c.name);
  const statuses = p.status.containerStatuses ?? [];
  return names.length > 0 && names.every((n) => statuses.some((c) => c.name === n && c.state?.running !== undefined));
}

/**
 * Makes sure the warm agent of `pvc` runs (`agentRunning`: its containers run; the execs wait for the
 * tunnel's port), and returns it.
 * Creates its Secrets/ConfigMaps (replacing ones whose data changed) and the pod; a stale agent
 * (`staleAgentReason`) is deleted first, and a sync running in it with it.
 * @throws FerryError from `diagnosePod` for an agent that cannot start; FerryError (transient) when it
 *   is not running within `timeoutSeconds`; AbortedError when aborted; API errors.
 */
export async function ensureAgent(source: KubeClient, nt: NamespaceTransfer, req: Pick<ClientTransferRequest, 'pvc' | 'address'>, credentials: TransferCredentials, options: EnsureAgentOptions): Promise<V1Pod> {
  const log = options.logger ?? silentLogger;
  const ns = nt.sourceNamespace;
  const objects = nt.agentObjects(req.pvc.name, req.address, credentials);
  const pod = structuredClone(objects[objects.length - 1]) as V1Pod;
  const name = pod.metadata!.name!;
  pod.metadata!.annotations = { ...pod.metadata!.annotations, [AGENT_SPEC_ANNOTATION]: agentSpecHash(objects) };
  const hash = pod.metadata!.annotations[AGENT_SPEC_ANNOTATION]!;

  let live = await source.get<V1Pod>(podRef(ns, name));
  const stale = live ? staleAgentReason(live, hash) : undefined;
  if (live && stale) {
    log.info({ pod: `${ns}/${name}`, reason: stale }, 'replacing the transfer agent');
    await deletePodAndWait(source, ns, name, options.signal);
    live = undefined;
  }
  // A current, running agent has its Secrets and ConfigMaps mounted already (its hash covers their
  // data): a sync then costs one GET here, not one per object.
  if (live && agentRunning(live)) return live;
  for (const o of objects.slice(0, -1)) await ensureOwned(source, o);
  if (!live) {
    const { object, created } = await source.createOrAdopt(pod);
    live = object;
    if (created) log.info({ pod: `${ns}/${name}`, node: req.pvc.nodeName }, 'transfer agent created');
  }
  if (agentRunning(live)) return live;
  const start = Date.now();
  // The pod is watched: its containers running is seen when the kubelet reports it (a check per change of the pod);
  // the checks every 0.25-2 s are the resync should the watch miss something.
  const wakeup = new Wakeup();
  const watch = ringOnChange(source, { apiVersion: 'v1', kind: 'Pod' }, ns, name, wakeup);
  try {
    await watch.started;
    let delay = 250;
    for (;;) {
      if (options.signal?.aborted) throw new AbortedError();
      const p = await source.get<V1Pod>(podRef(ns, name));
      if (!p) throw new FerryError('transient', `transfer agent ${ns}/${name} disappeared while starting`);
      if (agentRunning(p)) {
        log.info({ pod: `${ns}/${name}`, seconds: Math.round((Date.now() - start) / 100) / 10 }, 'transfer agent running');
        return p;
      }
      const created = p.metadata?.creationTimestamp ? new Date(p.metadata.creationTimestamp as unknown as string | Date).getTime() : start;
      const trouble = await diagnosePod(source, p, (Date.now() - created) / 1000, options.pendingLimits);
      if (trouble) throw trouble;
      if ((Date.now() - start) / 1000 > options.timeoutSeconds) {
        throw new FerryError('transient', `transfer agent ${ns}/${name} was not running within ${options.timeoutSeconds} s: ${describePodState(p)}`);
      }
      options.onTick?.(`transfer agent ${p.status?.phase ?? 'Pending'}`);
      await wakeup.pause(delay, options.signal);
      delay = Math.min(2000, delay * 2);
    }
  } finally {
    watch.stop();
  }
}

/**
 * Makes sure the warm agents of `pvcs` run (`agentRunning`), at most `parallel` (default 10) being made
 * at once, e.g. at set-up while the destination's server starts, so that the first sync of each PVC
 * finds its agent warm. Returns the agents.
 * @throws the first error of `ensureAgent` (the others are still awaited).
 */
export async function ensureAgents(
  source: KubeClient,
  nt: NamespaceTransfer,
  pvcs: readonly ClientTransferRequest['pvc'][],
  address: ClientTransferRequest['address'],
  credentials: TransferCredentials,
  options: EnsureAgentOptions & { parallel?: number },
): Promise<V1Pod[]> {
  const queue = [...pvcs];
  const out: V1Pod[] = [];
  const worker = async () => {
    for (let pvc = queue.shift(); pvc; pvc = queue.shift()) out.push(await ensureAgent(source, nt, { pvc, address }, credentials, options));
  };
  const results = await Promise.allSettled(Array.from({ length: Math.max(1, Math.min(options.parallel ?? 10, pvcs.length)) }, worker));
  const failed = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
  if (failed) throw failed.reason;
  return out;
}

/** A running warm agent of the migration in the namespace (`agentRunning`), if there is one (for the
 * connectivity probe, which waits for the agent's tunnel port itself). */
export async function readyAgent(source: KubeClient, nt: NamespaceTransfer): Promise<V1Pod | undefined> {
  return (await liveAgents(source, nt.sourceNamespace, nt.migrationId)).find(agentRunning);
}

/** Options of `probeThroughAgent`. */
export interface AgentProbeOptions {
  signal?: AbortSignal;
  logger?: Logger;
  /**
   * Seconds to wait before each new probe after a refused connection (default
   * PROBE_REFUSED_RETRY_SECONDS: 0.25, 0.5, 1, 2, so five probes within 3.75 s); once they are used
   * up, the refusal is thrown. The probe runs moments after the server pod became Ready, and a
   * Service's forwarding (kube-proxy's rules, which it syncs at most once a second by default; a cloud
   * load balancer's health check) follows the EndpointSlice with a lag: a refused connection then is
   * expected and gone a moment later (statetransfer/probe.ts `refusedByEndpoint`). A refusal costs
   * one exec, so the first retries come soon. Other failures are thrown at once: a connect that
   * times out (a firewall) would cost its timeout again each time, and the activity's retries and
   * endpoint auto's fallback follow.
   */
  retryDelaysSeconds?: readonly number[];
}

/** Default `AgentProbeOptions.retryDelaysSeconds`. Before, two retries 2 s apart: on the lab a first
 * probe refused by kube-proxy's not yet synced rules cost 2 s of the first byte in about one run of
 * three; the rules were there 0.1-1 s later. */
export const PROBE_REFUSED_RETRY_SECONDS: readonly number[] = [0.25, 0.5, 1, 2];

/**
 * The connectivity probe (statetransfer/probe.ts `probeScript`) run in a warm agent through exec, over the
 * agent's own transport: no probe pod to start. Failures are explained like the probe pod's
 * (`explainProbeFailure`, with the tail of the agent's transport log); a refused connection is probed
 * again (`AgentProbeOptions.retryDelaysSeconds`).
 * @throws FerryError explaining the last failure; API errors; AbortedError when cancelled.
 */
export async function probeThroughAgent(source: KubeClient, nt: NamespaceTransfer, agent: V1Pod, address: ClientTransferRequest['address'], options: AgentProbeOptions = {}): Promise<{ message: string }> {
  const ns = nt.sourceNamespace;
  const name = agent.metadata!.name!;
  const direct = nt.transport.direct;
  const target = direct ? { host: address.host, port: address.port } : { host: '127.0.0.1', port: nt.transfer.port };
  // The agent is used once its containers run (agentRunning): its tunnel may not listen yet.
  const waitTunnel = direct ? '' : `${WAIT_PORT_FN}\nwait_port ${target.port} ${AGENT_TUNNEL_WAIT_SECONDS} || exit ${PROBE_EXIT.noLocalPort}\n`;
  const script = waitTunnel + probeScript(nt.transfer.type, target.host, target.port, direct);
  const delays = options.retryDelaysSeconds ?? PROBE_REFUSED_RETRY_SECONDS;
  let r: Awaited<ReturnType<KubeClient['exec']>>;
  for (let attempt = 1; ; attempt++) {
    r = await source.exec(ns, name, agent.spec!.containers[0]!.name, ['/bin/bash', '-c', script], { timeoutSeconds: 60, ...(options.signal ? { signal: options.signal } : {}) });
    if (r.exitCode === 0) break;
    const transport = agent.spec!.containers[1]?.name;
    const transportLog = transport ? await readLogTail(source, ns, name, transport, 100, 32 * 1024).catch(() => '') : '';
    const failure = explainProbeFailure(r.exitCode, `${r.stdout}${r.stderr}`, transportLog, address);
    const delay = delays[attempt - 1];
    if (!refusedByEndpoint(transportLog) || delay === undefined) throw failure;
    (options.logger ?? silentLogger).info({ namespace: ns, address, attempt, reason: failure.message }, 'connectivity probe failed; probing again');
    await sleep(delay * 1000, options.signal);
  }
  const probeLog = `${r.stdout}${r.stderr}`;
  const message = (/ferry-probe: OK.*/.exec(probeLog)?.[0] ?? 'ferry-probe: OK') + (direct ? ' (TCP only: the null transport leaves TLS to the engine)' : '') + ` (through transfer agent ${name})`;
  (options.logger ?? silentLogger).info({ namespace: ns, address, message }, 'connectivity probe succeeded');
  return { message };
}

/** The wait's state block in an exec's output, or undefined when it is not there whole. */
function tryParseAgentState(stdout: string): AgentSyncState | undefined {
  try {
    return parseAgentState(stdout);
  } catch {
    return undefined;
  }
}

/** Consecutive failed polls of a sync (the agent still there) before `runAgentSync` gives up. */
const MAX_POLL_FAILURES = 5;

/** Extra options of `runAgentSync` beyond the client pod's. */
export interface AgentSyncOptions extends ClientTransferOptions {
  /** Seconds an agent may take to become Ready (plan timeouts.podStartSeconds; default 600). */
  agentStartSeconds?: number;
}

/**
 * Runs one sync of one PVC in its warm agent (see module docstring) and returns the result.
 * A sync of the same pass and kind already running or finished in the agent (an earlier attempt) is
 * attached to instead of started again; any other sync running in the agent is stopped first.
 * @throws FerryError classified by `transferVerdict` (transient, noSpace, auth, config, partial,
 *   fatal); FerryError (transient) when the agent is lost or replaced (also when that broke a poll),
 *   the sync process vanished without a result, or MAX_POLL_FAILURES polls in a row failed; the
 *   API's refusal of an exec into a live agent (e.g. 403 without pods/exec); AbortedError when cancelled (the sync is stopped first, unless `keepPodOnAbort`
 *   says the worker is shutting down: then it copies on and the next attempt attaches).
 */
export async function runAgentSync(
  source: KubeClient,
  nt: NamespaceTransfer,
  credentials: TransferCredentials,
  req: ClientTransferRequest,
  options: AgentSyncOptions = {},
): Promise<TransferResult> {
  const log = options.logger ?? silentLogger;
  const ns = nt.sourceNamespace;
  const id = agentSyncId(req.pass, req.final);
  let started = Date.now();
  const limit = options.timeoutSeconds !== undefined ? new AbortController() : undefined;
  const timer = limit ? setTimeout(() => limit.abort(), options.timeoutSeconds! * 1000) : undefined;
  const signal = limit && options.signal ? AbortSignal.any([options.signal, limit.signal]) : (limit?.signal ?? options.signal);
  const agent = await ensureAgent(source, nt, req, credentials, {
    timeoutSeconds: options.agentStartSeconds ?? 600,
    ...(options.pendingLimits ? { pendingLimits: options.pendingLimits } : {}),
    onTick: (reason) => options.onProgress?.(undefined, reason),
    ...(signal ? { signal } : {}),
    logger: log,
  });
  const name = agent.metadata!.name!;
  const uid = agent.metadata?.uid;
  const container = agent.spec!.containers[0]!.name;
  // `abortable: false` for the execs that must run whatever the signal says: the start (see below) and the stop after an abort.
  const exec = (command: string[], timeoutSeconds: number, abortable = true) =>
    source.exec(ns, name, container, command, { timeoutSeconds, ...(abortable && signal ? { signal } : {}) });
  const where = `transfer agent ${ns}/${name}`;
  let running = false;
  try {
    const script = nt.agentSyncScript(id, req.pvc.name, req.address, credentials, { final: req.final });
    const wait = Math.max(1, options.intervalSeconds ?? 5);
    // Not abortable: the exec'd command starts the sync whether or not this side still listens, so a
    // cancellation that came meanwhile is acted on below, with the sync known to run (then stopped).
    // The same exec waits up to `wait` seconds for the sync's end and reads its result: a small delta
    // costs one exec (agentStartCommand).
    const start = await exec(agentStartCommand(id, script, { waitSeconds: wait }), wait + 60, false);
    if (start.exitCode !== 0) throw new FerryError('transient', `${where} could not start sync ${id} (exit ${start.exitCode}): ${(start.stderr || start.stdout).trim().slice(0, 300)}`);
    running = true;
    if (signal?.aborted) throw new AbortedError();
    // An attached sync counts from its own start (it ran before this attempt).
    started = Math.min(started, parseAttachedSince(start.stdout) ?? started);
    // This line comes when the start exec returns, which waits for a short sync's end: `began` says
    // when the sync itself started (the node's clock), e.g. for bench:migration's first byte.
    const began = parseStartedAt(start.stdout);
    log.info(
      { pod: `${ns}/${name}`, sync: id, attached: /attached/.test(start.stdout), ...(began !== undefined ? { began: new Date(began).toISOString() } : {}) },
      /attached/.test(start.stdout) ? 're-attached to the sync running in the agent' : 'sync started in the transfer agent',
    );
    // A heartbeat at once: the sync runs (a short one may end before the first progress poll).
    options.onProgress?.(undefined, 'Running');
    let last: TransferProgress | undefined;
    let pollFailures = 0;
    // The start's own wait is the first poll; without its state block (an exec cut short) the loop polls.
    let first: AgentSyncState | undefined = start.stdout.includes(AGENT_STATE_MARKER) ? tryParseAgentState(start.stdout) : undefined;
    for (;;) {
      if (signal?.aborted) throw new AbortedError();
      let state: AgentSyncState | undefined;
      // A failed poll is judged after the pod check below: an agent deleted mid-sync ends the exec
      // with no state line (or a 404), which must read as the agent's loss, not as the poll's error.
      let pollError: unknown;
      if (first) {
        state = first;
        first = undefined;
      } else {
        try {
          const polled = await exec(agentWaitCommand(id, wait), wait + 60);
          try {
            state = parseAgentState(polled.stdout);
          } catch (err) {
            throw new FerryError('transient', `${where} answered the poll of sync ${id} without a state (exit ${polled.exitCode}): ${errorMessage(err)} ${polled.stderr.trim().slice(0, 200)}`.trim());
          }
          pollFailures = 0;
        } catch (err) {
          if (err instanceof AbortedError) throw err;
          pollError = err;
          pollFailures++;
          log.warn({ pod: `${ns}/${name}`, error: errorMessage(err) }, 'polling the transfer agent failed; retrying');
        }
      }
      if (state?.state === 'done') {
        running = false;
        const report = parseTerminationMessage(state.result);
        const tail = await readLogTail(source, ns, name, container, FINAL_TAIL_LINES, FINAL_LIMIT_BYTES).catch(() => '');
        const fromLog = tail ? syncLines(tail, id) : [];
        const lines = fromLog.length > 0 ? fromLog : report.lines;
        const durationSeconds = Math.round((Date.now() - started) / 100) / 10;
        log.info({ pod: `${ns}/${name}`, sync: id, exitCode: report.exitCode, durationSeconds }, 'sync in the transfer agent ended');
        const sc = agent.spec?.securityContext;
        return transferVerdict(
          { exitCode: report.exitCode ?? -1, lines },
          {
            engine: nt.transfer.type,
            final: req.final,
            durationSeconds,
            client: { root: sc?.runAsUser === 0, ...(sc?.runAsUser !== undefined ? { uid: sc.runAsUser } : {}), ...(sc?.runAsGroup !== undefined ? { gid: sc.runAsGroup } : {}) },
          },
        );
      }
      if (state?.state === 'gone') {
        running = false;
        throw new FerryError('transient', `the sync ${id} in ${where} ended without a result (its container restarted or the process was killed); the next attempt starts it again`);
      }
      const pod = await source.get<V1Pod>(podRef(ns, name)).catch((err: unknown) => {
        if (isTransient(err)) return agent;
        throw err;
      });
      if (!pod || pod.metadata?.deletionTimestamp) throw new FerryError('transient', `${where} was deleted while sync ${id} ran (evicted, or deleted by hand); the next attempt makes a new agent and resumes from what was copied`);
      if (uid && pod.metadata?.uid !== uid) throw new FerryError('transient', `${where} was replaced while sync ${id} ran`);
      const created = pod.metadata?.creationTimestamp ? new Date(pod.metadata.creationTimestamp as unknown as string | Date).getTime() : started;
      const trouble = await diagnosePod(source, pod, (Date.now() - created) / 1000, options.pendingLimits);
      if (trouble) throw trouble;
      // The agent is still there: an API refusal (e.g. no pods/exec permission) is final; a broken
      // connection or a stateless answer is retried a few times.
      if (pollError !== undefined && (!isTransient(pollError) || pollFailures >= MAX_POLL_FAILURES)) throw pollError;
      const tail = await readLogTail(source, ns, name, container, PROGRESS_TAIL_LINES, PROGRESS_LIMIT_BYTES).catch(() => '');
      const p = tail ? progressFromLogTail(nt.transfer.type, syncLines(tail, id).join('\n')) : undefined;
      if (p) last = p;
      options.onProgress?.(last, pod.status?.phase ?? 'Unknown');
      if (pollError !== undefined) await sleep(1000, signal);
    }
  } catch (err) {
    const timedOut = limit?.signal.aborted && !options.signal?.aborted;
    if (running && options.signal?.aborted && options.keepPodOnAbort?.()) {
      log.info({ pod: `${ns}/${name}`, sync: id }, 'worker shutting down: leaving the sync running in the agent for the next attempt to attach to');
      throw err;
    }
    if (running) {
      // Cancelled, timed out, or followed no more: this attempt's sync stops; the agent stays warm.
      await exec(agentStopCommand(id), 30, false).catch((e: unknown) => log.warn({ error: errorMessage(e) }, 'could not stop the sync in the transfer agent'));
    }
    if (timedOut) throw new FerryError('transient', `the sync of PVC ${ns}/${req.pvc.name} exceeded the plan's transferSeconds (${options.timeoutSeconds} s); the next attempt resumes from what was copied`);
    throw err;
  } finally {
    if (timer) clearTimeout(timer);
  }
}
