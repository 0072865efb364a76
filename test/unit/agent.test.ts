/**
 * The warm transfer agent's pure parts (statetransfer/pods/agent.ts, migration/agent.ts `agentSpecHash` and
 * `staleAgentReason`) and the exit code of an exec (k8s/client.ts `execExitCode`). The lab drill
 * test/e2e/agent.e2e.test.ts runs the same scripts in a real agent.
 */
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { KubernetesObject, V1Container, V1Pod, V1Secret } from '@kubernetes/client-node';
import type { PVCInfo } from '../../src/core/types';
import { agentRunning, agentSpecHash, ensureAgent, probeThroughAgent, runAgentSync, staleAgentReason } from '../../src/migration/agent';
import { execExitCode, type ExecResult, type KubeClient } from '../../src/k8s/client';
import { AbortedError, FerryError } from '../../src/core/errors';
import { clientSideTransferFor } from '../../src/migration/compose';
import { parsePlan } from '../../src/plan/load';
import { createTransferCredentials } from '../../src/statetransfer/namespace-transfer';
import {
  AGENT_ANNOTATION,
  AGENT_SPEC_ANNOTATION,
  AGENT_STATE_MARKER,
  agentStartCommand,
  agentStopCommand,
  agentSyncId,
  agentSyncScript,
  agentWaitCommand,
  parseAgentState,
  parseStartedAt,
  syncDir,
  syncLines,
} from '../../src/statetransfer/pods/agent';
import { FERRY_RUN_DIR, type SecurityMode } from '../../src/statetransfer/types';
import { FakeKube } from '../support/fake-kube';

const address = { host: '192.0.2.10', port: 31443 };

/** A PVC as discovery reports it; `nodeName` when a pod mounts it (ReadWriteOnce: the agent is pinned). */
const pvcInfo = (name: string, nodeName?: string): PVCInfo => ({
  name, destinationName: name, capacity: '1Gi', capacityBytes: 2 ** 30, accessModes: ['ReadWriteOnce'], destinationAccessModes: ['ReadWriteOnce'], volumeMode: 'Filesystem', usedBy: [], ...(nodeName ? { nodeName } : {}),
});
const planOf = (mode: SecurityMode) => parsePlan({ source: {}, destination: {}, namespaces: ['shop:shop2'], security: { mode } });
/** The client side of namespace shop (migration m1) with PVC data in use on node-a and PVC logs idle. */
const transferOf = (mode: SecurityMode = 'restricted') => {
  const plan = planOf(mode);
  return clientSideTransferFor(plan, 'm1', plan.namespaces[0]!, [pvcInfo('data', 'node-a'), pvcInfo('logs')]);
};
const newCredentials = () => createTransferCredentials('m1', transferOf().endpoint, address);
const credentials = newCredentials();

function agent(pvc: string, mode: SecurityMode = 'restricted', creds = credentials) {
  const nt = transferOf(mode);
  const objects = nt.agentObjects(pvc, address, creds);
  return { nt, objects, pod: objects.at(-1) as V1Pod };
}

describe('parseAgentState', () => {
  it('reads done with the report after the state line', () => {
    expect(parseAgentState(`${AGENT_STATE_MARKER}done\nferry-exit-code=0\nsent 10 bytes\n`)).toEqual({ state: 'done', result: 'ferry-exit-code=0\nsent 10 bytes\n' });
    expect(parseAgentState(`${AGENT_STATE_MARKER}done`)).toEqual({ state: 'done', result: '' });
  });

  it('reads running and gone, also after noise', () => {
    expect(parseAgentState(`${AGENT_STATE_MARKER}running\n`)).toEqual({ state: 'running' });
    expect(parseAgentState(`bash: warning\n${AGENT_STATE_MARKER}gone\n`)).toEqual({ state: 'gone' });
  });

  it('refuses output without a state line or with an unknown state', () => {
    expect(() => parseAgentState('')).toThrow(/printed no state/);
    expect(() => parseAgentState('OCI runtime exec failed')).toThrow(/printed no state: OCI runtime exec failed/);
    expect(() => parseAgentState(`${AGENT_STATE_MARKER}paused\n`)).toThrow(/unknown state "paused"/);
  });
});

describe('syncLines', () => {
  it('keeps the lines after the begin marker of its sync, without its end marker', () => {
    const log = ['ferry-agent: sync p1-stage begins', 'old line', 'ferry-agent: sync p1-stage ended (exit 0)', 'ferry-agent: sync p2-stage begins', 'a', 'b', 'ferry-agent: sync p2-stage ended (exit 0)', ''].join('\n');
    expect(syncLines(log, 'p2-stage')).toEqual(['a', 'b']);
    expect(syncLines(log, 'p1-stage')).toEqual(['old line', 'ferry-agent: sync p2-stage begins', 'a', 'b', 'ferry-agent: sync p2-stage ended (exit 0)']);
  });

  it('takes the last begin marker when the same sync ran again (a retried attempt)', () => {
    const log = 'ferry-agent: sync p3-final begins\nfirst try\nferry-agent: sync p3-final ended (exit 30)\nferry-agent: sync p3-final begins\r\nsecond try\r\n';
    expect(syncLines(log, 'p3-final')).toEqual(['second try']);
  });

  it('keeps every line when the marker fell out of the tail', () => {
    expect(syncLines('x 10%\ny 20%\nferry-agent: sync p1-stage ended (exit 0)\n', 'p1-stage')).toEqual(['x 10%', 'y 20%']);
    expect(syncLines('', 'p1-stage')).toEqual([]);
  });
});

describe('agentSyncId', () => {
  it('is stable per pass and kind and differs between them', () => {
    expect(agentSyncId(2, false)).toBe(agentSyncId(2, false));
    expect(new Set([agentSyncId(1, false), agentSyncId(2, false), agentSyncId(1, true), agentSyncId(2, true)]).size).toBe(4);
    for (const id of [agentSyncId(7, true), agentSyncId(-1, false), agentSyncId(2.7, false)]) expect(id).toMatch(/^[a-z0-9-]{1,40}$/);
    expect(agentSyncId(2.7, false)).toBe(agentSyncId(2, false));
  });

  it('every command refuses an id that is not a plain word', () => {
    for (const bad of ['p1;rm -rf /', '../x', 'P1', '']) {
      expect(() => agentStartCommand(bad, 'true')).toThrow(/invalid agent sync id/);
      expect(() => agentWaitCommand(bad, 5)).toThrow(/invalid agent sync id/);
      expect(() => agentStopCommand(bad)).toThrow(/invalid agent sync id/);
    }
  });

  it('commands name the sync directory; the script is passed as an argument, not spliced in', () => {
    const script = "echo 'quoted $x'";
    const start = agentStartCommand('p1-stage', script);
    expect(start.slice(0, 2)).toEqual(['/bin/bash', '-c']);
    expect(start.at(-1)).toBe(script);
    expect(start[2]).toContain(syncDir('p1-stage'));
    expect(start[2]).not.toContain(script);
    expect(agentWaitCommand('p1-stage', 7.9)[2]).toContain('SECONDS + 7)');
  });
});

describe('buildAgentPod (through NamespaceTransfer.agentObjects)', () => {
  it('restartPolicy Always, idle transfer container, transport a regular container with a readiness probe, no init containers', () => {
    const { pod } = agent('data');
    const spec = pod.spec!;
    expect(spec.restartPolicy).toBe('Always');
    expect(spec.initContainers).toBeUndefined();
    expect(spec.containers).toHaveLength(2);
    const [transfer, transport] = spec.containers as [V1Container, V1Container];
    expect(transfer.command?.join(' ')).toMatch(/while :; do sleep/);
    expect(transfer.terminationMessagePath).toBeUndefined();
    expect(transport.restartPolicy).toBeUndefined();
    // Probed until the tunnel listens, never after (a periodic exec probe per agent is a runc exec each period).
    expect(transport.readinessProbe).toBeUndefined();
    expect(transport.livenessProbe).toBeUndefined();
    expect(transport.startupProbe?.exec?.command?.join(' ')).toMatch(/\/dev\/tcp\/127\.0\.0\.1\/\d+/);
    expect(pod.metadata!.annotations![AGENT_ANNOTATION]).toBe('true');
    expect(pod.metadata!.name).toBe(transferOf().clientPodName('data'));
  });

  it('mounts the PVC read-only', () => {
    const { pod } = agent('data');
    const claim = pod.spec!.volumes!.find((v) => v.persistentVolumeClaim?.claimName === 'data')!;
    expect(claim.persistentVolumeClaim!.readOnly).toBe(true);
    const mounts = pod.spec!.containers[0]!.volumeMounts!.filter((m) => m.name === claim.name);
    expect(mounts.length).toBeGreaterThan(0);
    for (const m of mounts) expect(m.readOnly).toBe(true);
  });

  it('keeps the restricted security context on every container', () => {
    const { pod } = agent('data');
    expect(pod.spec!.securityContext!.runAsNonRoot).toBe(true);
    for (const c of pod.spec!.containers) {
      expect(c.securityContext).toMatchObject({ allowPrivilegeEscalation: false, readOnlyRootFilesystem: true, capabilities: { drop: ['ALL'] } });
      expect(c.securityContext!.privileged).toBeFalsy();
    }
  });

  it('is pinned to the node of a ReadWriteOnce PVC in use, and unpinned without one', () => {
    const pinned = agent('data').pod.spec!;
    expect(pinned.affinity?.nodeAffinity?.requiredDuringSchedulingIgnoredDuringExecution?.nodeSelectorTerms).toEqual([
      { matchFields: [{ key: 'metadata.name', operator: 'In', values: ['node-a'] }] },
    ]);
    const free = agent('logs').pod.spec!;
    expect(free.nodeName).toBeUndefined();
    expect(JSON.stringify(free.affinity ?? {})).not.toContain('node-a');
  });

  it('the sync script of a stage and a final sync fits the agent (same env and mounts)', () => {
    const { nt } = agent('data');
    const stage = nt.agentSyncScript('p1-stage', 'data', address, credentials, { final: false });
    const final = nt.agentSyncScript('p2-final', 'data', address, credentials, { final: true });
    expect(stage).toContain(`${syncDir('p1-stage')}/result.tmp`);
    expect(final).toContain(`${syncDir('p2-final')}/result.tmp`);
    expect(final).not.toBe(stage.replaceAll('p1-stage', 'p2-final'));
    expect(() => agentSyncScript('bad id', { argv: ['true'] })).toThrow(/invalid agent sync id/);
  });
});

describe('agentSpecHash and staleAgentReason', () => {
  function live(hash: string, over: Partial<V1Pod> = {}): V1Pod {
    const { pod } = agent('data');
    return { ...pod, metadata: { ...pod.metadata, annotations: { ...pod.metadata!.annotations, [AGENT_SPEC_ANNOTATION]: hash } }, status: { phase: 'Running' }, ...over };
  }

  it('the hash is stable for the same objects and changes with a Secret\'s data', () => {
    const a = agent('data').objects;
    expect(agentSpecHash(a)).toBe(agentSpecHash(agent('data').objects));
    const renewed = newCredentials();
    const b = agent('data', 'restricted', renewed).objects;
    expect(agentSpecHash(b)).not.toBe(agentSpecHash(a));
    // Only one Secret's data differs: still another hash.
    const edited = structuredClone(a) as KubernetesObject[];
    const secret = edited.find((o) => o.kind === 'Secret') as V1Secret;
    expect(secret).toBeDefined();
    const key = Object.keys(secret.data ?? secret.stringData ?? {})[0]!;
    if (secret.data) secret.data[key] = Buffer.from('other').toString('base64');
    else secret.stringData![key] = 'other';
    expect(agentSpecHash(edited)).not.toBe(agentSpecHash(a));
    // Another PVC, another security mode: other pods, other hashes.
    expect(agentSpecHash(agent('logs').objects)).not.toBe(agentSpecHash(a));
    expect(agentSpecHash(agent('data', 'preserve-ownership').objects)).not.toBe(agentSpecHash(a));
  });

  it('a running agent of the same hash serves; anything else is stale, with the reason', () => {
    expect(staleAgentReason(live('h1'), 'h1')).toBeUndefined();
    expect(staleAgentReason(live('h1', { status: { phase: 'Pending' } }), 'h1')).toBeUndefined();
    expect(staleAgentReason(live('h1'), 'h2')).toMatch(/built for other credentials/);
    expect(staleAgentReason(live('h1', { status: { phase: 'Failed' } }), 'h1')).toBe('it ended (Failed)');
    expect(staleAgentReason(live('h1', { status: { phase: 'Succeeded' } }), 'h1')).toBe('it ended (Succeeded)');
    const deleting = live('h1');
    deleting.metadata!.deletionTimestamp = new Date();
    expect(staleAgentReason(deleting, 'h1')).toBe('it is being deleted');
    const perSync = live('h1');
    delete perSync.metadata!.annotations![AGENT_ANNOTATION];
    expect(staleAgentReason(perSync, 'h1')).toMatch(/per-sync client pod/);
  });
});

describe('execExitCode', () => {
  it('Success is 0; NonZeroExitCode carries the code in its ExitCode cause', () => {
    expect(execExitCode({ status: 'Success' })).toBe(0);
    expect(execExitCode({ status: 'Failure', reason: 'NonZeroExitCode', details: { causes: [{ reason: 'ExitCode', message: '42' }] } })).toBe(42);
    expect(execExitCode({ status: 'Failure', reason: 'NonZeroExitCode', details: { causes: [{ reason: 'Other', message: 'x' }, { reason: 'ExitCode', message: '1' }] } })).toBe(1);
  });

  it('any other failure is -1', () => {
    expect(execExitCode({ status: 'Failure', message: 'container not found ("transfer")' })).toBe(-1);
    expect(execExitCode({ status: 'Failure', reason: 'NonZeroExitCode', details: { causes: [{ reason: 'ExitCode', message: 'abc' }] } })).toBe(-1);
    expect(execExitCode({})).toBe(-1);
  });
});

/**
 * The start, wait, forget and stop commands run for real with bash, in a scratch directory instead of
 * the agent's FERRY_RUN_DIR, with the container log (/proc/1/fd/1) a file.
 */
describe("the agent's commands, run with bash", () => {
  let dir: string;
  let log: string;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'ferry-agent-'));
    log = join(dir, 'container.log');
  });
  afterEach(() => {
    spawnSync('bash', ['-c', `for p in ${dir}/syncs/*/pid; do [ -e "$p" ] && kill -KILL -- -$(cat "$p"); done 2>/dev/null; true`]);
    rmSync(dir, { recursive: true, force: true });
  });
  /** Runs one of the agent's exec commands locally; returns stdout. */
  const run = (command: string[]): string => {
    const local = command.map((a, i) => (i === 2 ? a.replaceAll(FERRY_RUN_DIR, dir).replaceAll('/proc/1/fd/1', log) : a));
    const r = spawnSync(local[0]!, local.slice(1), { encoding: 'utf8', timeout: 30_000 });
    if (r.status !== 0) throw new Error(`exit ${r.status}: ${r.stderr}`);
    return r.stdout;
  };
  const syncPath = (id: string) => syncDir(id).replace(FERRY_RUN_DIR, dir);

  it('a sync whose process does not name its directory yet (between fork and exec) is running, not gone', () => {
    const d = syncPath('p1-stage');
    mkdirSync(d, { recursive: true });
    // Its command line is first "bash -c sleep 0.4; exec …" (the directory only in $D), then the
    // wrapper's, which names it: as a sync seen by the start exec's first check, right after the fork.
    const p = spawn('bash', ['-c', 'sleep 0.4; exec bash -c "sleep 5; true" ferry-agent-sync "$D"'], { env: { ...process.env, D: d }, detached: true, stdio: 'ignore' });
    writeFileSync(join(d, 'pid'), `${p.pid}\n`);
    try {
      // before the fix: "gone" at the first check, and the running sync's directory removed
      expect(parseAgentState(run(agentWaitCommand('p1-stage', 0)))).toEqual({ state: 'running' });
      expect(existsSync(join(d, 'pid'))).toBe(true);
    } finally {
      process.kill(-p.pid!, 'SIGKILL');
    }
  });

  it('a second start attaches; an attempt that reads the result after the first one set it aside still gets it', () => {
    expect(run(agentStartCommand('p1-stage', 'sleep 1; echo copied'))).toContain('ferry-agent: started p1-stage');
    expect(run(agentStartCommand('p1-stage', 'echo never runs'))).toContain('ferry-agent: attached p1-stage');
    const first = parseAgentState(run(agentWaitCommand('p1-stage', 20)));
    expect(first).toEqual({ state: 'done', result: 'ferry-exit-code=0\n' });
    // The attached attempt polls after the first set the result aside as it read it: before the fix
    // its directory was gone ("gone", a transient failure and a third rsync run); now it reads the
    // same result.
    expect(parseAgentState(run(agentWaitCommand('p1-stage', 0)))).toEqual(first);
    const out = readFileSync(log, 'utf8');
    expect(out.split('\n').filter((l) => l === 'ferry-agent: sync p1-stage begins')).toHaveLength(1);
    expect(out).toContain('copied');
    expect(out).not.toContain('never runs');
  });

  it('a new start of the same sync runs it again and does not answer with the earlier result', () => {
    run(agentStartCommand('p2-final', 'exit 23'));
    expect(parseAgentState(run(agentWaitCommand('p2-final', 20)))).toEqual({ state: 'done', result: 'ferry-exit-code=23\n' });
    expect(run(agentStartCommand('p2-final', 'sleep 1; exit 0'))).toContain('started');
    expect(parseAgentState(run(agentWaitCommand('p2-final', 0)))).toEqual({ state: 'running' });
    expect(parseAgentState(run(agentWaitCommand('p2-final', 20)))).toEqual({ state: 'done', result: 'ferry-exit-code=0\n' });
  });

  it("a start says when its sync began (the node's clock), even when the exec returns after a wait (bench:migration's first byte)", () => {
    const before = Date.now();
    const out = run(agentStartCommand('p7-stage', 'sleep 1.5', { waitSeconds: 20 }));
    const after = Date.now();
    const began = parseStartedAt(out);
    expect(began).toBeDefined();
    // before: no time in the start line; the worker's log line came after the 1.5 s sync
    expect(began!).toBeGreaterThanOrEqual(before - 50);
    expect(began!).toBeLessThanOrEqual(after - 1400);
    expect(parseStartedAt('ferry-agent: attached p7-stage since 1796520377')).toBeUndefined();
  });

  it('a start with a wait starts, awaits and reads a short sync in one exec; a long one answers running', () => {
    const quick = run(agentStartCommand('p5-final', 'echo delta', { waitSeconds: 20 }));
    expect(quick).toContain('ferry-agent: started p5-final');
    expect(parseAgentState(quick)).toEqual({ state: 'done', result: 'ferry-exit-code=0\n' });
    // set aside as it was read: the wait of another attempt attached to it still gets the result
    expect(parseAgentState(run(agentWaitCommand('p5-final', 0)))).toEqual({ state: 'done', result: 'ferry-exit-code=0\n' });
    const slow = run(agentStartCommand('p6-stage', 'sleep 3', { waitSeconds: 0 }));
    expect(parseAgentState(slow)).toEqual({ state: 'running' });
    expect(run(agentStartCommand('p6-stage', 'echo never runs', { waitSeconds: 20 }))).toMatch(/ferry-agent: attached p6-stage since \d+\n(.|\n)*ferry-agent-state=done/);
  });

  it('stop returns only once every process of the sync is gone, also one that outlives a TERM', () => {
    // A child that ignores TERM for 2 s (as rsync may take a moment to exit).
    run(agentStartCommand('p3-stage', "bash -c 'trap \"\" TERM; sleep 2'"));
    const pgid = readFileSync(join(syncPath('p3-stage'), 'pid'), 'utf8').trim();
    for (let i = 0; i < 50 && spawnSync('pgrep', ['-g', pgid, '-x', 'sleep']).status !== 0; i++) spawnSync('sleep', ['0.1']);
    const t0 = Date.now();
    expect(run(agentStopCommand('p3-stage'))).toContain('ferry-agent: stopped');
    const stillThere = spawnSync('bash', ['-c', `kill -0 -- -${pgid} 2>/dev/null`]).status === 0;
    expect(stillThere).toBe(false);
    expect(Date.now() - t0).toBeGreaterThan(1000);
    expect(parseAgentState(run(agentWaitCommand('p3-stage', 0)))).toEqual({ state: 'gone' });
  });

  it('a process killed without a result is gone, and its directory removed for a fresh start', () => {
    run(agentStartCommand('p4-stage', 'sleep 30'));
    const pgid = readFileSync(join(syncPath('p4-stage'), 'pid'), 'utf8').trim();
    spawnSync('bash', ['-c', `kill -KILL -- -${pgid}`]);
    spawnSync('sleep', ['0.3']);
    expect(parseAgentState(run(agentWaitCommand('p4-stage', 0)))).toEqual({ state: 'gone' });
    expect(run(agentStartCommand('p4-stage', 'true'))).toContain('started');
  });
});

/** The status of an agent whose containers all run, Ready (the tunnel's startup probe passed) or not yet. */
function runningStatus(pod: V1Pod, ready = true): V1Pod['status'] {
  return {
    phase: 'Running',
    conditions: [{ type: 'Ready', status: ready ? 'True' : 'False' }],
    containerStatuses: pod.spec!.containers.map((c) => ({ name: c.name, image: c.image!, imageID: '', ready, restartCount: 0, started: ready, state: { running: { startedAt: new Date() } } })),
  };
}

describe('runAgentSync against a fake API server', () => {
  const pvc = pvcInfo('data');
  type Kind = 'start' | 'wait' | 'stop' | 'forget';

  /** A source cluster with a running, Ready agent of the right spec; `answer` plays each exec. */
  function fakeSource(answer: (kind: Kind, n: number) => ExecResult | Error, podAt: (n: number, live: V1Pod) => V1Pod | undefined = (_n, live) => live) {
    const plan = planOf('restricted');
    const nt = clientSideTransferFor(plan, 'm1', plan.namespaces[0]!, [pvc]);
    const objects = nt.agentObjects('data', address, credentials);
    const live = structuredClone(objects.at(-1)) as V1Pod;
    live.metadata!.uid = 'uid-1';
    live.metadata!.annotations = { ...live.metadata!.annotations, [AGENT_SPEC_ANNOTATION]: agentSpecHash(objects) };
    live.status = runningStatus(live);
    const calls: { command: Kind; ran: boolean }[] = [];
    let gets = 0;
    const source = {
      get: async () => podAt(++gets, live),
      createOrAdopt: async (o: KubernetesObject) => ({ object: o, created: false }),
      core: { readNamespacedPodLog: async () => '', listNamespacedEvent: async () => ({ items: [] }) },
      exec: async (_ns: string, _pod: string, _c: string, command: string[], opts: { signal?: AbortSignal }): Promise<ExecResult> => {
        const body = command[2] ?? '';
        const kind: Kind = body.includes('ferry-agent: started') ? 'start' : body.includes(AGENT_STATE_MARKER) ? 'wait' : body.includes('ferry-agent: stopped') ? 'stop' : 'forget';
        if (opts.signal?.aborted) {
          calls.push({ command: kind, ran: false });
          throw new AbortedError();
        }
        calls.push({ command: kind, ran: true });
        const r = answer(kind, calls.filter((c) => c.command === kind).length);
        if (r instanceof Error) throw r;
        return r;
      },
    } as unknown as KubeClient;
    return { nt, source, calls, live };
  }
  const ok = (stdout: string): ExecResult => ({ exitCode: 0, stdout, stderr: '' });
  const request = { pvc, address, final: false, pass: 1 };

  it('a cancelled sync is stopped in the agent although the signal has aborted', async () => {
    const cancel = new AbortController();
    const { nt, source, calls } = fakeSource((kind) => {
      if (kind === 'wait') cancel.abort(); // the activity is cancelled while the sync runs
      return ok(kind === 'start' ? 'ferry-agent: started p1-stage\n' : kind === 'wait' ? `${AGENT_STATE_MARKER}running\n` : '');
    });
    await expect(runAgentSync(source, nt, credentials, request, { signal: cancel.signal, intervalSeconds: 1 })).rejects.toBeInstanceOf(AbortedError);
    // Before the fix the stop exec got the aborted signal and never ran: the rsync copied on.
    expect(calls).toEqual([
      { command: 'start', ran: true },
      { command: 'wait', ran: true },
      { command: 'stop', ran: true },
    ]);
  });

  it.each([
    ['ends the poll without a state line', () => ({ exitCode: -1, stdout: '', stderr: '' })],
    ['refuses the exec (404: the pod is gone)', () => Object.assign(new Error('pods "x" not found'), { code: 404, statusCode: 404 })],
  ])('an agent deleted mid-sync whose exec %s fails the sync as transient, naming the agent', async (_label, failure) => {
    const deleting = (live: V1Pod) => ({ ...live, metadata: { ...live.metadata, deletionTimestamp: new Date() } }) as V1Pod;
    const { nt, source, live } = fakeSource(
      (kind) => (kind === 'start' ? ok('ferry-agent: started p1-stage\n') : kind === 'wait' ? failure() : ok('')),
      (n, pod) => (n === 1 ? pod : deleting(pod)),
    );
    const err = await runAgentSync(source, nt, credentials, request, { intervalSeconds: 1 }).then(
      () => undefined,
      (e: unknown) => e as FerryError,
    );
    expect(err).toBeInstanceOf(FerryError);
    expect({ category: err!.category, message: err!.message }).toEqual({ category: 'transient', message: expect.stringContaining(`transfer agent shop/${live.metadata!.name} was deleted while sync p1-stage ran`) });
  });

  it('a sync that ends within the start exec\'s wait costs that one exec: no poll, no separate read', async () => {
    const { nt, source, calls } = fakeSource((kind) => (kind === 'start' ? ok(`ferry-agent: started p1-stage\n${AGENT_STATE_MARKER}done\nferry-exit-code=0\n`) : ok('')));
    await expect(runAgentSync(source, nt, credentials, request, { intervalSeconds: 1 })).resolves.toMatchObject({ exitCode: 0, outcome: 'success' });
    // before: start, wait, forget
    expect(calls).toEqual([{ command: 'start', ran: true }]);
  });

  it('a poll refused by the API while the agent is fine fails with that refusal; stateless answers are retried a few times', async () => {
    const forbidden = Object.assign(new Error('pods "x" is forbidden: cannot create resource "pods/exec"'), { code: 403, statusCode: 403 });
    const a = fakeSource((kind) => (kind === 'start' ? ok('ferry-agent: started p1-stage\n') : kind === 'wait' ? forbidden : ok('')));
    await expect(runAgentSync(a.source, a.nt, credentials, request, { intervalSeconds: 1 })).rejects.toBe(forbidden);
    const b = fakeSource((kind, n) => (kind === 'start' ? ok('ferry-agent: started p1-stage\n') : kind === 'wait' ? (n < 3 ? ok('') : ok(`${AGENT_STATE_MARKER}done\nferry-exit-code=0\n`)) : ok('')));
    await expect(runAgentSync(b.source, b.nt, credentials, request, { intervalSeconds: 1 })).resolves.toMatchObject({ exitCode: 0, outcome: 'success' });
    expect(b.calls.filter((c) => c.command === 'wait')).toHaveLength(3);
    const c = fakeSource((kind) => (kind === 'start' ? ok('ferry-agent: started p1-stage\n') : ok('')));
    await expect(runAgentSync(c.source, c.nt, credentials, request, { intervalSeconds: 1 })).rejects.toThrow(/answered the poll of sync p1-stage without a state/);
    expect(c.calls.filter((x) => x.command === 'wait')).toHaveLength(5);
  }, 30_000);
});

describe('probeThroughAgent', () => {
  const plan = planOf('restricted');
  const nt = clientSideTransferFor(plan, 'm1', plan.namespaces[0]!, [pvcInfo('data')]);
  const pod = nt.agentObjects('data', address, credentials).at(-1) as V1Pod;

  /** A source whose agent answers each probe exec with the next of `answers` (exit code, transport log). */
  function probing(answers: { exitCode: number; transportLog: string }[]) {
    let n = 0;
    const source = {
      core: { readNamespacedPodLog: async () => answers[Math.min(n, answers.length) - 1]!.transportLog },
      exec: async (): Promise<ExecResult> => {
        const a = answers[n++]!;
        return { exitCode: a.exitCode, stdout: a.exitCode === 0 ? 'ferry-probe: OK, server says: @RSYNCD: 31.0\n' : 'ferry-probe: no greeting\n', stderr: '' };
      },
    } as unknown as KubeClient;
    return { source, probes: () => n };
  }
  const refused = { exitCode: 3, transportLog: 'LOG3[0]: s_connect: connect 10.250.0.151:8443: Connection refused (111)' };
  const untrusted = { exitCode: 3, transportLog: 'LOG3[0]: SSL_connect: certificate verify failed' };
  const fine = { exitCode: 0, transportLog: '' };

  it('probes again when the endpoint refused the connection (forwarding lags the server becoming Ready)', async () => {
    const p = probing([refused, refused, fine]);
    await expect(probeThroughAgent(p.source, nt, pod, address, { retryDelaysSeconds: [0, 0] })).resolves.toMatchObject({ message: expect.stringContaining('ferry-probe: OK') });
    expect(p.probes()).toBe(3);
  });

  it('by default a refusal is probed again within a quarter second', async () => {
    const p = probing([refused, fine]);
    const started = Date.now();
    await expect(probeThroughAgent(p.source, nt, pod, address)).resolves.toMatchObject({ message: expect.stringContaining('ferry-probe: OK') });
    // before: 2 s between the two probes
    expect(Date.now() - started).toBeLessThan(1000);
    expect(p.probes()).toBe(2);
  });

  it('a connect that times out (a firewall that drops) is thrown at once: probing again would wait its timeout again', async () => {
    const dropped = { exitCode: 4, transportLog: 'LOG3[0]: s_poll_wait 10.250.0.151:8443: TIMEOUTconnect exceeded' };
    const p = probing([dropped, fine]);
    await expect(probeThroughAgent(p.source, nt, pod, address, { retryDelaysSeconds: [0, 0] })).rejects.toMatchObject({ category: 'transient', message: expect.stringContaining('no route from the source cluster') });
    expect(p.probes()).toBe(1);
  });

  it('gives up after the attempts with the explained refusal, and at once on a TLS refusal', async () => {
    const a = probing([refused, refused, refused, fine]);
    await expect(probeThroughAgent(a.source, nt, pod, address, { retryDelaysSeconds: [0, 0] })).rejects.toMatchObject({ category: 'transient', message: expect.stringContaining('refused the TCP connection') });
    expect(a.probes()).toBe(3);
    const b = probing([untrusted, fine]);
    await expect(probeThroughAgent(b.source, nt, pod, address, { retryDelaysSeconds: [0, 0] })).rejects.toMatchObject({ category: 'auth' });
    expect(b.probes()).toBe(1);
  });
});

describe('an agent is used once its containers run, before its startup probe passed (issue 9: first byte)', () => {
  const plan = planOf('restricted');
  const pvc = pvcInfo('data');
  const nt = clientSideTransferFor(plan, 'm1', plan.namespaces[0]!, [pvc]);
  const objects = nt.agentObjects('data', address, credentials);
  const agent = (status: (pod: V1Pod) => V1Pod['status']): V1Pod => {
    const pod = structuredClone(objects.at(-1)) as V1Pod;
    pod.metadata!.uid = 'uid-1';
    pod.metadata!.annotations = { ...pod.metadata!.annotations, [AGENT_SPEC_ANNOTATION]: agentSpecHash(objects) };
    pod.status = status(pod);
    return pod;
  };

  it('agentRunning: every container of the spec running, Ready or not; not while pending, restarting or deleted', () => {
    expect(agentRunning(agent((p) => runningStatus(p, false)))).toBe(true);
    expect(agentRunning(agent((p) => runningStatus(p, true)))).toBe(true);
    expect(agentRunning(agent(() => ({ phase: 'Pending' })))).toBe(false);
    const restarting = agent((p) => runningStatus(p, false));
    restarting.status!.containerStatuses![1]!.state = { waiting: { reason: 'CrashLoopBackOff' } };
    expect(agentRunning(restarting)).toBe(false);
    const oneMissing = agent((p) => runningStatus(p, false));
    oneMissing.status!.containerStatuses!.pop();
    expect(agentRunning(oneMissing)).toBe(false);
    const deleting = agent((p) => runningStatus(p, true));
    deleting.metadata!.deletionTimestamp = new Date();
    expect(agentRunning(deleting)).toBe(false);
  });

  it('ensureAgent returns an agent whose containers run without waiting for Ready (the startup probe ticks once a second)', async () => {
    const kube = new FakeKube([...(objects.slice(0, -1) as KubernetesObject[]), agent((p) => runningStatus(p, false))]);
    const started = Date.now();
    // before: it waited for Ready, which this agent never reports: "was not Ready within 2 s"
    const got = await ensureAgent(kube.client(), nt, { pvc, address }, credentials, { timeoutSeconds: 2 });
    expect(got.metadata?.uid).toBe('uid-1');
    expect(Date.now() - started).toBeLessThan(1000);
  });

  it("the probe through an agent waits for the agent's tunnel to listen", async () => {
    const port = nt.transfer.port;
    // The port waits connect and close at once: their resets are not this test's concern.
    const server = createServer((socket) => socket.on('error', () => undefined).end('@RSYNCD: 31.0\n'));
    const source = {
      core: { readNamespacedPodLog: async () => '' },
      exec: (_ns: string, _pod: string, _c: string, command: string[]): Promise<ExecResult> =>
        new Promise((resolve) => {
          // The exec's script, run here: the tunnel (this test's server) listens 0.5 s after it starts.
          const child = spawn(command[0]!, command.slice(1), { stdio: ['ignore', 'pipe', 'pipe'] });
          let stdout = '';
          let stderr = '';
          child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
          child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
          child.on('close', (code) => resolve({ exitCode: code ?? -1, stdout, stderr }));
        }),
    } as unknown as KubeClient;
    const listening = new Promise<void>((resolve, reject) => {
      setTimeout(() => {
        server.once('error', reject);
        server.listen(port, '127.0.0.1', () => resolve());
      }, 500);
    });
    try {
      const probed = probeThroughAgent(source, nt, agent((p) => runningStatus(p, false)), address, { retryDelaysSeconds: [] });
      await listening; // a port in use here fails the test: it needs 127.0.0.1:<rsync port> free
      // before: the probe connected at once, was refused and failed (exit 6, "cannot connect")
      await expect(probed).resolves.toMatchObject({ message: expect.stringContaining('ferry-probe: OK, server says: @RSYNCD: 31.0') });
    } finally {
      server.close();
    }
  });
});
