/**
 * Lab drill (issue 13 §1): endpoint `auto` falls back from LoadBalancer to NodePort when the
 * connectivity probe fails, on real components (a Temporal dev server, a real `ferry worker` child
 * process, both lab clusters).
 *
 *   firewall   the dst cluster's lab-controller gives the migration's LoadBalancer Service an address
 *              (10.250.0.150-199) at once, so `auto` takes LoadBalancer; but the source cannot reach
 *              it: as soon as the Service has its ingress IP, the drill inserts a DROP rule for exactly
 *              that IP and the Service's port (TCP) into the FORWARD and OUTPUT chains of the source
 *              node's network namespace (ferry-lab-src: where the source pods' traffic leaves for the
 *              lab wire). The rule is removed as soon as the LoadBalancer Service is gone (the IP may go
 *              to someone else's Service next), and again in afterAll whatever happened.
 *   migration  the small sample namespace of hack/e2e/sample-app.sh (`af-<run>`, all its PVCs) with
 *              `endpoint: {type: auto}`: the probe through the LoadBalancer fails (the rule's counters
 *              show the dropped SYNs), the namespace workflow deletes the LoadBalancer Service, creates
 *              a NodePort one, re-creates the server for the node address and completes. Then: the
 *              namespace state records endpoint NodePort with a reason naming LoadBalancer's failed
 *              probe, the address is dst-node1's IP and the node port, a warning says that
 *              LoadBalancer failed the connectivity probe, no LoadBalancer Service was seen once the
 *              NodePort one existed, every PVC's tree is identical, the workloads are as before, no
 *              Ferry object is left, and the firewall rule is gone.
 *
 * Skipped with a message unless the lab with nodes is up and iptables/ip are usable here;
 * FERRY_REQUIRE_LAB=1 makes that a failure.
 */
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { startMigration } from '../../src/cli/operations';
import type { WorkflowTuning } from '../../src/core/state';
import { objectName } from '../../src/statetransfer/names';
import { ENDPOINT_ROLE } from '../../src/statetransfer/endpoint/options';
import { kubectl, LAB_KUBECONFIG, labUnavailable } from '../../hack/e2e/lib';
import { startLabWorker, type LabWorker } from '../../hack/e2e/lab-worker';
import { expectMigratedIntact, migrationOutcome, sampleDrill } from '../../hack/e2e/drill-checks';

const ROOT = join(__dirname, '..', '..');
/** The source node's network namespace (hack/lab/node.sh) and the dst node's address on the lab wire. */
const SRC_NETNS = 'ferry-lab-src';
const DST_NODE_IP = '10.250.0.12';

/** Why the drill cannot change the source node's firewall (undefined when it can). */
function firewallUnavailable(): string | undefined {
  const r = spawnSync('ip', ['netns', 'exec', SRC_NETNS, 'iptables', '-S', 'FORWARD'], { encoding: 'utf8', timeout: 30000 });
  return r.status === 0 ? undefined : `cannot run iptables in the network namespace ${SRC_NETNS}: ${(r.stderr || r.error?.message || '').trim()}`;
}

const unavailable = labUnavailable(['kubectl', 'ip', 'iptables']) ?? firewallUnavailable();
if (unavailable && process.env.FERRY_REQUIRE_LAB === '1') throw new Error(`FERRY_REQUIRE_LAB=1 but the lab is not available: ${unavailable}`);
if (unavailable) console.warn(`SKIPPED endpoint auto drill: ${unavailable}. Start it with: bash hack/lab/lab.sh up (FERRY_REQUIRE_LAB=1 makes this a failure)`);
const labDescribe = unavailable ? describe.skip : describe;

/** Short timings: retries wait 1/5 of the default. */
const TUNING: WorkflowTuning = { heartbeatTimeoutSeconds: 20, retryIntervalScale: 0.2 };
const RUN = Math.random().toString(36).slice(2, 7);
const NS = `af-${RUN}`;
const ID = `af-${RUN}`;
const SERVICE = objectName(ID, ENDPOINT_ROLE);
const RULE_COMMENT = `ferry-drill-${NS}`;
const t0 = Date.now();
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const log = (s: string) => process.stdout.write(`[endpoint auto drill +${((Date.now() - t0) / 1000).toFixed(0)}s] ${s}\n`);

/**
 * The firewall between the clusters: DROP of TCP to exactly ip:port in the source node's FORWARD
 * (pods) and OUTPUT (the node itself) chains, tagged with the drill's comment.
 */
class Firewall {
  private target: { ip: string; port: number } | undefined;

  private static iptables(args: string[]): { ok: boolean; out: string } {
    const r = spawnSync('ip', ['netns', 'exec', SRC_NETNS, 'iptables', '-w', '5', ...args], { encoding: 'utf8', timeout: 30000 });
    return { ok: r.status === 0, out: `${r.stdout}${r.stderr}` };
  }

  private static spec(chain: string, t: { ip: string; port: number }): string[] {
    return [chain, '-d', `${t.ip}/32`, '-p', 'tcp', '--dport', String(t.port), '-m', 'comment', '--comment', RULE_COMMENT, '-j', 'DROP'];
  }

  get blocked(): { ip: string; port: number } | undefined {
    return this.target;
  }

  /** Drops the source's traffic to ip:port (first in both chains). */
  block(ip: string, port: number): void {
    if (!/^10\.250\.0\.\d+$/.test(ip) || !Number.isInteger(port)) throw new Error(`refusing to block ${ip}:${port}: not a lab LoadBalancer address`);
    this.target = { ip, port };
    for (const chain of ['FORWARD', 'OUTPUT']) {
      const [c, ...rest] = Firewall.spec(chain, this.target);
      const r = Firewall.iptables(['-I', c!, '1', ...rest]);
      if (!r.ok) throw new Error(`iptables -I ${chain} failed: ${r.out}`);
    }
  }

  /** Packets the rules dropped so far (both chains). */
  dropped(): number {
    let n = 0;
    for (const chain of ['FORWARD', 'OUTPUT']) {
      const r = Firewall.iptables(['-L', chain, '-v', '-x', '-n']);
      for (const line of r.out.split('\n')) if (line.includes(RULE_COMMENT)) n += Number(line.trim().split(/\s+/)[0]);
    }
    return n;
  }

  /** The drill's rules still present in the source node's namespace (any target), as iptables -S lines. */
  static leftovers(): string[] {
    return ['FORWARD', 'OUTPUT'].flatMap((chain) =>
      Firewall.iptables(['-S', chain])
        .out.split('\n')
        .filter((l) => l.includes(RULE_COMMENT)),
    );
  }

  /** Removes the drill's rules (every copy). Never throws. */
  unblock(): void {
    const t = this.target;
    if (!t) return;
    for (const chain of ['FORWARD', 'OUTPUT']) {
      const [c, ...rest] = Firewall.spec(chain, t);
      for (let i = 0; i < 10 && Firewall.iptables(['-D', c!, ...rest]).ok; i++);
    }
  }
}

/** The migration's endpoint Service in dst as it is now: type, LoadBalancer ingress IP, port (undefined: none). */
function endpointService(): { type: string; ip?: string; port: number; nodePort?: number } | undefined {
  const r = spawnSync('kubectl', ['--kubeconfig', LAB_KUBECONFIG, '--context', 'ferry-dst', '-n', NS, 'get', 'svc', SERVICE, '-o', 'json', '--ignore-not-found'], { encoding: 'utf8', timeout: 30000 });
  if (r.status !== 0 || !r.stdout.trim()) return undefined;
  const s = JSON.parse(r.stdout);
  return { type: s.spec.type, ip: s.status?.loadBalancer?.ingress?.[0]?.ip, port: s.spec.ports[0].port, nodePort: s.spec.ports[0].nodePort };
}

labDescribe('endpoint auto: LoadBalancer unreachable from the source, fallback to NodePort, on the lab', () => {
  let lab: LabWorker | undefined;
  const firewall = new Firewall();
  const session = () => lab!.session;

  beforeAll(async () => {
    lab = await startLabWorker(ROOT, `af-${RUN}`);
  }, 300_000);

  afterAll(async () => {
    firewall.unblock();
    const left = Firewall.leftovers();
    if (left.length > 0) console.error(`endpoint auto drill: firewall rules left in ${SRC_NETNS}: ${left.join(' | ')}`);
    await lab?.stop();
    if (process.env.FERRY_E2E_KEEP !== '1') {
      for (const ctx of ['ferry-src', 'ferry-dst']) spawnSync('kubectl', ['--kubeconfig', LAB_KUBECONFIG, '--context', ctx, 'delete', 'ns', NS, '--wait=false', '--ignore-not-found'], { timeout: 30000 });
    }
  }, 120_000);

  test('the probe through the LoadBalancer fails behind a firewall; NodePort takes over, the data arrives, nothing is left', async () => {
    const { plan, before, srcPVCs } = await sampleDrill(NS, { type: 'auto' }, { podStartSeconds: 120 });
    log(`seeded ${NS}; endpoint Service ${SERVICE}`);
    const started = Date.now();
    await startMigration(session(), plan, ID, TUNING);

    // Watch the endpoint Service while the migration runs: block its LoadBalancer address as soon as
    // it has one, note every type seen, lift the block once the LoadBalancer Service is gone.
    const seen: string[] = [];
    let lbAfterNodePort = false;
    let droppedWhileBlocked = 0;
    let done = false;
    const result = migrationOutcome(session(), ID).finally(() => (done = true));
    try {
      while (!done) {
        const svc = endpointService();
        const type = svc?.type ?? 'none';
        if (seen.at(-1) !== type) {
          seen.push(type);
          log(`endpoint Service: ${svc ? JSON.stringify(svc) : 'none'}`);
        }
        if (svc?.type === 'LoadBalancer' && seen.includes('NodePort')) lbAfterNodePort = true;
        if (svc?.type === 'LoadBalancer' && svc.ip && !firewall.blocked) {
          firewall.block(svc.ip, svc.port);
          log(`firewall: ${SRC_NETNS} drops TCP to ${svc.ip}:${svc.port}`);
        }
        if (firewall.blocked && svc?.type !== 'LoadBalancer' && Firewall.leftovers().length > 0) {
          droppedWhileBlocked = firewall.dropped();
          firewall.unblock();
          log(`firewall lifted (the LoadBalancer Service is gone): ${droppedWhileBlocked} packets dropped`);
        }
        await sleep(250);
      }
    } finally {
      if (Firewall.leftovers().length > 0) {
        droppedWhileBlocked = firewall.dropped();
        firewall.unblock();
      }
    }
    const s = await result;
    log(`migration ${s.status} in ${((Date.now() - started) / 1000).toFixed(0)} s; Service types seen: ${seen.join(' -> ')}`);
    const ns = s.namespaces[0]!.result;
    log(`endpoint: ${JSON.stringify(ns?.endpoint)}; address ${JSON.stringify(ns?.address)}; warnings: ${JSON.stringify(ns?.warnings)}`);
    expect({ status: s.status, error: s.error }).toEqual({ status: 'succeeded', error: undefined });

    // the LoadBalancer got its address, the firewall dropped the source's connection attempts to it
    expect(firewall.blocked).toBeDefined();
    expect(droppedWhileBlocked).toBeGreaterThan(0);
    expect(Firewall.leftovers()).toEqual([]);

    // the choice and why: NodePort, because LoadBalancer failed its probe; a warning says so
    expect(ns?.endpoint?.type).toBe('NodePort');
    expect(ns?.endpoint?.reason).toMatch(/LoadBalancer failed the connectivity probe/);
    expect(ns?.address?.host).toBe(DST_NODE_IP);
    expect(ns?.address?.port).toBeGreaterThanOrEqual(30000);
    expect(ns?.warnings.filter((w) => w.startsWith('endpoint auto: LoadBalancer failed the connectivity probe'))).toHaveLength(1);
    // …explained as what it is: the source gets no answer from that address (stunnel's TIMEOUTconnect)
    expect(ns?.warnings.join('\n')).toContain(`no route from the source cluster to the endpoint ${firewall.blocked!.ip}:${firewall.blocked!.port}`);

    // LoadBalancer first, then NodePort, never a LoadBalancer again (nor both at once: one name)
    expect(seen.filter((t) => t !== 'none')).toEqual(['LoadBalancer', 'NodePort']);
    expect(lbAfterNodePort).toBe(false);
    expect(endpointService()).toBeUndefined();
    const lbs = JSON.parse(kubectl('ferry-dst', ['-n', NS, 'get', 'svc', '-o', 'json'])).items.filter((x: any) => x.spec.type === 'LoadBalancer');
    expect(lbs).toEqual([]);

    // data identical, workloads as before, nothing of Ferry's left
    await expectMigratedIntact(NS, srcPVCs, before, log);
  }, 900_000);
});
