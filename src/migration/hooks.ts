/**
 * Application hooks (plan `hooks`, MTC's and Stork's hooks), in the source or destination namespace,
 * at one phase of a namespace's migration:
 * - exec: a command run in each running pod a label selector picks;
 * - job: a pod template run to completion by a batch/v1 Job (backoffLimit from the plan, default 0;
 *   activeDeadlineSeconds = the hook's timeout; ttlSecondsAfterFinished so that the TTL controller
 *   removes one a lost worker left behind). Its pods carry the migration's labels (cleanup deletes
 *   them); the Job is deleted when it ended, its pods with it.
 * The result says per pod what happened; a failure (no running pod matches, a non-zero exit, the
 * timeout, a Job that failed or could not create its pod, an API error such as a missing permission)
 * is returned, not thrown, so the workflow applies the hook's `onError`. A hook is not retried: Ferry
 * cannot know whether the user's command may run twice.
 * @throws AbortedError when `signal` aborts (the activity is cancelled).
 */
import type { CoreV1Event, V1Job, V1JobCondition, V1Pod, V1PodTemplateSpec } from '@kubernetes/client-node';
import type { HookResult } from '../core/types';
import { AbortedError, errorMessage, WaitTimeoutError } from '../core/errors';
import { silentLogger, type Logger } from '../core/log';
import { waitFor, type KubeClient } from '../k8s/client';
import { objectLabels, objectName } from '../statetransfer/names';
import { readLogTail } from './follow';
import { hookCluster } from '../plan/hooks';
import { FERRY_WAIT, type HookSpec } from '../plan/schema';

/** Bytes of each pod's output kept in the result (the end of stdout and stderr). */
export const HOOK_OUTPUT_TAIL_BYTES = 2048;

function tail(text: string, bytes = HOOK_OUTPUT_TAIL_BYTES): string {
  const b = Buffer.from(text, 'utf8');
  return b.length <= bytes ? text : `…${b.subarray(b.length - bytes).toString('utf8')}`;
}

/** Options of the hook runners. */
export interface HookRunOptions {
  signal?: AbortSignal;
  logger?: Logger;
}

/** A result being built, and how to end it. */
function startResult(namespace: string, hook: HookSpec, options: HookRunOptions) {
  const log = options.logger ?? silentLogger;
  const started = Date.now();
  const result: HookResult = { name: hook.name, phase: hook.phase, cluster: hookCluster(hook), namespace, ok: false, pods: [], seconds: 0 };
  const done = (ok: boolean, message?: string): HookResult => {
    result.ok = ok;
    if (message !== undefined) result.message = message;
    result.seconds = (Date.now() - started) / 1000;
    log[ok ? 'info' : 'warn']({ hook: hook.name, phase: hook.phase, namespace, pods: result.pods.map((p) => `${p.pod}:${p.exitCode ?? '-'}`), message }, ok ? 'hook succeeded' : 'hook failed');
    return result;
  };
  return { result, done };
}

/**
 * Runs a hook (exec or job, see the module docstring) of migration `migrationId` in `namespace`.
 * @throws AbortedError when `options.signal` aborts.
 */
export async function runHook(client: KubeClient, namespace: string, hook: HookSpec, migrationId: string, options: HookRunOptions = {}): Promise<HookResult> {
  if (hook.job) return runJobHook(client, namespace, hook, migrationId, options);
  return runExecHook(client, namespace, hook, options);
}

/**
 * Runs an exec hook in every running pod of `namespace` matching its selector, one pod after another
 * (sorted by name), each within `hook.timeoutSeconds`. Stops at the first failing pod.
 */
export async function runExecHook(client: KubeClient, namespace: string, hook: HookSpec, options: HookRunOptions = {}): Promise<HookResult> {
  const { result, done } = startResult(namespace, hook, options);
  const exec = hook.exec;
  if (!exec) return done(false, `hook ${hook.name} has no exec`);
  let pods: V1Pod[];
  try {
    pods = await client.list<V1Pod>({ apiVersion: 'v1', kind: 'Pod' }, namespace, { labelSelector: exec.selector });
  } catch (err) {
    return done(false, `listing the pods of ${namespace} (selector ${exec.selector}) failed: ${errorMessage(err)}`);
  }
  const running = pods.filter((p) => p.status?.phase === 'Running' && !p.metadata?.deletionTimestamp).sort((a, b) => (a.metadata!.name! < b.metadata!.name! ? -1 : 1));
  if (running.length === 0) {
    return done(false, `no running pod in ${namespace} matches ${exec.selector}${pods.length > 0 ? ` (${pods.length} not running)` : ''}: nothing to run the hook in`);
  }
  for (const pod of running) {
    const name = pod.metadata!.name!;
    const container = exec.container ?? pod.spec?.containers[0]?.name ?? '';
    if (!pod.spec?.containers.some((c) => c.name === container)) {
      result.pods.push({ pod: name, outputTail: '' });
      return done(false, `pod ${namespace}/${name} has no container ${container} (it has ${pod.spec?.containers.map((c) => c.name).join(', ')})`);
    }
    try {
      const r = await client.exec(namespace, name, container, exec.command, { timeoutSeconds: hook.timeoutSeconds, ...(options.signal ? { signal: options.signal } : {}) });
      result.pods.push({ pod: name, exitCode: r.exitCode, outputTail: tail(`${r.stdout}${r.stderr}`) });
      if (r.exitCode !== 0) return done(false, `exited ${r.exitCode} in pod ${namespace}/${name} (container ${container})${r.stderr.trim() ? `: ${tail(r.stderr.trim(), 300)}` : ''}`);
    } catch (err) {
      if (err instanceof AbortedError) throw err;
      result.pods.push({ pod: name, outputTail: '' });
      return done(false, `in pod ${namespace}/${name} (container ${container}): ${errorMessage(err)}`);
    }
  }
  return done(true);
}

/** Seconds the TTL controller keeps a finished hook Job that Ferry could not delete (a lost worker). */
export const HOOK_JOB_TTL_SECONDS = 600;
/** Seconds after which a hook Job without a pod is checked for FailedCreate events (e.g. Pod Security). */
export const HOOK_JOB_NO_POD_SECONDS = 20;
/** The label the Job controller puts on a Job's pods (Kubernetes >= 1.27; `job-name` before). */
const JOB_NAME_LABEL = 'batch.kubernetes.io/job-name';

/** Name of the Job of a job hook. */
export function hookJobName(migrationId: string, hook: string): string {
  return objectName(migrationId, 'hook', hook);
}

/**
 * Pure: the Job of a job hook: the plan's pod template with the migration's labels added (so cleanup
 * finds its pods), restartPolicy Never unless the template says OnFailure, the plan's backoffLimit,
 * activeDeadlineSeconds = the hook's timeout, and a TTL for a Job Ferry could not delete.
 */
export function buildHookJob(migrationId: string, namespace: string, hook: HookSpec): V1Job {
  if (!hook.job) throw new Error(`hook ${hook.name} has no job`);
  const labels = objectLabels(migrationId, 'hook');
  const template = hook.job.template as V1PodTemplateSpec;
  return {
    apiVersion: 'batch/v1',
    kind: 'Job',
    metadata: { name: hookJobName(migrationId, hook.name), namespace, labels, annotations: { [HOOK_ANNOTATION]: `${hook.name}/${hook.phase}` } },
    spec: {
      backoffLimit: hook.job.backoffLimit,
      activeDeadlineSeconds: hook.timeoutSeconds,
      ttlSecondsAfterFinished: HOOK_JOB_TTL_SECONDS,
      template: {
        ...template,
        metadata: { ...(template.metadata ?? {}), labels: { ...(template.metadata?.labels ?? {}), ...labels } },
        spec: { ...template.spec!, restartPolicy: template.spec?.restartPolicy ?? 'Never' },
      },
    },
  };
}

/** The annotation naming the hook and phase of a hook Job. */
export const HOOK_ANNOTATION = 'ferry.dev/hook';

function jobCondition(job: V1Job | undefined, type: string): V1JobCondition | undefined {
  return job?.status?.conditions?.find((c) => c.type === type && c.status === 'True');
}

/**
 * Runs a job hook: deletes a Job of the same name left by an earlier pass, creates the Job, waits until
 * it completes or fails (its deadline is the hook's timeout; a Job whose pod cannot be created, e.g.
 * refused by Pod Security admission, fails at once with the event's message), records each pod's exit
 * code and log tail, and deletes the Job (and its pods) whatever happened.
 */
export async function runJobHook(client: KubeClient, namespace: string, hook: HookSpec, migrationId: string, options: HookRunOptions = {}): Promise<HookResult> {
  const { result, done } = startResult(namespace, hook, options);
  let job: V1Job;
  try {
    job = buildHookJob(migrationId, namespace, hook);
  } catch (err) {
    return done(false, errorMessage(err));
  }
  const name = job.metadata!.name!;
  const ref = { apiVersion: 'batch/v1', kind: 'Job', namespace, name };
  const pods = async () => client.list<V1Pod>({ apiVersion: 'v1', kind: 'Pod' }, namespace, { labelSelector: `${JOB_NAME_LABEL}=${name}` });
  try {
    if (await client.delete(ref)) {
      await waitFor(async () => ((await client.get(ref)) ? undefined : true), { timeoutSeconds: 120, intervalSeconds: 1, description: `the hook Job ${namespace}/${name} of an earlier run to go`, ...(options.signal ? { signal: options.signal } : {}) });
    }
    await client.createOrAdopt(job);
    const created = Date.now();
    // the deadline is the Job's own (activeDeadlineSeconds); this wait only outlasts it
    const ended = await waitFor(
      async () => {
        const live = await client.get<V1Job>(ref);
        if (!live) return { failed: 'the Job was deleted while it ran' };
        if (jobCondition(live, 'Complete')) return { failed: undefined };
        const failed = jobCondition(live, 'Failed');
        if (failed) return { failed: `the Job failed (${failed.reason ?? 'Failed'}${failed.message ? `: ${failed.message}` : ''})` };
        if ((Date.now() - created) / 1000 > HOOK_JOB_NO_POD_SECONDS && (await pods()).length === 0) {
          const events = await client.list<CoreV1Event>({ apiVersion: 'v1', kind: 'Event' }, namespace, { fieldSelector: `involvedObject.kind=Job,involvedObject.name=${name}` }).catch(() => []);
          const refused = events.filter((e) => e.reason === 'FailedCreate').at(-1);
          if (refused) return { failed: `the Job cannot create its pod: ${refused.message ?? 'FailedCreate'}` };
        }
        return undefined;
      },
      { timeoutSeconds: hook.timeoutSeconds + 60, intervalSeconds: 1, description: `the hook Job ${namespace}/${name}`, ...(options.signal ? { signal: options.signal } : {}) },
    );
    for (const pod of (await pods()).sort((a, b) => (a.metadata!.name! < b.metadata!.name! ? -1 : 1))) {
      const podName = pod.metadata!.name!;
      const container = pod.spec?.containers[0]?.name ?? '';
      const state = pod.status?.containerStatuses?.find((c) => c.name === container)?.state?.terminated;
      const output = await readLogTail(client, namespace, podName, container, 50, HOOK_OUTPUT_TAIL_BYTES * 4).catch(() => '');
      result.pods.push({ pod: podName, ...(state ? { exitCode: state.exitCode } : {}), outputTail: tail(output) });
    }
    if (ended.failed) {
      const lastExit = result.pods.filter((p) => p.exitCode !== undefined).at(-1);
      return done(false, `${ended.failed}${lastExit ? `; pod ${lastExit.pod} exited ${lastExit.exitCode}` : ''}`);
    }
    return done(true);
  } catch (err) {
    if (err instanceof AbortedError) throw err;
    if (err instanceof WaitTimeoutError) return done(false, `the Job did not end within ${hook.timeoutSeconds + 60} s (its deadline is ${hook.timeoutSeconds} s)`);
    return done(false, `Job ${namespace}/${name}: ${errorMessage(err)}`);
  } finally {
    await client.delete(ref).catch((e: unknown) => (options.logger ?? silentLogger).warn({ job: name, error: errorMessage(e) }, 'could not delete a hook Job (its TTL removes it)'));
  }
}

/** Where a background hook's wait script and its "held" mark live in the application pod (a tmpfs
 * every container has; writable also with a read-only root file system). */
export const HOLD_DIR = '/dev/shm';

/**
 * Pure: the wait script that replaces FERRY_WAIT in a background hook's command (run as
 * `sh <script file>`, so it needs no quoting and no `;` in the user's command): it marks the hold, then
 * waits until Ferry removes the mark, or at most `holdSeconds` so that a lost worker never leaves the
 * application held.
 */
export function holdScript(mark: string, holdSeconds: number): string {
  return [`f=${mark}`, ': > "$f"', 'i=0', `while [ -e "$f" ] && [ "$i" -lt ${Math.max(1, Math.round(holdSeconds * 5))} ]; do sleep 0.2; i=$((i+1)); done`, 'rm -f "$f"', ''].join('\n');
}

/** Background hooks being held (`holdBackgroundHooks`). */
export interface HeldHooks {
  /** Every hook reached its FERRY_WAIT in every pod (or failed with onError continue). */
  held: boolean;
  /** The hooks that failed to reach their hold, with `onError: fail` among them. */
  failedFatally: boolean;
  /** Lets every held command go on, waits for it to end (within its timeout) and returns the results. */
  release(): Promise<HookResult[]>;
}

interface HeldPod {
  pod: string;
  container: string;
  mark: string;
  script: string;
  run: Promise<{ exitCode?: number; output: string; error?: string }>;
  failed?: string;
}

/**
 * Starts the background hooks (plan hooks[].background) of a stage pass in every running pod their
 * selectors pick, each with FERRY_WAIT replaced by `sh <wait script>`, and waits until each reached it
 * (its hold mark exists), within its timeout. Then the caller cuts the snapshot and calls `release()`.
 * A hook whose command ends before its FERRY_WAIT, or does not reach it in time, has failed; when that
 * hook says onError fail, `failedFatally` is set and the caller must not cut the snapshot (it still
 * calls release()).
 */
export async function holdBackgroundHooks(client: KubeClient, namespace: string, hooks: readonly HookSpec[], migrationId: string, options: HookRunOptions = {}): Promise<HeldHooks> {
  const log = options.logger ?? silentLogger;
  const entries: { hook: HookSpec; started: ReturnType<typeof startResult>; pods: HeldPod[]; message?: string }[] = [];
  for (const hook of hooks) {
    const started = startResult(namespace, hook, options);
    const entry: (typeof entries)[number] = { hook, started, pods: [] };
    entries.push(entry);
    const exec = hook.exec!;
    let pods: V1Pod[];
    try {
      pods = (await client.list<V1Pod>({ apiVersion: 'v1', kind: 'Pod' }, namespace, { labelSelector: exec.selector })).filter((p) => p.status?.phase === 'Running' && !p.metadata?.deletionTimestamp);
    } catch (err) {
      entry.message = `listing the pods of ${namespace} (selector ${exec.selector}) failed: ${errorMessage(err)}`;
      continue;
    }
    if (pods.length === 0) {
      entry.message = `no running pod in ${namespace} matches ${exec.selector}: nothing to hold`;
      continue;
    }
    for (const pod of pods.sort((a, b) => (a.metadata!.name! < b.metadata!.name! ? -1 : 1))) {
      const name = pod.metadata!.name!;
      const container = exec.container ?? pod.spec?.containers[0]?.name ?? '';
      const base = `${HOLD_DIR}/${objectName(migrationId, 'hold', hook.name)}`;
      const held: HeldPod = { pod: name, container, mark: `${base}.held`, script: `${base}.sh`, run: Promise.resolve({ output: '' }) };
      entry.pods.push(held);
      try {
        // the wait script, written through argv ($1), so that nothing needs quoting
        const w = await client.exec(namespace, name, container, ['sh', '-c', 'printf "%s" "$1" > "$2"', 'sh', holdScript(held.mark, hook.timeoutSeconds), held.script], { timeoutSeconds: 30 });
        if (w.exitCode !== 0) throw new Error(`could not write ${held.script} (exit ${w.exitCode}: ${w.stderr.trim() || 'no output'}); the container needs sh and a writable ${HOLD_DIR}`);
      } catch (err) {
        held.failed = `in pod ${namespace}/${name}: ${errorMessage(err)}`;
        continue;
      }
      const command = exec.command.map((a) => a.split(FERRY_WAIT).join(`sh ${held.script}`));
      held.run = client
        .exec(namespace, name, container, command, { timeoutSeconds: hook.timeoutSeconds + 30 })
        .then((r) => ({ exitCode: r.exitCode, output: `${r.stdout}${r.stderr}` }))
        .catch((err: unknown) => ({ output: '', error: errorMessage(err) }));
    }
  }
  // Wait until every started command holds (its mark exists), or ended, or ran out of time.
  const settled = new Set<HeldPod>();
  for (const e of entries) for (const p of e.pods) void p.run.then(() => settled.add(p));
  for (const e of entries) {
    const deadline = Date.now() + e.hook.timeoutSeconds * 1000;
    for (const p of e.pods.filter((x) => !x.failed)) {
      for (;;) {
        if (options.signal?.aborted) throw new AbortedError('cancelled while holding background hooks');
        const t = await client.exec(namespace, p.pod, p.container, ['test', '-e', p.mark], { timeoutSeconds: 30 }).catch(() => ({ exitCode: -1 }));
        if (t.exitCode === 0) break;
        if (settled.has(p)) {
          p.failed = `the command ended before it reached ${FERRY_WAIT} in pod ${namespace}/${p.pod}`;
          break;
        }
        if (Date.now() > deadline) {
          p.failed = `the command did not reach ${FERRY_WAIT} within ${e.hook.timeoutSeconds} s in pod ${namespace}/${p.pod}`;
          break;
        }
        await new Promise((r) => setTimeout(r, 300));
      }
    }
  }
  const failedHook = (e: (typeof entries)[number]) => e.message !== undefined || e.pods.some((p) => p.failed);
  const failedFatally = entries.some((e) => failedHook(e) && e.hook.onError !== 'continue');
  log.info({ namespace, hooks: entries.map((e) => `${e.hook.name}:${failedHook(e) ? 'failed' : 'held'}`) }, 'background hooks');
  return {
    held: !entries.some(failedHook),
    failedFatally,
    async release() {
      const results: HookResult[] = [];
      for (const e of entries) {
        for (const p of e.pods) await client.exec(namespace, p.pod, p.container, ['rm', '-f', p.mark], { timeoutSeconds: 30 }).catch(() => undefined);
      }
      for (const e of entries) {
        let problem = e.message;
        for (const p of e.pods) {
          const r = await p.run;
          await client.exec(namespace, p.pod, p.container, ['rm', '-f', p.script], { timeoutSeconds: 30 }).catch(() => undefined);
          e.started.result.pods.push({ pod: p.pod, ...(r.exitCode !== undefined ? { exitCode: r.exitCode } : {}), outputTail: tail(r.output) });
          problem ??= p.failed ?? (r.error ? `in pod ${namespace}/${p.pod}: ${r.error}` : r.exitCode !== 0 ? `exited ${r.exitCode} in pod ${namespace}/${p.pod} (container ${p.container}) after its hold` : undefined);
        }
        results.push(e.started.done(problem === undefined, problem));
      }
      return results;
    },
  };
}
