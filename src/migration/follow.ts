/**
 * Following a transfer client pod: live progress from its log, and the verdict once its transfer
 * container has terminated.
 *
 * Log access: polling, not a streaming `follow`. Every `intervalSeconds` (default 5) the last lines
 * of the transfer container's log are read (`tailLines` 50, `limitBytes` 64 KiB) and fed to a fresh
 * parser; rsync's progress2 lines carry cumulative values, so the newest line is the progress. This
 * survives API-server disconnects, worker restarts and re-attachment without stream bookkeeping,
 * costs one small request per interval, and never double-counts (each poll is parsed on its own).
 * MTC tails 5 lines every 5 s but ADDS the percentages of retries (its DVM progress reporting); here
 * nothing is summed.
 *
 * Verdict: the container's exit code (the pod wrapper exits with the engine's code) and the output
 * that explains it: the log's last 2,000 lines (1 MiB) when the log is still readable, else the
 * termination message (last 40 lines + `ferry-exit-code=N`, see pods/lifecycle.ts). each engine classifies its
 * own exit codes and output (`TransferEngine.outcome`, in the engine's folder).
 */
import type { CoreV1Event, V1ContainerStatus, V1Pod } from '@kubernetes/client-node';
import type { TransferProgress, TransferResult } from '../core/types';
import { parseTerminationMessage } from '../statetransfer/pods/lifecycle';
import { transferEngine } from '../statetransfer/registry';
import type { TransferType } from '../statetransfer/types';
import { isTransient, ringOnChange, statusCode, Wakeup, type KubeClient } from '../k8s/client';
import { AbortedError, FerryError, type FerryErrorCategory } from '../core/errors';

/** Log lines read per progress poll. */
export const PROGRESS_TAIL_LINES = 50;
/** Bytes read at most per progress poll (a progress2 line is under 100 bytes). */
export const PROGRESS_LIMIT_BYTES = 64 * 1024;
/** Log lines read once the transfer has ended (failed files, STATS2). */
export const FINAL_TAIL_LINES = 2000;
/** Bytes read at most once the transfer has ended. */
export const FINAL_LIMIT_BYTES = 1024 * 1024;
/** Failed files kept in a TransferResult / failure message. */
export const MAX_REPORTED_FAILED_FILES = 100;

/** What a terminated transfer container reported. */
export interface FinishedTransfer {
  exitCode: number;
  /** Output lines used for the verdict (log tail, else termination message). */
  lines: string[];
}

/** Options of `transferVerdict`. */
export interface VerdictOptions {
  engine: TransferType;
  /** Final sync (after quiesce): partial transfers fail it. */
  final: boolean;
  durationSeconds: number;
  /** Who the client ran as, for the fix hint of a partial transfer: root (preserve-ownership) or the
   * uid/gid of its pod security context. */
  client?: { root: boolean; uid?: number; gid?: number };
}

/**
 * Pure: the TransferResult of a finished transfer, or the FerryError to throw.
 * - success → result `success`;
 * - partial (rsync 23/24): stage sync → result (`success` with a note for 24 vanished files, which
 *   are expected while the application writes; `partial` for 23); final sync → FerryError `partial`
 *   naming the files;
 * - retryable → FerryError `transient`;
 * - fatal → FerryError `noSpace` / `auth` / `config` / `fatal` with the explanation.
 */
export function transferVerdict(finished: FinishedTransfer, options: VerdictOptions): TransferResult {
  const { exitCode, lines } = finished;
  const { verdict, stats } = transferEngine(options.engine).outcome(exitCode, lines, MAX_REPORTED_FAILED_FILES);
  const failedFiles = verdict.failedFiles.slice(0, MAX_REPORTED_FAILED_FILES);
  const omitted = verdict.failedFilesOmitted + Math.max(0, verdict.failedFiles.length - MAX_REPORTED_FAILED_FILES);
  const filesNote = failedFiles.length ? ` Files: ${failedFiles.slice(0, 10).join(', ')}${failedFiles.length + omitted > 10 ? ` and ${failedFiles.length + omitted - 10} more` : ''}.` : '';
  const details = { exitCode, failedFiles, failedFilesOmitted: omitted };
  if (verdict.outcome === 'retryable') throw new FerryError('transient', verdict.explanation, { details });
  if (verdict.outcome === 'fatal') throw new FerryError(verdict.category ?? 'fatal', verdict.explanation + filesNote, { details });
  // Issue 8 item 4: a partial stage pass names the cause and the fix; the workflow holds cutover back.
  let hint = '';
  const c = options.client;
  if (verdict.outcome === 'partial' && exitCode !== 24 && c && !c.root && /Permission denied \(13\)|Operation not permitted \(1\)/.test(lines.join('\n'))) {
    hint =
      ` The client runs as uid ${c.uid ?? 'of the transfer image'}${c.gid !== undefined ? ` (gid ${c.gid})` : ''} and cannot read these files: ` +
      "use security mode preserve-ownership, or set security.runAsUser/runAsGroup (or fsGroup) to the workload's ids.";
  }
  if (verdict.outcome === 'partial' && options.final) {
    throw new FerryError('partial', `final sync incomplete: ${verdict.explanation}${filesNote}${hint}`, { details });
  }
  const vanishedOnly = verdict.outcome === 'partial' && exitCode === 24;
  const result: TransferResult = {
    exitCode,
    outcome: verdict.outcome === 'success' || vanishedOnly ? 'success' : 'partial',
    message: vanishedOnly ? `stage sync complete; some files vanished while the application was writing (expected before quiesce).${filesNote}` : verdict.outcome === 'partial' ? `${verdict.explanation}${filesNote}${hint}` : verdict.explanation,
    durationSeconds: options.durationSeconds,
  };
  if (failedFiles.length) result.failedFiles = failedFiles;
  if (stats) Object.assign(result, stats);
  return result;
}

/** The state of the transfer container of a client pod (pure). */
export type TransferContainerState =
  | { state: 'waiting'; reason?: string; message?: string }
  | { state: 'running' }
  | { state: 'terminated'; exitCode: number; message?: string };

/** Name of the transfer container: the first container of the client pod (pods/pods.ts buildClientPod). */
export function transferContainerName(pod: V1Pod): string {
  return pod.spec?.containers?.[0]?.name ?? 'rsync';
}

/** Pure: the transfer container's state from the pod status. */
export function transferContainerState(pod: V1Pod): TransferContainerState {
  const name = transferContainerName(pod);
  const cs: V1ContainerStatus | undefined = pod.status?.containerStatuses?.find((c) => c.name === name);
  const t = cs?.state?.terminated;
  if (t) return { state: 'terminated', exitCode: t.exitCode, ...(t.message ? { message: t.message } : {}) };
  if (cs?.state?.running) return { state: 'running' };
  const w = cs?.state?.waiting;
  return { state: 'waiting', ...(w?.reason ? { reason: w.reason } : {}), ...(w?.message ? { message: w.message } : {}) };
}

/** Seconds (and restarts) a pod may spend in each trouble state before it is reported. */
export interface PendingLimits {
  /** ErrImagePull / ImagePullBackOff (default 180: MTC warns after 3 min). */
  imagePullSeconds: number;
  /** CreateContainerConfigError / CreateContainerError / RunContainerError (default 60). */
  containerConfigSeconds: number;
  /** A pod not started yet: Pending (unschedulable, ContainerCreating: volumes, sandbox) or a transfer
   * container still waiting behind its transport (PodInitializing). Default 600: MTC fails a client
   * pod stuck in ContainerCreating after 10 minutes. Plan: timeouts.podStartSeconds. */
  pendingSeconds: number;
  /** A container in CrashLoopBackOff that has restarted this many times (default 3: kubelet's back-off
   * is 10, 20, 40 s, so about 70 s after the first crash). */
  crashRestarts: number;
}

/** Defaults of PendingLimits. */
export const DEFAULT_PENDING_LIMITS: PendingLimits = Object.freeze({ imagePullSeconds: 180, containerConfigSeconds: 60, pendingSeconds: 600, crashRestarts: 3 });

/** What the cluster says about a troubled pod beyond its status, gathered by `diagnosePod`. */
export interface PodEvidence {
  /** The pod's Warning events, oldest first (kubelet: FailedMount, FailedAttachVolume, BackOff…; scheduler: FailedScheduling). */
  events?: { reason?: string; message?: string; count?: number }[];
  /** The last log line of a container, by container name (of its previous run when it restarted). */
  lastLogLines?: Record<string, string>;
}

/** Warning events kubelet emits for every pod of a node whatever its state (DNS set-up): no evidence. */
const IRRELEVANT_EVENT_REASONS = new Set(['MissingClusterDNS', 'DNSConfigForming']);
const IMAGE_PULL_REASONS = new Set(['ErrImagePull', 'ImagePullBackOff', 'RegistryUnavailable']);
const CREATE_REASONS = new Set(['CreateContainerConfigError', 'CreateContainerError', 'RunContainerError', 'PreCreateHookError', 'PreStartHookError']);

/** Pure: the role of a container in a Ferry pod, for messages. */
function containerRole(pod: V1Pod, name: string): string {
  if (name === transferContainerName(pod)) return `transfer container ${name}`;
  const init = pod.spec?.initContainers?.find((c) => c.name === name);
  if (init) return init.restartPolicy === 'Always' ? `transport sidecar ${name} (init container with restartPolicy Always)` : `init container ${name}`;
  return `container ${name}`;
}

function since(ts: unknown): string {
  return ts ? ` at ${new Date(ts as string | Date).toISOString()}` : '';
}

/** Pure: one container's status in words ("waiting (CrashLoopBackOff), restarted 4 times, last run exited 1 (Error) at …"). */
export function describeContainerStatus(cs: V1ContainerStatus): string {
  const parts: string[] = [];
  const s = cs.state;
  if (s?.terminated) parts.push(`exited ${s.terminated.exitCode}${s.terminated.reason ? ` (${s.terminated.reason})` : ''}${since(s.terminated.finishedAt)}`);
  else if (s?.running) parts.push(`running${cs.started === false ? ' (not started: startup probe pending)' : ''}`);
  else parts.push(`waiting${s?.waiting?.reason ? ` (${s.waiting.reason})` : ''}`);
  if (cs.restartCount) parts.push(`restarted ${cs.restartCount} time${cs.restartCount === 1 ? '' : 's'}`);
  const last = cs.lastState?.terminated;
  if (last) parts.push(`last run exited ${last.exitCode}${last.reason ? ` (${last.reason})` : ''}${since(last.finishedAt)}`);
  return parts.join(', ');
}

/** Pure: the pod's state in words, for timeout messages ("phase Pending; transfer container rsync: waiting (PodInitializing); …"). */
export function describePodState(pod: V1Pod): string {
  const parts = [`phase ${pod.status?.phase ?? 'Pending'}${pod.status?.reason ? ` (${pod.status.reason})` : ''}`];
  for (const cs of [...(pod.status?.initContainerStatuses ?? []), ...(pod.status?.containerStatuses ?? [])]) parts.push(`${containerRole(pod, cs.name)}: ${describeContainerStatus(cs)}`);
  const sched = pod.status?.conditions?.find((c) => c.type === 'PodScheduled' && c.status === 'False');
  if (sched) parts.push(`not scheduled: ${sched.message ?? sched.reason ?? 'no reason given'}`);
  return parts.join('; ');
}

function evidenceText(evidence: PodEvidence | undefined, container?: string): string {
  const out: string[] = [];
  const line = container ? evidence?.lastLogLines?.[container] : undefined;
  if (line) out.push(`its last log line: ${JSON.stringify(line.slice(0, 300))}`);
  const events = (evidence?.events ?? []).slice(-3);
  if (events.length) out.push(`events: ${events.map((e) => `${e.reason ?? '?'}: ${(e.message ?? '').slice(0, 300)}${e.count && e.count > 1 ? ` (×${e.count})` : ''}`).join(' | ')}`);
  return out.length ? `; ${out.join('; ')}` : '';
}

/**
 * Pure: why a pod that has not finished cannot make progress, once it has been stuck longer than
 * `limits`; undefined while it may still start or run. Works for both client pod lifecycles (the
 * transport as a native sidecar init container, or as a second regular container with the done-file)
 * and for the server and probe pods. `stuckSeconds` = time since the pod was created.
 *
 * Rules (first match):
 * - a container waiting with InvalidImageName / ErrImageNeverPull (at once), ErrImagePull /
 *   ImagePullBackOff (after imagePullSeconds), CreateContainerConfigError / CreateContainerError /
 *   RunContainerError (after containerConfigSeconds): `config`;
 * - a container restarted `crashRestarts` times or more and now in CrashLoopBackOff, or exited while
 *   the transfer is not running (how kubelet 1.32 shows a crash-looping native sidecar): `config` (a
 *   new pod would crash the same way), naming its last exit code and reason (OOMKilled: raise the
 *   limit);
 * - in a restartPolicy Never pod, another container than the transfer exited non-zero while the
 *   transfer has not finished (done-file mode: the transport died; the transfer would only wait 120 s
 *   for its port and exit 35): `transient`;
 * - the pod Failed before its containers ran (evicted…): `transient`;
 * - the pod not started after pendingSeconds (Pending, or the transfer container still waiting):
 *   `transient` (capacity or a volume attachment may recover; each retry makes a new pod and the
 *   retry policy bounds the attempts), saying whether it is unschedulable (the PodScheduled
 *   condition's message) or which container waits for what.
 * The message names the pod and container, its state and last exit, and `evidence` (the last log line,
 * the pod's Warning events such as FailedMount "Multi-Attach error…") when given; `details` carry
 * `container`, `reason` and `exitCode` when known.
 */
export function podTrouble(pod: V1Pod, stuckSeconds: number, limits: PendingLimits = DEFAULT_PENDING_LIMITS, evidence?: PodEvidence): FerryError | undefined {
  const where = `pod ${pod.metadata?.namespace}/${pod.metadata?.name}`;
  const stuck = Math.round(stuckSeconds);
  const statuses = [...(pod.status?.initContainerStatuses ?? []), ...(pod.status?.containerStatuses ?? [])];
  const fail = (category: FerryErrorCategory, message: string, cs?: V1ContainerStatus, reason?: string) =>
    new FerryError(category, message + evidenceText(evidence, cs?.name), {
      details: {
        ...(cs ? { container: cs.name } : {}),
        ...(reason ? { reason } : {}),
        ...((cs?.state?.terminated ?? cs?.lastState?.terminated) ? { exitCode: (cs!.state?.terminated ?? cs!.lastState!.terminated)!.exitCode } : {}),
      },
    });
  for (const cs of statuses) {
    const w = cs.state?.waiting;
    if (!w?.reason) continue;
    const who = `${where}: ${containerRole(pod, cs.name)}`;
    const msg = w.message ? `: ${w.message}` : '';
    if (w.reason === 'InvalidImageName' || w.reason === 'ErrImageNeverPull') {
      return fail('config', `${who} cannot use image ${cs.image} (${w.reason}${msg}); fix transferImage (or its pull policy) in the plan`, cs, w.reason);
    }
    if (IMAGE_PULL_REASONS.has(w.reason) && stuckSeconds >= Math.min(limits.imagePullSeconds, limits.pendingSeconds)) {
      return fail('config', `${who} cannot pull image ${cs.image} for ${stuck} s (${w.reason}${msg}); check transferImage, registry access from the cluster's nodes and imagePullSecrets`, cs, w.reason);
    }
    if (CREATE_REASONS.has(w.reason) && stuckSeconds >= Math.min(limits.containerConfigSeconds, limits.pendingSeconds)) {
      return fail('config', `${who} cannot be created (${w.reason}${msg}); a Secret or ConfigMap it mounts is missing or the security context is refused: run the migration again to recreate the transfer objects, or check the namespace's policies`, cs, w.reason);
    }
  }
  const transfer = transferContainerName(pod);
  const transferState = pod.status?.containerStatuses?.find((c) => c.name === transfer)?.state;
  for (const cs of statuses) {
    // kubelet shows a crash loop as waiting CrashLoopBackOff (lastState: the crash) or, for a native
    // sidecar (seen on Kubernetes 1.32), as the terminated crash itself with an empty lastState. The
    // latter only counts before the transfer runs: restartCount adds up over the pod's life, and a
    // sidecar that crashed now and then during a long transfer is no loop (the back-off, and with it
    // CrashLoopBackOff, resets after 10 minutes of running).
    const looping = cs.state?.waiting?.reason === 'CrashLoopBackOff' || (cs.state?.terminated !== undefined && !transferState?.running);
    if ((cs.restartCount ?? 0) < limits.crashRestarts || !looping) continue;
    const last = cs.state?.terminated ?? cs.lastState?.terminated;
    const hint = last?.reason === 'OOMKilled'
      ? 'it ran out of memory: raise the transfer pods\' memory limit'
      : `see its log with kubectl logs -n ${pod.metadata?.namespace} ${pod.metadata?.name} -c ${cs.name}${cs.state?.terminated ? '' : ' --previous'}; a transport that cannot start usually means unusable TLS files or an image without stunnel`;
    return fail('config', `${where}: ${containerRole(pod, cs.name)} keeps crashing (${describeContainerStatus(cs)}); ${hint}`, cs, 'CrashLoopBackOff');
  }
  if (pod.spec?.restartPolicy === 'Never' && !transferState?.terminated) {
    const dead = (pod.status?.containerStatuses ?? []).find((c) => c.name !== transfer && c.state?.terminated && c.state.terminated.exitCode !== 0);
    if (dead) {
      return fail('transient', `${where}: ${containerRole(pod, dead.name)} ${describeContainerStatus(dead)} before the transfer finished (the transport died; the transfer cannot reach the server): see kubectl logs -n ${pod.metadata?.namespace} ${pod.metadata?.name} -c ${dead.name}`, dead, dead.state!.terminated!.reason ?? 'Error');
    }
  }
  if (pod.status?.phase === 'Failed' && !statuses.some((c) => c.state?.terminated)) {
    return fail('transient', `${where} failed before its containers ran (${pod.status.reason ?? 'unknown reason'}${pod.status.message ? `: ${pod.status.message}` : ''})`, undefined, pod.status.reason);
  }
  const notStarted = pod.status?.phase === 'Pending' || pod.status?.phase === undefined || !transferState || transferState.waiting !== undefined;
  if (notStarted && pod.status?.phase !== 'Succeeded' && pod.status?.phase !== 'Failed' && stuckSeconds >= limits.pendingSeconds) {
    const sched = pod.status?.conditions?.find((c) => c.type === 'PodScheduled');
    if (sched?.status === 'False') {
      return fail(
        'transient',
        `${where} cannot be scheduled after ${stuck} s: ${sched.message ?? sched.reason ?? 'no reason given'} (a ReadWriteOnce volume pins the pod to the node of the workload using it; is that node full, cordoned or gone?)`,
        undefined,
        sched.reason ?? 'Unschedulable',
      );
    }
    const notReady = statuses.filter((c) => !(c.state?.running && c.started !== false));
    const what = notReady.length ? notReady.map((c) => `${containerRole(pod, c.name)}: ${describeContainerStatus(c)}`).join('; ') : 'no container status yet';
    const exiting = statuses.find((c) => (c.restartCount ?? 0) > 0 || c.lastState?.terminated);
    const probing = statuses.find((c) => c.state?.running && c.started === false);
    let reason: string;
    let hint: string;
    if (exiting) {
      reason = 'Restarting';
      hint = `${containerRole(pod, exiting.name)} keeps exiting: see kubectl logs -n ${pod.metadata?.namespace} ${pod.metadata?.name} -c ${exiting.name} --previous`;
    } else if (probing) {
      reason = 'StartupProbe';
      hint = `${containerRole(pod, probing.name)} runs but never became ready (its startup probe checks the local port): see its log`;
    } else {
      reason = notReady.find((c) => c.state?.waiting?.reason)?.state?.waiting?.reason ?? 'ContainerCreating';
      hint = 'kubelet could not set the pod up: usually a volume that cannot be attached or mounted (a ReadWriteOnce PVC still attached to another node: Multi-Attach error; a missing Secret; a CSI driver problem)';
    }
    const subject = exiting ?? probing ?? notReady.find((c) => c.name !== transfer) ?? notReady[0];
    return fail('transient', `${where} has not started after ${stuck} s (${what}): ${hint}; see kubectl describe pod -n ${pod.metadata?.namespace} ${pod.metadata?.name}`, subject, reason);
  }
  return undefined;
}

/**
 * `podTrouble` with the evidence a troubled pod leaves: its Warning events and the last log line of
 * the troubled container (its previous run when it restarted). Events and logs that cannot be read
 * (RBAC, gone) are left out. undefined while the pod is not in trouble.
 */
export async function diagnosePod(client: KubeClient, pod: V1Pod, stuckSeconds: number, limits: PendingLimits = DEFAULT_PENDING_LIMITS): Promise<FerryError | undefined> {
  const trouble = podTrouble(pod, stuckSeconds, limits);
  if (!trouble) return undefined;
  const namespace = pod.metadata?.namespace ?? '';
  const name = pod.metadata?.name ?? '';
  const evidence: PodEvidence = {};
  try {
    const list = await client.core.listNamespacedEvent({ namespace, fieldSelector: `involvedObject.kind=Pod,involvedObject.name=${name}` });
    const uid = pod.metadata?.uid;
    const time = (e: CoreV1Event) => new Date((e.lastTimestamp ?? e.eventTime ?? e.firstTimestamp ?? 0) as string | Date).getTime();
    evidence.events = (list.items ?? [])
      .filter((e) => e.type === 'Warning' && !IRRELEVANT_EVENT_REASONS.has(e.reason ?? '') && (!uid || !e.involvedObject?.uid || e.involvedObject.uid === uid))
      .sort((a, b) => time(a) - time(b))
      .map((e) => ({ reason: e.reason, message: e.message, count: e.count }));
  } catch {
    // events are evidence, not a requirement
  }
  const container = trouble.details?.container;
  if (typeof container === 'string') {
    const cs = [...(pod.status?.initContainerStatuses ?? []), ...(pod.status?.containerStatuses ?? [])].find((c) => c.name === container);
    if (cs?.state?.terminated || cs?.lastState?.terminated) {
      const tail = await readLogTail(client, namespace, name, container, 20, 16 * 1024, !cs.state?.terminated).catch(() => '');
      // The log, else the termination message (FallbackToLogsOnError: the log's tail on a failure).
      const text = tail || (cs.state?.terminated ?? cs.lastState?.terminated)?.message || '';
      const line = text.split(/[\r\n]+/).map((l) => l.trim()).filter(Boolean).pop();
      if (line) evidence.lastLogLines = { [container]: line };
    }
  }
  return podTrouble(pod, stuckSeconds, limits, evidence);
}

/** Options of `followTransferPod`. */
export interface FollowOptions {
  namespace: string;
  name: string;
  engine: TransferType;
  /** Seconds between polls (default 5). */
  intervalSeconds?: number;
  /** Called after every poll with the latest progress (undefined before the first progress line). */
  onProgress?: (progress: TransferProgress | undefined, podPhase: string) => void;
  /** Stops following (AbortedError); the caller deletes the pod. */
  signal?: AbortSignal;
  /** Bounds of a pod that cannot start or keeps crashing (default DEFAULT_PENDING_LIMITS). */
  pendingLimits?: PendingLimits;
  /** uid of the pod to follow: a pod of the same name with another uid (a replacement made by
   * another attempt or sync) ends the follow with a transient error instead of reporting its result. */
  uid?: string;
}

/** The latest progress in the tail of a transfer's output (undefined before its first progress line). */
export function progressFromLogTail(engine: TransferType, tail: string): TransferProgress | undefined {
  return transferEngine(engine).progress(tail);
}

/** Reads the tail of a container's log (`previous`: of its previous run, after a restart); '' when the
 * log is not available (yet / anymore). */
export async function readLogTail(client: KubeClient, namespace: string, name: string, container: string, tailLines: number, limitBytes: number, previous = false): Promise<string> {
  try {
    return await client.core.readNamespacedPodLog({ name, namespace, container, tailLines, limitBytes, ...(previous ? { previous } : {}) });
  } catch (err) {
    const code = statusCode(err);
    if (code === 400 || code === 404) return '';
    throw err;
  }
}

/**
 * Follows a client pod until its transfer container terminates and returns the exit code and the
 * explaining output. Transient API errors while polling are tolerated (the next poll retries).
 * @throws FerryError (transient) when the pod disappears; the FerryError of `podTrouble` (with the
 *   evidence of `diagnosePod`) when it cannot start or its transport crashes, in either lifecycle;
 *   AbortedError when `signal` aborts.
 */
export async function followTransferPod(client: KubeClient, options: FollowOptions): Promise<FinishedTransfer> {
  const interval = (options.intervalSeconds ?? 5) * 1000;
  let last: TransferProgress | undefined;
  // The pod is watched: its end (or trouble) is seen when the kubelet reports it; the interval paces
  // the progress reads and is the resync should the watch miss something.
  const wakeup = new Wakeup();
  const watch = ringOnChange(client, { apiVersion: 'v1', kind: 'Pod' }, options.namespace, options.name, wakeup);
  try {
    await watch.started;
    for (;;) {
      if (options.signal?.aborted) throw new AbortedError();
      let pod: V1Pod | undefined;
      try {
        pod = await client.get<V1Pod>({ apiVersion: 'v1', kind: 'Pod', namespace: options.namespace, name: options.name });
      } catch (err) {
        if (!isTransient(err)) throw err;
        options.onProgress?.(last, 'Unknown');
        await wakeup.pause(interval, options.signal);
        continue;
      }
      if (!pod) throw new FerryError('transient', `client pod ${options.namespace}/${options.name} disappeared before its transfer finished (deleted or evicted)`);
      if (options.uid && pod.metadata?.uid && pod.metadata.uid !== options.uid) {
        throw new FerryError('transient', `client pod ${options.namespace}/${options.name} was replaced by another attempt or sync while this one followed it`);
      }
      const container = transferContainerName(pod);
      const state = transferContainerState(pod);
      if (state.state === 'terminated') {
        const tail = await readLogTail(client, options.namespace, options.name, container, FINAL_TAIL_LINES, FINAL_LIMIT_BYTES).catch(() => '');
        const report = parseTerminationMessage(state.message);
        const lines = tail.trim() ? tail.split(/[\r\n]+/).filter((l) => l.length > 0) : report.lines;
        return { exitCode: state.exitCode, lines };
      }
      const created = pod.metadata?.creationTimestamp ? new Date(pod.metadata.creationTimestamp as unknown as string | Date).getTime() : Date.now();
      // Checked while running too: a native transport sidecar can crash-loop beside a running transfer.
      const trouble = await diagnosePod(client, pod, (Date.now() - created) / 1000, options.pendingLimits);
      if (trouble) throw trouble;
      if (state.state === 'running') {
        const tail = await readLogTail(client, options.namespace, options.name, container, PROGRESS_TAIL_LINES, PROGRESS_LIMIT_BYTES).catch(() => '');
        const p = tail ? progressFromLogTail(options.engine, tail) : undefined;
        if (p) last = p;
      }
      options.onProgress?.(last, pod.status?.phase ?? 'Unknown');
      await wakeup.pause(interval, options.signal);
    }
  } finally {
    watch.stop();
  }
}
