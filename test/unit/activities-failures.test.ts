/**
 * How activities report failures (src/activities/index.ts): the FailureType table, non-retryable
 * flags with actionable messages, and real failures from unusable kubeconfigs / unreachable clusters.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ApplicationFailure } from '@temporalio/common';
import { MockActivityEnvironment } from '@temporalio/testing';
import { createActivities, toApplicationFailure } from '../../src/activities';
import { FailureType, NON_RETRYABLE_FAILURES } from '../../src/core/types';
import { ConflictError, FerryError } from '../../src/core/errors';
import { k8s } from '../../src/k8s/k8s';
import { parsePlan } from '../../src/plan/load';

const silent = { debug: () => {}, info: () => {}, warn: () => {}, error: () => {} };

describe('toApplicationFailure', () => {
  it.each([
    ['transient', FailureType.Transient, false],
    ['preflight', FailureType.Preflight, true],
    ['conflict', FailureType.Preflight, true],
    ['auth', FailureType.Auth, true],
    ['noSpace', FailureType.NoSpace, true],
    ['config', FailureType.Config, true],
    ['partial', FailureType.Partial, true],
    ['fatal', FailureType.Fatal, true],
  ] as const)('FerryError %s → %s (nonRetryable %s)', (category, type, nonRetryable) => {
    const f = toApplicationFailure(new FerryError(category, 'what happened', { details: { exitCode: 23 } }), 'runTransfer');
    expect(f).toBeInstanceOf(ApplicationFailure);
    expect(f.type).toBe(type);
    expect(f.nonRetryable).toBe(nonRetryable);
    expect(f.message).toBe('runTransfer: what happened');
    expect(f.details).toEqual([{ exitCode: 23 }]);
    expect(NON_RETRYABLE_FAILURES.includes(type)).toBe(nonRetryable);
  });

  it('API errors: 401/403 → Auth with the fix, other 4xx → Config, 409 and 5xx → Transient', () => {
    const api = (code: number) => new k8s.ApiException(code, 'x', JSON.stringify({ kind: 'Status', message: `status ${code}` }), {});
    const forbidden = toApplicationFailure(api(403), 'quiesce');
    expect(forbidden).toMatchObject({ type: FailureType.Auth, nonRetryable: true });
    expect(forbidden.message).toMatch(/refused Ferry's identity: status 403 \(HTTP 403\); fix the kubeconfig credentials or grant the RBAC permissions/);
    expect(toApplicationFailure(api(422), 'x')).toMatchObject({ type: FailureType.Config, nonRetryable: true });
    expect(toApplicationFailure(api(409), 'x')).toMatchObject({ type: FailureType.Transient, nonRetryable: false });
    expect(toApplicationFailure(api(503), 'x')).toMatchObject({ type: FailureType.Transient, nonRetryable: false });
  });

  it('programming errors are Fatal; unknown errors Transient; ApplicationFailures pass through', () => {
    expect(toApplicationFailure(new TypeError('x is undefined'), 'a')).toMatchObject({ type: FailureType.Fatal, nonRetryable: true });
    expect(toApplicationFailure(new Error('weird'), 'a')).toMatchObject({ type: FailureType.Transient, nonRetryable: false });
    const af = ApplicationFailure.create({ type: 'X', message: 'm' });
    expect(toApplicationFailure(af, 'a')).toBe(af);
    expect(toApplicationFailure(new ConflictError('Secret ns/x already exists'), 'a').type).toBe(FailureType.Preflight);
  });
});

describe('activities with unusable clusters', () => {
  let dir: string;
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'ferry-act-'));
    writeFileSync(
      join(dir, 'config'),
      `apiVersion: v1
kind: Config
clusters: [{ name: closed, cluster: { server: "https://127.0.0.1:1" } }]
users: [{ name: u, user: { token: t } }]
contexts: [{ name: src, context: { cluster: closed, user: u } }, { name: dst, context: { cluster: closed, user: u } }]
current-context: src
`,
    );
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));
  const plan = (srcContext: string) =>
    parsePlan({ source: { kubeconfig: join(dir, 'config'), context: srcContext }, destination: { kubeconfig: join(dir, 'config'), context: 'dst' }, namespaces: ['shop'] });

  it('a missing context is FerryPreflight, non-retryable, listing the contexts', async () => {
    const a = createActivities({ logger: silent });
    const err = await a.quiesce({ migrationId: 'm', plan: plan('ferry-src'), workloads: [{ apiVersion: 'apps/v1', kind: 'Deployment', namespace: 'shop', name: 'web' }] }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ApplicationFailure);
    expect(err).toMatchObject({ type: FailureType.Preflight, nonRetryable: true });
    expect((err as Error).message).toMatch(/quiesce: context "ferry-src" not found .*available contexts: src, dst/);
  });

  it('an unreachable API server is FerryTransient (retried)', async () => {
    const a = createActivities({ logger: silent });
    const err = await a.cleanup({ migrationId: 'm', plan: plan('src') }).catch((e: unknown) => e);
    expect(err).toMatchObject({ type: FailureType.Transient, nonRetryable: false });
    expect((err as Error).message).toMatch(/ECONNREFUSED/);
  });

  it('preflight never throws for unreachable clusters: it reports them', async () => {
    const problems = await createActivities({ logger: silent }).preflight({ migrationId: 'm', plan: plan('src'), discoveries: [] });
    expect(problems.map((p) => p.subject)).toEqual(expect.arrayContaining(['source', 'destination']));
    expect(problems.find((p) => p.subject === 'source')!.message).toMatch(/API server of context src is not reachable/);
  });

  it('a heartbeating activity heartbeats while its API calls fail, and its wait ends before start-to-close with the reason (issue 8 item 10)', async () => {
    // Nothing answers: waitForQuiesced's own checks never succeed, so it never calls onTick. Before,
    // it sent no heartbeat at all and waited until Temporal's start-to-close timeout cut it off.
    const env = new MockActivityEnvironment({ heartbeatTimeoutMs: 300, startToCloseTimeoutMs: 2000 });
    let beats = 0;
    env.on('heartbeat', () => beats++);
    const a = createActivities({ logger: silent });
    const guard = setTimeout(() => env.cancel(), 9000);
    const started = Date.now();
    const err = await env.run(a.waitForQuiesced, { migrationId: 'm', plan: plan('src'), workloads: [{ apiVersion: 'apps/v1', kind: 'Deployment', namespace: 'shop', name: 'web' }] }).catch((e: unknown) => e);
    clearTimeout(guard);
    expect(err).toBeInstanceOf(ApplicationFailure);
    expect(err).toMatchObject({ type: FailureType.Transient, nonRetryable: false });
    expect((err as Error).message).toMatch(/^waitForQuiesced: timed out after \d+ s waiting for the quiesced workloads' pods to stop: last check failed: .*ECONNREFUSED/);
    expect(Date.now() - started).toBeLessThan(8000);
    expect(beats).toBeGreaterThanOrEqual(3);
  }, 15000);

  it('copyImages heartbeats during a long skopeo copy (issue 8 item 10)', async () => {
    // A stand-in skopeo whose copy takes 1.5 s. Before, copyImages heartbeated only between images,
    // so a heartbeat timeout shorter than one copy would have failed a healthy copy.
    const skopeo = join(dir, 'skopeo');
    writeFileSync(
      skopeo,
      `#!/bin/bash
case "$1" in
  list-tags) echo '{"Tags":["v1"]}' ;;
  inspect) case "\${@: -1}" in *127.0.0.1:2*) echo 'manifest unknown' >&2; exit 1 ;; *) echo '{"schemaVersion":2}' ;; esac ;;
  copy) sleep 1.5; for a in "$@"; do case "$a" in --digestfile=*) echo sha256:abc > "\${a#--digestfile=}" ;; esac; done ;;
esac
`,
      { mode: 0o755 },
    );
    const imagePlan = parsePlan({
      source: { kubeconfig: join(dir, 'config'), context: 'src' },
      destination: { kubeconfig: join(dir, 'config'), context: 'dst' },
      namespaces: ['shop'],
      images: { enabled: true, mode: 'registry', sourceRegistry: { url: 'https://127.0.0.1:1' }, destinationRegistry: { url: 'https://127.0.0.1:2' }, repositories: ['shop/web'] },
    });
    const env = new MockActivityEnvironment({ heartbeatTimeoutMs: 300, startToCloseTimeoutMs: 60000 });
    const beats: number[] = [];
    env.on('heartbeat', () => beats.push(Date.now()));
    const a = createActivities({ logger: silent, skopeo: { binary: skopeo } });
    const started = Date.now();
    const report = (await env.run(a.copyImages, { migrationId: 'm', plan: imagePlan, namespace: imagePlan.namespaces[0]! })) as Awaited<ReturnType<typeof a.copyImages>>;
    const ended = Date.now();
    expect(report.copied).toEqual([{ source: '127.0.0.1:1/shop/web:v1', destination: '127.0.0.1:2/shop/web:v1', digest: 'sha256:abc' }]);
    const gaps = [started, ...beats, ended].slice(1).map((t, i) => t - [started, ...beats][i]!);
    expect(Math.max(...gaps)).toBeLessThan(300);
  });

  it('cancellation surfaces as the activity\'s cancellation, not as a Ferry failure', async () => {
    const env = new MockActivityEnvironment();
    const a = createActivities({ logger: silent });
    const p = env.run(a.waitForQuiesced, { migrationId: 'm', plan: plan('src'), workloads: [{ apiVersion: 'apps/v1', kind: 'Deployment', namespace: 'shop', name: 'web' }] });
    setTimeout(() => env.cancel(), 200);
    const err = await p.catch((e: unknown) => e);
    expect(err).not.toBeInstanceOf(ApplicationFailure);
    expect((err as Error).name).toMatch(/Cancel/);
  });
});
