/**
 * The pure parts of preflight: which permissions the plan needs on each side, and option problems.
 * The checks against clusters run in test/integration/activities-lab.test.ts.
 */
import { cutoverMarkProblem, DEFAULT_INGRESS_CLASS_ANNOTATION, destinationPermissions, ingressClassProblem, optionProblems, sourcePermissions } from '../../src/migration/preflight';
import { parsePlan } from '../../src/plan/load';

const base = { source: { context: 'a' }, destination: { context: 'b' }, namespaces: ['shop'] };
const flat = (needs: { verbs: string[]; group: string; resource: string; subresource?: string }[]) =>
  needs.flatMap((n) => n.verbs.map((v) => `${v} ${n.group ? `${n.group}/` : ''}${n.resource}${n.subresource ? `/${n.subresource}` : ''}`));

describe('permissions Ferry asks for', () => {
  it('source: reads, transfer objects, and patch on workloads only when quiescing', () => {
    const withQuiesce = flat(sourcePermissions(parsePlan(base), false));
    expect(withQuiesce).toEqual(expect.arrayContaining(['list persistentvolumeclaims', 'create pods', 'delete pods', 'get pods/log', 'create secrets', 'patch apps/deployments', 'patch batch/cronjobs', 'patch replicationcontrollers']));
    expect(withQuiesce.some((p) => p.includes('deploymentconfigs'))).toBe(false);
    expect(flat(sourcePermissions(parsePlan(base), true))).toEqual(expect.arrayContaining(['list apps.openshift.io/deploymentconfigs', 'patch apps.openshift.io/deploymentconfigs']));
    const noQuiesce = flat(sourcePermissions(parsePlan({ ...base, quiesce: false }), false));
    expect(noQuiesce.some((p) => p.startsWith('patch'))).toBe(false);
  });
  it('source: exec on pods for warm agents (the default), not for per-sync client pods', () => {
    expect(flat(sourcePermissions(parsePlan(base), false))).toEqual(expect.arrayContaining(['get pods/exec', 'create pods/exec']));
    expect(flat(sourcePermissions(parsePlan({ ...base, agents: 'per-sync' }), false)).some((p) => p.includes('pods/exec'))).toBe(false);
  });
  it('destination: objects of the endpoint type, PVC deletion only with rollback deletion', () => {
    const plan = parsePlan(base);
    expect(flat(destinationPermissions(plan, ['NodePort']))).toEqual(expect.arrayContaining(['create persistentvolumeclaims', 'create services', 'create pods', 'create secrets', 'create configmaps']));
    expect(flat(destinationPermissions(plan, ['NodePort'])).some((p) => p.includes('routes') || p.includes('ingresses') || p === 'delete persistentvolumeclaims')).toBe(false);
    expect(flat(destinationPermissions(plan, ['NodePort']))).toEqual(expect.arrayContaining(['create policy/poddisruptionbudgets', 'delete policy/poddisruptionbudgets']));
    expect(flat(destinationPermissions(plan, ['Route']))).toContain('create route.openshift.io/routes');
    expect(flat(destinationPermissions(plan, ['Ingress']))).toContain('create networking.k8s.io/ingresses');
    expect(flat(destinationPermissions(parsePlan({ ...base, deleteDestinationPVCsOnRollback: true }), ['NodePort']))).toContain('delete persistentvolumeclaims');
    // keepPVCNames deletes the temporary and the original claims in the (one) cluster
    expect(flat(destinationPermissions(parsePlan({ ...base, destination: { context: 'a' }, keepPVCNames: true }), ['ClusterIP']))).toContain('delete persistentvolumeclaims');
  });
});

describe('optionProblems', () => {
  it('a Route without hostname whose generated host would exceed 63 characters', () => {
    const plan = parsePlan({ ...base, endpoint: { type: 'Route' } });
    const long = 'n'.repeat(45);
    expect(optionProblems(plan, 'm', long, ['Route']).join()).toMatch(/hostname is required for endpoint type Route .* would have \d+ characters/);
    expect(optionProblems(plan, 'm', 'shop', ['Route'])).toEqual([]);
    expect(optionProblems(parsePlan({ ...base, endpoint: { type: 'NodePort', nodePort: 30080 } }), 'm', 'shop', ['NodePort'])).toEqual([]);
    expect(optionProblems(parsePlan({ ...base, endpoint: { type: 'NodePort', nodePort: 80 } }), 'm', 'shop', ['NodePort']).join()).toMatch(/nodePort 80 must be an integer from 30000 to 32767/);
  });
});

describe('cutoverMarkProblem (issue 8 item 2)', () => {
  const marked = {
    metadata: { name: 'data', namespace: 'shop', annotations: { 'ferry.dev/cutover-by': 'first-migration', 'ferry.dev/cutover-at': '2026-01-02T03:04:05.000Z' } },
  };
  it('refuses a destination PVC another migration cut over, naming it, the migration and the time', () => {
    const p = cutoverMarkProblem(marked, parsePlan(base));
    expect(p).toMatch(/^destination PVC shop\/data was cut over by migration first-migration at 2026-01-02T03:04:05.000Z: .*overwriteCutoverPVCs: true/);
  });
  it('accepts it when the plan says so, and unmarked PVCs', () => {
    expect(cutoverMarkProblem(marked, parsePlan({ ...base, overwriteCutoverPVCs: true }))).toBeUndefined();
    expect(cutoverMarkProblem({ metadata: { name: 'data', namespace: 'shop', annotations: { other: 'x' } } }, parsePlan(base))).toBeUndefined();
    expect(cutoverMarkProblem(undefined, parsePlan(base))).toBeUndefined();
  });
});

describe('the Ingress endpoint\'s IngressClass', () => {
  const cls = (name: string, isDefault = false) => ({ apiVersion: 'networking.k8s.io/v1', kind: 'IngressClass', metadata: { name, ...(isDefault ? { annotations: { [DEFAULT_INGRESS_CLASS_ANNOTATION]: 'true' } } : {}) } });

  it('the named class must exist', () => {
    expect(ingressClassProblem([cls('nginx')], 'nginx')).toBeUndefined();
    expect(ingressClassProblem([cls('traefik')], 'nginx')).toMatch(/^IngressClass nginx does not exist in the destination \(there: traefik\)/);
  });

  it('none named: the cluster needs a default class', () => {
    expect(ingressClassProblem([cls('nginx', true)], undefined)).toBeUndefined();
    expect(ingressClassProblem([cls('nginx')], undefined)).toMatch(/no IngressClass is named and the destination has no default IngressClass \(there: nginx\)/);
    expect(ingressClassProblem([], undefined)).toMatch(/there: none/);
  });
});
