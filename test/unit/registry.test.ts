/**
 * The registry of the transfer layers (src/statetransfer/registry.ts): every type the plan accepts has
 * an implementation, and preflight (RBAC), cleanup (kinds) and the migration layer (engine output,
 * probe greeting) read what each implementation declares instead of lists of their own.
 */
import { TRANSFER_OBJECT_KINDS } from '../../src/migration/cleanup';
import { destinationPermissions } from '../../src/migration/preflight';
import { probeScript } from '../../src/statetransfer/probe';
import { transferVerdict } from '../../src/migration/follow';
import { parsePlan } from '../../src/plan/load';
import { PLAN_ENDPOINT_TYPES } from '../../src/plan/schema';
import { createEndpoint } from '../../src/statetransfer/endpoint';
import { ENDPOINT_KINDS, TRANSFER_ENGINES, TRANSPORTS, endpointExtraKinds, endpointPermissions } from '../../src/statetransfer/registry';
import { ENDPOINT_TYPE_TRAITS, ENDPOINT_TYPES, TRANSFER_TYPES, TRANSPORT_TYPES } from '../../src/statetransfer/types';

const plan = parsePlan({ source: { kubeconfig: '/dev/null' }, destination: { kubeconfig: '/dev/null', context: 'dst' }, namespaces: ['app'] });

describe('registry', () => {
  it('has one implementation per type the plan accepts, each knowing its own type', () => {
    expect(Object.keys(ENDPOINT_KINDS).sort()).toEqual([...ENDPOINT_TYPES].sort());
    for (const t of ENDPOINT_TYPES) expect(ENDPOINT_KINDS[t].type).toBe(t);
    expect(Object.keys(TRANSFER_ENGINES).sort()).toEqual([...TRANSFER_TYPES].sort());
    for (const t of TRANSFER_TYPES) expect(TRANSFER_ENGINES[t].type).toBe(t);
    expect(Object.keys(TRANSPORTS).sort()).toEqual([...TRANSPORT_TYPES].sort());
    for (const t of TRANSPORT_TYPES) expect(TRANSPORTS[t]().type).toBe(t);
    expect(PLAN_ENDPOINT_TYPES).toEqual(['auto', ...ENDPOINT_TYPES]);
  });

  it('builds each endpoint type through its registered kind', () => {
    for (const type of ENDPOINT_TYPES) {
      // the options each type requires, from its traits
      const required = Object.keys(ENDPOINT_TYPE_TRAITS[type].required);
      const e = createEndpoint({
        type,
        migrationId: 'm1',
        namespace: 'app',
        backendPort: 8443,
        ...(required.includes('hostname') ? { hostname: 'x.example.com' } : {}),
        ...(required.includes('gateway') ? { gateway: { name: 'gw' } } : {}),
      });
      expect(e.type).toBe(type);
      // every kind an endpoint creates is one cleanup deletes
      const cleaned = new Set(TRANSFER_OBJECT_KINDS.map((k) => `${k.apiVersion}/${k.kind}`));
      for (const o of e.objects()) expect(cleaned).toContain(`${o.apiVersion}/${o.kind}`);
    }
  });

  it('preflight checks the permissions each endpoint type declares, and only those', () => {
    const resources = (types: Parameters<typeof destinationPermissions>[1]) => destinationPermissions(plan, types).map((n) => n.resource);
    expect(resources(['Route'])).toContain('routes');
    expect(resources(['Route'])).not.toContain('ingresses');
    expect(resources(['Ingress'])).toContain('ingresses');
    expect(resources(['LoadBalancer', 'NodePort'])).not.toEqual(expect.arrayContaining(['routes']));
    expect(endpointPermissions(['Route', 'Route'])).toHaveLength(1);
    expect(endpointExtraKinds().map((k) => k.kind).sort()).toEqual(['Ingress', 'Route', 'TLSRoute']);
    expect(resources(['TLSRoute'])).toContain('tlsroutes');
  });

  it('dispatches output parsing and the probe greeting to the engine', () => {
    expect(probeScript('rsync', 'h', 1)).toContain(TRANSFER_ENGINES.rsync.greeting);
    expect(probeScript('rclone', 'h', 1)).toContain(TRANSFER_ENGINES.rclone.greeting);
    expect(TRANSFER_ENGINES.rsync.progress('     1,048,576  50%   10.00MB/s    0:00:01 (xfr#1, to-chk=1/2)\n')).toMatchObject({ bytes: 1048576, percent: 50 });
    expect(TRANSFER_ENGINES.rclone.progress('Transferred:   \t  1 MiB / 2 MiB, 50%, 1 MiB/s, ETA 1s\n')).toMatchObject({ bytes: 1048576, totalBytes: 2097152 });
    // the same exit code means different things to the engines: rclone 9 is "successful, no files
    // transferred" (rclone docs), rsync has no code 9 (rsync(1) EXIT VALUES)
    expect(transferVerdict({ exitCode: 9, lines: [] }, { engine: 'rclone', final: true, durationSeconds: 1 }).outcome).toBe('success');
    expect(() => transferVerdict({ exitCode: 9, lines: [] }, { engine: 'rsync', final: true, durationSeconds: 1 })).toThrow();
  });
});
