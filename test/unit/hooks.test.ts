/**
 * Application hooks: the plan's `hooks` (schema rules), where each runs (plan/hooks.ts), and
 * runExecHook (migration/hooks.ts) against an in-memory client whose exec returns scripted results:
 * every running pod the selector picks, in name order; stop at the first failure; no pod, a missing
 * container, an API error and a timeout are failures with a reason, not exceptions.
 */
import type { V1Pod } from '@kubernetes/client-node';
import { AbortedError, FerryError } from '../../src/core/errors';
import type { ExecResult, KubeClient } from '../../src/k8s/client';
import { execFileSync, spawn } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { holdScript, buildHookJob, HOOK_JOB_TTL_SECONDS, HOOK_OUTPUT_TAIL_BYTES, hookJobName, runExecHook } from '../../src/migration/hooks';
import { hookPermissions } from '../../src/migration/preflight';
import { hookCluster, hooksOf } from '../../src/plan/hooks';
import { parsePlan, PlanValidationError } from '../../src/plan/load';

const plan = (hooks: unknown[], extra: Record<string, unknown> = {}) => parsePlan({ source: { context: 's' }, destination: { context: 'd' }, namespaces: ['shop'], hooks, ...extra });
const flush = { name: 'flush', phase: 'preQuiesce', exec: { selector: 'app=db', command: ['sh', '-c', 'sync'] } };

describe('plan hooks', () => {
  test('defaults: none; a hook gets timeout 300 s and onError fail; cluster by phase', () => {
    expect(plan([]).hooks).toEqual([]);
    expect(parsePlan({ source: { context: 's' }, destination: { context: 'd' }, namespaces: ['shop'] }).hooks).toEqual([]);
    const [h] = plan([flush]).hooks;
    expect(h).toMatchObject({ name: 'flush', timeoutSeconds: 300, onError: 'fail' });
    expect(hookCluster(h!)).toBe('source');
    expect(hookCluster({ phase: 'postCutover' })).toBe('destination');
    expect(hookCluster({ phase: 'postCutover', cluster: 'source' })).toBe('source');
    expect(hooksOf(undefined, 'preStage')).toEqual([]);
  });

  test('refused: duplicate names, a bad selector, an empty command, quiesce hooks without quiesce, unknown fields', () => {
    const problems = (hooks: unknown[], extra: Record<string, unknown> = {}) => {
      try {
        plan(hooks, extra);
        return [];
      } catch (e) {
        expect(e).toBeInstanceOf(PlanValidationError);
        return (e as PlanValidationError).problems.map((p) => `${p.path}: ${p.message}`);
      }
    };
    expect(problems([flush, flush])).toEqual(['hooks[1].name: hook "flush" is defined twice']);
    expect(problems([{ ...flush, exec: { ...flush.exec, selector: 'app in (a' } }]).join()).toMatch(/^hooks\[0\]\.exec\.selector: has an unbalanced "\("/);
    expect(problems([{ ...flush, exec: { ...flush.exec, command: [] } }]).join()).toMatch(/^hooks\[0\]\.exec\.command: /);
    expect(problems([flush], { quiesce: false })).toEqual(['hooks[0].phase: preQuiesce needs quiesce: true (nothing is quiesced)']);
    expect(problems([{ ...flush, shell: 'bash' }])).toEqual(['hooks[0].shell: unknown key (known keys: name, phase, cluster, exec, job, background, timeoutSeconds, onError)']);
  });
});

/** Pods by name with a phase; exec answers by pod from `answers` (a result, or an error to throw). */
function fakeClient(pods: { name: string; phase?: string; containers?: string[] }[], answers: Record<string, ExecResult | Error> = {}) {
  const calls: { pod: string; container: string; command: string[]; timeoutSeconds?: number }[] = [];
  let selector: string | undefined;
  const client = {
    async list(_kind: unknown, _ns: string, opts: { labelSelector?: string }): Promise<V1Pod[]> {
      selector = opts.labelSelector;
      return pods.map((p) => ({ metadata: { name: p.name }, spec: { containers: (p.containers ?? ['main']).map((name) => ({ name })) }, status: { phase: p.phase ?? 'Running' } }));
    },
    async exec(_ns: string, pod: string, container: string, command: string[], o: { timeoutSeconds?: number }): Promise<ExecResult> {
      calls.push({ pod, container, command, ...(o.timeoutSeconds !== undefined ? { timeoutSeconds: o.timeoutSeconds } : {}) });
      const a = answers[pod] ?? { exitCode: 0, stdout: `ok ${pod}\n`, stderr: '' };
      if (a instanceof Error) throw a;
      return a;
    },
  };
  return { client: client as unknown as KubeClient, calls, selector: () => selector };
}

describe('job hooks', () => {
  const job = { name: 'backup', phase: 'preQuiesce', job: { template: { metadata: { labels: { app: 'backup' } }, spec: { containers: [{ name: 'b', image: 'busybox', command: ['sh', '-c', 'echo done'] }] } } }, timeoutSeconds: 90 };

  test('exactly one of exec and job; a job needs a container with a name and an image', () => {
    const problems = (h: unknown) => {
      try {
        plan([h]);
        return '';
      } catch (e) {
        return (e as PlanValidationError).problems.map((p) => `${p.path}: ${p.message}`).join('; ');
      }
    };
    expect(problems(job)).toBe('');
    expect(problems({ ...job, exec: flush.exec })).toMatch(/^hooks\[0\]: needs exactly one of exec .* and job/);
    expect(problems({ name: 'x', phase: 'preStage' })).toMatch(/needs exactly one of exec/);
    expect(problems({ ...job, job: { template: { spec: { containers: [] } } } })).toMatch(/^hooks\[0\]\.job\.template\.spec\.containers: /);
    expect(problems({ ...job, job: { template: { spec: { containers: [{ name: 'b' }] } } } })).toMatch(/containers\[0\]\.image/);
    expect(problems({ ...job, job: { ...job.job, backoffLimit: 11 } })).toMatch(/backoffLimit/);
    expect(plan([job]).hooks[0]!.job!.backoffLimit).toBe(0);
  });

  test('the Job: the template with the migration labels, restartPolicy Never, the timeout as its deadline, a TTL', () => {
    const spec = plan([job]).hooks[0]!;
    const j = buildHookJob('mig-1', 'shop', spec);
    expect(j.metadata).toMatchObject({ name: hookJobName('mig-1', 'backup'), namespace: 'shop', labels: expect.objectContaining({ 'app.kubernetes.io/managed-by': 'ferry' }) });
    expect(j.spec).toMatchObject({ backoffLimit: 0, activeDeadlineSeconds: 90, ttlSecondsAfterFinished: HOOK_JOB_TTL_SECONDS });
    expect(j.spec!.template.metadata!.labels).toEqual({ app: 'backup', ...j.metadata!.labels });
    expect(j.spec!.template.spec!.restartPolicy).toBe('Never');
    expect(j.spec!.template.spec!.containers[0]!.command).toEqual(['sh', '-c', 'echo done']);
    const onFailure = plan([{ ...job, job: { template: { spec: { ...job.job.template.spec, restartPolicy: 'OnFailure' } } } }]).hooks[0]!;
    expect(buildHookJob('mig-1', 'shop', onFailure).spec!.template.spec!.restartPolicy).toBe('OnFailure');
  });

  test('preflight asks for what each kind needs, on its side', () => {
    const both = plan([job, { ...flush, name: 'flush2', phase: 'postCutover' }]);
    const show = (side: 'source' | 'destination') => hookPermissions(both, side).map((n) => `${n.verbs.join(',')} ${n.group}/${n.resource}${n.subresource ? `/${n.subresource}` : ''}`);
    expect(show('source')).toEqual(['get,create,delete batch/jobs', 'list /pods', 'get /pods/log', 'list /events']);
    expect(show('destination')).toEqual(['list /pods', 'get,create /pods/exec']);
  });
});

describe('background hooks', () => {
  const bg = { name: 'lock', phase: 'preStage', background: true, exec: { selector: 'app=db', command: ['sh', '-c', 'lock; ${FERRY_WAIT}; unlock'] } };
  const problems = (hooks: unknown[], extra: Record<string, unknown>) => {
    try {
      plan(hooks, extra);
      return '';
    } catch (e) {
      return (e as PlanValidationError).problems.map((p) => `${p.path}: ${p.message}`).join('; ');
    }
  };
  const snapshots = { sourceCopyMethod: 'snapshot', groupSnapshot: true };

  test('need groupSnapshot, preStage, exec and ${FERRY_WAIT} in the command', () => {
    expect(problems([bg], snapshots)).toBe('');
    expect(problems([bg], { sourceCopyMethod: 'snapshot' })).toMatch(/hooks\[0\]\.background: needs groupSnapshot: true/);
    expect(problems([{ ...bg, phase: 'postStage' }], snapshots)).toMatch(/hooks\[0\]\.phase: a background hook .* must be preStage/);
    expect(problems([{ ...bg, exec: { ...bg.exec, command: ['sh', '-c', 'lock'] } }], snapshots)).toMatch(/hooks\[0\]\.exec\.command: a background hook's command must contain \$\{FERRY_WAIT\}/);
  });

  test('the hold script marks the hold, waits until the mark goes (or its limit), and removes it', () => {
    const dir = mkdtempSync(join(tmpdir(), 'ferry-hold-'));
    try {
      const mark = join(dir, 'held');
      writeFileSync(join(dir, 'wait.sh'), holdScript(mark, 30));
      const child = spawn('sh', [join(dir, 'wait.sh')]);
      const ended = new Promise<number | null>((r) => child.on('exit', r));
      return (async () => {
        for (let i = 0; i < 50 && !existsSync(mark); i++) await new Promise((r) => setTimeout(r, 100));
        expect(existsSync(mark)).toBe(true);
        await new Promise((r) => setTimeout(r, 500));
        expect(child.exitCode).toBeNull(); // still held
        rmSync(mark);
        expect(await ended).toBe(0);
        // and a hold ends by itself at its limit
        const started = Date.now();
        writeFileSync(join(dir, 'short.sh'), holdScript(mark, 1));
        execFileSync('sh', [join(dir, 'short.sh')]);
        expect(Date.now() - started).toBeLessThan(5000);
        expect(existsSync(mark)).toBe(false);
      })();
    } finally {
      setTimeout(() => rmSync(dir, { recursive: true, force: true }), 10_000).unref();
    }
  });
});

describe('runExecHook', () => {
  const hook = plan([{ ...flush, timeoutSeconds: 42, exec: { ...flush.exec, container: 'db' } }]).hooks[0]!;

  test('runs in every running pod the selector picks, in name order, with the container and timeout', async () => {
    const f = fakeClient([{ name: 'db-1', containers: ['db', 'side'] }, { name: 'db-0', containers: ['side', 'db'] }, { name: 'db-2', phase: 'Pending', containers: ['db'] }]);
    const r = await runExecHook(f.client, 'shop', hook);
    expect(f.selector()).toBe('app=db');
    expect(f.calls).toEqual([
      { pod: 'db-0', container: 'db', command: ['sh', '-c', 'sync'], timeoutSeconds: 42 },
      { pod: 'db-1', container: 'db', command: ['sh', '-c', 'sync'], timeoutSeconds: 42 },
    ]);
    expect(r).toMatchObject({ name: 'flush', phase: 'preQuiesce', cluster: 'source', namespace: 'shop', ok: true });
    expect(r.pods).toEqual([
      { pod: 'db-0', exitCode: 0, outputTail: 'ok db-0\n' },
      { pod: 'db-1', exitCode: 0, outputTail: 'ok db-1\n' },
    ]);
  });

  test('a non-zero exit fails it with the exit code and stderr, and stops there; the output tail is bounded', async () => {
    const f = fakeClient([{ name: 'db-0', containers: ['db'] }, { name: 'db-1', containers: ['db'] }], { 'db-0': { exitCode: 3, stdout: 'x'.repeat(10_000), stderr: 'FLUSH failed: read-only\n' } });
    const r = await runExecHook(f.client, 'shop', hook);
    expect(r.ok).toBe(false);
    expect(r.message).toBe('exited 3 in pod shop/db-0 (container db): FLUSH failed: read-only');
    expect(f.calls.map((c) => c.pod)).toEqual(['db-0']);
    expect(Buffer.byteLength(r.pods[0]!.outputTail)).toBeLessThanOrEqual(HOOK_OUTPUT_TAIL_BYTES + 3);
    expect(r.pods[0]!.outputTail.endsWith('FLUSH failed: read-only\n')).toBe(true);
  });

  test('no running pod, a missing container, an exec error: failures with the reason', async () => {
    expect((await runExecHook(fakeClient([{ name: 'db-0', phase: 'Pending' }]).client, 'shop', hook)).message).toBe('no running pod in shop matches app=db (1 not running): nothing to run the hook in');
    expect((await runExecHook(fakeClient([{ name: 'db-0', containers: ['main'] }]).client, 'shop', hook)).message).toBe('pod shop/db-0 has no container db (it has main)');
    const denied = fakeClient([{ name: 'db-0', containers: ['db'] }], { 'db-0': new FerryError('transient', 'exec in pod shop/db-0 (container db) did not end within 42 s') });
    const r = await runExecHook(denied.client, 'shop', hook);
    expect(r).toMatchObject({ ok: false, message: 'in pod shop/db-0 (container db): exec in pod shop/db-0 (container db) did not end within 42 s' });
  });

  test('a cancelled activity is not a hook failure: the abort propagates', async () => {
    const f = fakeClient([{ name: 'db-0', containers: ['db'] }], { 'db-0': new AbortedError() });
    await expect(runExecHook(f.client, 'shop', hook)).rejects.toBeInstanceOf(AbortedError);
  });
});
