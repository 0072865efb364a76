/**
 * Lab drill (issue 13 §5): `ferry plan` (the dry run) on the sample namespace (hack/e2e/sample-app.sh,
 * small profile, owners = the app's uid, restricted mode) between the lab's two real clusters.
 * - It exits 0 with no preflight problem, and for every PVC the file count and the bytes a first copy
 *   sends equal what an independent reader (hack/e2e/manifest.sh: another script, another pod) finds
 *   in the same PVC; the read rate is measured; the workloads quiesce would stop are listed; the
 *   objects it would create name the endpoint Service and the server pod.
 * - It touched nothing: the destination namespace still does not exist, no Ferry object is left in
 *   either cluster, the source workloads run as before.
 * - A plan naming a PVC that does not exist exits 2 with that problem (also as `migrate --dry-run`,
 *   which starts nothing).
 * Skipped unless the lab is up (FERRY_REQUIRE_LAB=1 makes that a failure).
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { runCli } from '../../src/cli/program';
import type { DryRunReport } from '../../src/migration/dry-run';
import { ferryObjects, kubectl, LAB_KUBECONFIG, labGate, manifest, readyReplicas, seedSample } from '../../hack/e2e/lib';

const labDescribe = labGate('plan drill');

const RUN = Math.random().toString(36).slice(2, 7);
const NS = `pl-${RUN}`;
const DST = `pl-${RUN}-dst`;

async function cli(argv: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  const stdout = new PassThrough();
  const stderr = new PassThrough();
  let out = '';
  let err = '';
  stdout.on('data', (c: Buffer) => (out += c.toString()));
  stderr.on('data', (c: Buffer) => (err += c.toString()));
  const code = await runCli(argv, { stdout, stderr, env: { ...process.env, KUBECONFIG: LAB_KUBECONFIG } });
  return { code, stdout: out, stderr: err };
}

/** Files and first-copy bytes of a manifest.sh listing: path|type|mode|uid|gid|size|target|blocks|mtime|sha|group. */
function manifestTotals(text: string): { files: number; bytes: number } {
  let files = 0;
  let bytes = 0;
  for (const line of text.split('\n')) {
    if (!line.trim()) continue;
    const f = line.split('|');
    const [type, , , , size, , , , , group] = f.slice(-10) as string[];
    const path = f.slice(0, f.length - 10).join('|');
    if (type === 'f') files++;
    // each hard-linked inode once (its group is its first path)
    if (type !== 'd' && (group === '-' || group === path)) bytes += Number(size);
  }
  return { files, bytes };
}

labDescribe('ferry plan on the lab', () => {
  const work = mkdtempSync(join(tmpdir(), 'ferry-plan-'));
  const planFile = join(work, 'plan.yaml');
  let before: Record<string, number>;

  beforeAll(async () => {
    await seedSample(NS, { profile: 'small', owners: 'app', dstNamespace: DST });
    before = readyReplicas(NS);
    writeFileSync(
      planFile,
      JSON.stringify({
        name: `pl-${RUN}`,
        source: { kubeconfig: LAB_KUBECONFIG, context: 'ferry-src' },
        destination: { kubeconfig: LAB_KUBECONFIG, context: 'ferry-dst' },
        namespaces: [`${NS}:${DST}`],
        endpoint: { type: 'LoadBalancer' },
        security: { mode: 'restricted' },
        transferImage: 'ferry/transfer:latest',
      }),
    );
  }, 900_000);

  afterAll(() => {
    kubectl('ferry-src', ['delete', 'namespace', NS, '--wait=false']);
    kubectl('ferry-dst', ['delete', 'namespace', DST, '--wait=false', '--ignore-not-found']);
    rmSync(work, { recursive: true, force: true });
  });

  it('measures every PVC as an independent reader does, lists what it would do, and touches nothing', async () => {
    const r = await cli(['plan', '-f', planFile, '-o', 'json', '--sample-mib', '16']);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    const report = JSON.parse(r.stdout) as DryRunReport;
    expect(report.problems).toEqual([]);
    const ns = report.namespaces[0]!;
    expect(ns.destinationExists).toBe(false);
    expect(ns.pvcs.map((p) => p.name).sort()).toEqual(['data-db-0', 'data-db-1', 'files']);
    for (const p of ns.pvcs) {
      const independent = manifestTotals(await manifest('ferry-src', NS, p.name, { owners: false }));
      console.log(`[plan drill] ${p.name}: dry run files=${p.usage?.files} bytes=${p.usage?.bytes} rate=${Math.round((p.readBytesPerSecond ?? 0) / 1048576)} MiB/s; manifest.sh files=${independent.files} bytes=${independent.bytes}`);
      expect(p.notMeasured).toBeUndefined();
      expect(p.usage!.unreadable).toBe(0);
      expect({ files: p.usage!.files, bytes: p.usage!.bytes }).toEqual(independent);
    }
    const files = ns.pvcs.find((p) => p.name === 'files')!;
    expect(files.readBytesPerSecond).toBeGreaterThan(0);
    expect(files.projectedSeconds).toBeGreaterThan(0);
    expect(report.totals.measured).toBe(3);
    expect(ns.quiesce).toEqual(expect.arrayContaining(['Deployment web', 'StatefulSet db']));
    expect(ns.endpoint).toEqual({ type: 'LoadBalancer', reason: expect.stringContaining('the plan names it') });
    const dst = ns.objects.destination.map((o) => `${o.kind} ${o.name}`);
    expect(dst).toEqual(expect.arrayContaining([`Namespace ${DST}`, 'PersistentVolumeClaim files', expect.stringMatching(/^Service ferry-.*-endpoint$/), expect.stringMatching(/^Pod ferry-.*-server$/)]));
    expect(ns.objects.source.filter((o) => o.kind === 'Pod')).toHaveLength(3);

    // nothing touched
    expect(() => kubectl('ferry-dst', ['get', 'namespace', DST])).toThrow(/NotFound/);
    expect(ferryObjects([NS, DST])).toEqual([]);
    expect(readyReplicas(NS)).toEqual(before);

    // the human rendering says the same
    const human = await cli(['plan', '-f', planFile, '--no-measure']);
    expect(human.code).toBe(0);
    expect(human.stdout).toMatch(/Preflight: no problem found/);
    expect(human.stdout).toMatch(/files: not measured: not asked/);
    expect(human.stdout).toMatch(/objects Ferry would create in the destination/);
  }, 600_000);

  it('exits 2 with the problem when the plan names a PVC that does not exist', async () => {
    const r = await cli(['plan', '-f', planFile, '--pvcs', 'files,nope', '-o', 'json']);
    expect(r.code).toBe(2);
    const report = JSON.parse(r.stdout) as DryRunReport;
    expect(report.problems.map((p) => p.message).join('\n')).toMatch(/nope/);
    // `migrate --dry-run` is the same dry run: it starts nothing (no Temporal is contacted)
    const m = await cli(['migrate', '-f', planFile, '--pvcs', 'files,nope', '--dry-run', '-o', 'json']);
    expect(m.code).toBe(2);
    expect((JSON.parse(m.stdout) as DryRunReport).problems).toEqual(report.problems);
    expect(ferryObjects([NS, DST])).toEqual([]);
  }, 300_000);
});
