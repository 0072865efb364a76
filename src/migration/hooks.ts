/**
 * Application hooks (plan `hooks`, MTC's and Stork's exec hooks): a command run in each running pod a
 * label selector picks, in the source or destination namespace, at one phase of a namespace's
 * migration. The result says per pod what happened; a failure (no running pod matches, a non-zero
 * exit, the timeout, an API error such as a missing pods/exec permission) is returned, not thrown, so
 * the workflow applies the hook's `onError`. A hook is not retried: Ferry cannot know whether the
 * user's command may run twice.
 * @throws AbortedError when `signal` aborts (the activity is cancelled).
 */
import type { V1Pod } from '@kubernetes/client-node';
import type { HookResult } from '../core/types';
import { AbortedError, errorMessage } from '../core/errors';
import { silentLogger, type Logger } from '../core/log';
import type { KubeClient } from '../k8s/client';
import { hookCluster } from '../plan/hooks';
import type { HookSpec } from '../plan/schema';

/** Bytes of each pod's output kept in the result (the end of stdout and stderr). */
export const HOOK_OUTPUT_TAIL_BYTES = 2048;

function tail(text: string, bytes = HOOK_OUTPUT_TAIL_BYTES): string {
  const b = Buffer.from(text, 'utf8');
  return b.length <= bytes ? text : `…${b.subarray(b.length - bytes).toString('utf8')}`;
}

/**
 * Runs an exec hook in every running pod of `namespace` matching its selector, one pod after another
 * (sorted by name), each within `hook.timeoutSeconds`. Stops at the first failing pod.
 */
export async function runExecHook(client: KubeClient, namespace: string, hook: HookSpec, options: { signal?: AbortSignal; logger?: Logger } = {}): Promise<HookResult> {
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
  let pods: V1Pod[];
  try {
    pods = await client.list<V1Pod>({ apiVersion: 'v1', kind: 'Pod' }, namespace, { labelSelector: hook.exec.selector });
  } catch (err) {
    return done(false, `listing the pods of ${namespace} (selector ${hook.exec.selector}) failed: ${errorMessage(err)}`);
  }
  const running = pods.filter((p) => p.status?.phase === 'Running' && !p.metadata?.deletionTimestamp).sort((a, b) => (a.metadata!.name! < b.metadata!.name! ? -1 : 1));
  if (running.length === 0) {
    return done(false, `no running pod in ${namespace} matches ${hook.exec.selector}${pods.length > 0 ? ` (${pods.length} not running)` : ''}: nothing to run the hook in`);
  }
  for (const pod of running) {
    const name = pod.metadata!.name!;
    const container = hook.exec.container ?? pod.spec?.containers[0]?.name ?? '';
    if (!pod.spec?.containers.some((c) => c.name === container)) {
      result.pods.push({ pod: name, outputTail: '' });
      return done(false, `pod ${namespace}/${name} has no container ${container} (it has ${pod.spec?.containers.map((c) => c.name).join(', ')})`);
    }
    try {
      const r = await client.exec(namespace, name, container, hook.exec.command, { timeoutSeconds: hook.timeoutSeconds, ...(options.signal ? { signal: options.signal } : {}) });
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
