import type { V1Container, V1Pod, V1PodDisruptionBudget } from '@kubernetes/client-node';
import { TRANSFER_OBJECT_KINDS } from '../../src/migration/cleanup';
import { createEndpoint } from '../../src/statetransfer/endpoint';
import { createNamespaceTransfer, createTransferCredentials, type NamespaceTransferOptions } from '../../src/statetransfer/namespace-transfer';
import { isDNSLabel } from '../../src/statetransfer/names';
import { execFileSync, spawn } from 'node:child_process';
import { createServer } from 'node:net';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DONE_FILE, parseTerminationMessage, shQuote, transferClientScript } from '../../src/statetransfer/pods/lifecycle';
import { PRESERVE_OWNERSHIP_CAPABILITIES } from '../../src/statetransfer/pods/security';
import { createRcloneTransfer } from '../../src/statetransfer/transfer/rclone';
import { createRsyncTransfer } from '../../src/statetransfer/transfer/rsync';
import { createNullTransport } from '../../src/statetransfer/transport/null';
import { createStunnelTransport } from '../../src/statetransfer/transport/stunnel';
import { FERRY_RUN_DIR, type SecurityMode } from '../../src/statetransfer/types';

const address = { host: '192.0.2.10', port: 31443 };

function options(over: Partial<NamespaceTransferOptions> = {}): NamespaceTransferOptions {
  return {
    migrationId: 'mig-1',
    sourceNamespace: 'shop',
    destinationNamespace: 'shop-new',
    volumes: [
      { sourcePVC: 'data', destinationPVC: 'data', nodeName: 'node-a', identity: { fsGroup: 3000, supplementalGroups: [4000], runAsUser: 1001 } },
      { sourcePVC: 'logs', destinationPVC: 'logs' },
    ],
    transfer: createRsyncTransfer({}),
    transport: createStunnelTransport(),
    endpoint: createEndpoint({ type: 'NodePort', migrationId: 'mig-1', namespace: 'shop-new', backendPort: 8443 }),
    security: 'restricted',
    image: 'registry.example/ferry/transfer:1',
    ...over,
  };
}

const credentials = createTransferCredentials('mig-1', options().endpoint, address);

function pods(mode: SecurityMode, over: Partial<NamespaceTransferOptions> = {}) {
  const nt = createNamespaceTransfer(options({ security: mode, ...over }));
  const server = nt.destinationObjects(credentials).find((o) => o.kind === 'Pod') as V1Pod;
  const client = nt.sourceObjects('data', address, credentials, { final: false }).find((o) => o.kind === 'Pod') as V1Pod;
  return { nt, server, client };
}

/** The "restricted" Pod Security Standard, as the admission controller checks it. */
function restrictedViolations(pod: V1Pod): string[] {
  const v: string[] = [];
  const spec = pod.spec!;
  const psc = spec.securityContext ?? {};
  const all: V1Container[] = [...(spec.initContainers ?? []), ...spec.containers];
  for (const c of all) {
    const sc = c.securityContext ?? {};
    if (sc.privileged) v.push(`${c.name}: privileged`);
    if (sc.allowPrivilegeEscalation !== false) v.push(`${c.name}: allowPrivilegeEscalation != false`);
    if (!(sc.capabilities?.drop ?? []).includes('ALL')) v.push(`${c.name}: capabilities not dropped`);
    if ((sc.capabilities?.add ?? []).some((x) => x !== 'NET_BIND_SERVICE')) v.push(`${c.name}: adds capabilities`);
    if (!(sc.runAsNonRoot ?? psc.runAsNonRoot)) v.push(`${c.name}: runAsNonRoot not true`);
    if ((sc.runAsUser ?? psc.runAsUser) === 0) v.push(`${c.name}: runAsUser 0`);
    const seccomp = sc.seccompProfile?.type ?? psc.seccompProfile?.type;
    if (seccomp !== 'RuntimeDefault' && seccomp !== 'Localhost') v.push(`${c.name}: seccomp`);
    if (!sc.readOnlyRootFilesystem) v.push(`${c.name}: root filesystem writable`);
  }
  for (const vol of spec.volumes ?? []) {
    if (vol.hostPath) v.push(`volume ${vol.name}: hostPath`);
  }
  return v;
}

describe('transfer pods', () => {
  it('pass the restricted Pod Security Standard by default, both lifecycles', () => {
    for (const lifecycle of ['done-file', 'native-sidecar'] as const) {
      const { server, client } = pods('restricted', { lifecycle });
      expect(restrictedViolations(server)).toEqual([]);
      expect(restrictedViolations(client)).toEqual([]);
    }
  });

  it('in preserve-ownership mode run as root with only the needed capabilities, never privileged', () => {
    const { server, client } = pods('preserve-ownership');
    for (const pod of [server, client]) {
      expect(pod.spec!.securityContext!.runAsUser).toBe(0);
      expect(pod.spec!.securityContext!.fsGroup).toBeUndefined();
      const rsync = pod.spec!.containers.find((c) => c.name === 'rsync')!;
      expect(rsync.securityContext!.privileged).toBe(false);
      expect(rsync.securityContext!.allowPrivilegeEscalation).toBe(false);
      expect(rsync.securityContext!.capabilities!.add).toEqual([...PRESERVE_OWNERSHIP_CAPABILITIES]);
      const stunnel = [...(pod.spec!.initContainers ?? []), ...pod.spec!.containers].find((c) => c.name === 'stunnel')!;
      expect(stunnel.securityContext!.capabilities!.add).toBeUndefined();
    }
  });

  it('copy fsGroup, supplementalGroups and the UID of the workload, and pin the client to the PVC node', () => {
    const { client } = pods('restricted');
    const psc = client.spec!.securityContext!;
    expect(psc.fsGroup).toBe(3000);
    expect(psc.fsGroupChangePolicy).toBe('OnRootMismatch');
    expect(psc.supplementalGroups).toEqual([4000]);
    expect(psc.runAsUser).toBe(1001);
    const terms = client.spec!.affinity!.nodeAffinity!.requiredDuringSchedulingIgnoredDuringExecution!.nodeSelectorTerms;
    expect(terms[0]!.matchFields).toEqual([{ key: 'metadata.name', operator: 'In', values: ['node-a'] }]);
  });

  it('mount the source PVC read-only in the client and every destination PVC in the server', () => {
    const { server, client } = pods('restricted');
    const src = client.spec!.volumes!.find((v) => v.persistentVolumeClaim)!;
    expect(src.persistentVolumeClaim).toEqual({ claimName: 'data', readOnly: true });
    const rsync = client.spec!.containers.find((c) => c.name === 'rsync')!;
    expect(rsync.volumeMounts!.find((m) => m.mountPath === '/data')!.readOnly).toBe(true);
    const claims = server.spec!.volumes!.filter((v) => v.persistentVolumeClaim).map((v) => v.persistentVolumeClaim!.claimName);
    expect(claims).toEqual(['data', 'logs']);
  });

  it('put rsync and stunnel in ONE client pod; the server carries the endpoint selector', () => {
    const { nt, server, client } = pods('restricted');
    expect(client.spec!.containers.map((c) => c.name).sort()).toEqual(['rsync', 'stunnel']);
    for (const [k, v] of Object.entries(nt.endpoint.podSelector)) expect(server.metadata!.labels![k]).toBe(v);
    expect(client.spec!.restartPolicy).toBe('Never');
  });

  it('use a native sidecar with a startup probe on 1.29+ clusters', () => {
    const { client } = pods('restricted', { lifecycle: 'native-sidecar' });
    const sidecar = client.spec!.initContainers![0]!;
    expect(sidecar.name).toBe('stunnel');
    expect(sidecar.restartPolicy).toBe('Always');
    expect(sidecar.startupProbe!.exec!.command!.join(' ')).toContain('/dev/tcp/127.0.0.1/2222');
    const script = client.spec!.containers[0]!.command!.join(' ');
    expect(script).not.toContain(DONE_FILE);
  });

  it('never put keys or passwords in pod specs', () => {
    const { server, client } = pods('restricted');
    const specs = JSON.stringify([server, client]);
    for (const secretValue of [credentials.password, credentials.certificates.server.keyPem, credentials.certificates.client.keyPem, credentials.certificates.ca.keyPem]) {
      expect(specs).not.toContain(secretValue);
      expect(specs).not.toContain(Buffer.from(secretValue).toString('base64'));
    }
    for (const c of [...server.spec!.containers, ...client.spec!.containers]) {
      for (const e of c.env ?? []) expect(e.name).not.toMatch(/PASS|KEY|SECRET/i);
    }
  });

  it('give every object a valid name and the migration labels, and distinct names on each side', () => {
    const { nt } = pods('restricted');
    const dst = nt.destinationObjects(credentials);
    const src = nt.sourceObjects('data', address, credentials, { final: true });
    for (const o of [...dst, ...src]) {
      expect(isDNSLabel(o.metadata!.name!)).toBe(true);
      expect(o.metadata!.labels!['ferry.dev/migration']).toBeDefined();
      expect(o.metadata!.labels!['app.kubernetes.io/managed-by']).toBe('ferry');
    }
    const names = new Set([...dst, ...src].map((o) => `${o.kind}/${o.metadata!.name}`));
    expect(names.size).toBe(dst.length + src.length);
    // The CA key never goes into any object.
    expect(JSON.stringify([...dst, ...src])).not.toContain(Buffer.from(credentials.certificates.ca.keyPem).toString('base64'));
  });
});

describe('the transfer server survives for the whole migration (issue 8 item 8)', () => {
  it('requests CPU and memory for every server container and sets no limit (rsync is never throttled)', () => {
    const { server } = pods('restricted');
    for (const c of server.spec!.containers) {
      expect(c.resources?.requests).toEqual({ cpu: '50m', memory: '64Mi' });
      expect(c.resources?.limits).toBeUndefined();
    }
  });

  it('adds a PodDisruptionBudget (minAvailable 1) that selects exactly the server pod, labelled for cleanup', () => {
    const { nt, server } = pods('preserve-ownership');
    const objects = nt.destinationObjects(credentials);
    const pdb = objects.find((o) => o.kind === 'PodDisruptionBudget') as V1PodDisruptionBudget;
    expect(pdb.apiVersion).toBe('policy/v1');
    expect(pdb.spec?.minAvailable).toBe(1);
    expect(pdb.metadata?.labels).toEqual(expect.objectContaining({ 'app.kubernetes.io/managed-by': 'ferry', 'ferry.dev/role': 'server' }));
    const selector = pdb.spec!.selector!.matchLabels!;
    expect(Object.entries(selector).every(([k, v]) => server.metadata!.labels![k] === v)).toBe(true);
    const client = nt.sourceObjects('data', address, credentials, { final: false }).find((o) => o.kind === 'Pod') as V1Pod;
    expect(Object.entries(selector).every(([k, v]) => client.metadata!.labels![k] === v)).toBe(false);
    expect(objects.at(-1)!.kind).toBe('Pod');
    expect(TRANSFER_OBJECT_KINDS).toContainEqual({ apiVersion: 'policy/v1', kind: 'PodDisruptionBudget' });
  });
});

describe('namespace transfer validation', () => {
  it('refuses rsync over the null transport unless insecure is allowed', () => {
    expect(() => createNamespaceTransfer(options({ transport: createNullTransport() }))).toThrow(/does not encrypt itself/);
    expect(() => createNamespaceTransfer(options({ transport: createNullTransport(), allowInsecure: true }))).not.toThrow();
  });

  it('lets rclone encrypt itself over the null transport (SFTP: SSH with a pinned host key)', () => {
    const nt = createNamespaceTransfer(options({ transfer: createRcloneTransfer(), transport: createNullTransport() }));
    const server = nt.destinationObjects(credentials).find((o) => o.kind === 'Pod') as V1Pod;
    const cmd = server.spec!.containers[0]!.command!.join(' ');
    expect(cmd).toContain('rclone serve sftp');
    expect(cmd).toContain('0.0.0.0:8443');
    expect(cmd).not.toContain(credentials.password);
    expect(server.spec!.containers).toHaveLength(1);
  });

  it('refuses rclone over the null transport behind a Route or Ingress (SNI routing needs TLS)', () => {
    const route = createEndpoint({ type: 'Route', migrationId: 'mig-1', namespace: 'shop-new', backendPort: 8443 });
    expect(() => createNamespaceTransfer(options({ transfer: createRcloneTransfer(), transport: createNullTransport(), endpoint: route }))).toThrow(/rclone encrypts itself with SSH, which a Route cannot carry/);
  });

  it('lists every problem at once', () => {
    expect(() =>
      createNamespaceTransfer(
        options({ migrationId: '', volumes: [], endpoint: createEndpoint({ type: 'ClusterIP', migrationId: 'x', namespace: 'other', backendPort: 1 }) }),
      ),
    ).toThrow(/migrationId is empty.*no volumes.*endpoint namespace other/);
  });
});

describe('lifecycle scripts', () => {
  it('quote shell words safely', () => {
    expect(shQuote("it's")).toBe(`'it'\\''s'`);
    expect(shQuote('/plain/path')).toBe('/plain/path');
  });

  it('parse the termination message written by the client script', () => {
    expect(parseTerminationMessage('Number of files: 3\nsent 10 bytes\nferry-exit-code=23\n')).toEqual({ exitCode: 23, lines: ['Number of files: 3', 'sent 10 bytes'] });
    expect(parseTerminationMessage(undefined)).toEqual({ exitCode: undefined, lines: [] });
  });

  it('keep the engine exit code as the container exit code and the summary bounded', () => {
    const s = transferClientScript(['rsync', '-a', 'x y'], { signalDone: true, waitPort: 2222 });
    // Progress lines ('\r'-terminated) are turned into lines and passed on one at a time (issue 8 item 12).
    expect(s).toContain("rsync -a 'x y' 2>&1 | stdbuf -oL tr '\\r' '\\n' | line_awk");
    expect(s).toContain('awk -W interactive');
    expect(s).toContain('rc=${PIPESTATUS[0]}');
    expect(s).toContain('exit "$rc"');
    expect(s).toContain('wait_port 2222 120');
  });

  it('pass progress lines on at most once a second, keeping the last one and every other line in order', () => {
    // A fake engine printing 3,000 progress2 updates at once (what rsync prints at the end of each
    // small file), then its summary: before the throttle every update became a log line.
    const engine = [
      'bash', '-c',
      'echo "building file list ... "; for i in $(seq 1 3000); do printf "  %d,000  %d%%  1.00MB/s  0:00:01 (xfr#%d, to-chk=%d/3000)\\r" $i $((i / 30)) $i $((3000 - i)); done; ' +
        'echo; echo "rsync: [sender] send_files failed to open \\"/data/x\\": Permission denied (13)"; echo "sent 10 bytes  received 20 bytes"; exit 23',
    ];
    const dir = mkdtempSync(join(tmpdir(), 'ferry-throttle-'));
    try {
      const script = transferClientScript(engine, { signalDone: false, terminationPath: join(dir, 'termination') }).split(FERRY_RUN_DIR).join(dir);
      let out = '';
      let code = 0;
      try {
        out = execFileSync('bash', ['-c', script], { encoding: 'utf8' });
      } catch (e) {
        const err = e as { status: number; stdout: string };
        code = err.status;
        out = err.stdout;
      }
      expect(code).toBe(23);
      const lines = out.split('\n').filter((l) => l !== '');
      const progress = lines.filter((l) => / \d+% /.test(l));
      // The loop runs in well under 5 s: at most one line per second shown (plus the held last one).
      expect(progress.length).toBeGreaterThanOrEqual(1);
      expect(progress.length).toBeLessThan(10);
      expect(progress[progress.length - 1]).toContain('(xfr#3000, to-chk=0/3000)');
      // Every other line, in order, after the last progress line.
      expect(lines[0]).toBe('building file list ... ');
      const last = lines.indexOf(progress[progress.length - 1]!);
      expect(lines.slice(last + 1)).toEqual(['rsync: [sender] send_files failed to open "/data/x": Permission denied (13)', 'sent 10 bytes  received 20 bytes']);
      expect(readFileSync(join(dir, 'termination'), 'utf8')).toMatch(/Permission denied[\s\S]*sent 10 bytes[\s\S]*ferry-exit-code=23/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('block volumes (volumeMode Block)', () => {
  const blockVolumes = [
    { sourcePVC: 'data', destinationPVC: 'data', nodeName: 'node-a', block: true },
    { sourcePVC: 'logs', destinationPVC: 'logs' },
  ];

  test('client, agent and server get the device node (volumeDevices), not a mount; the source claim read-only; restricted still holds', () => {
    const { nt, server, client } = pods('restricted', { volumes: blockVolumes });
    const agent = nt.agentObjects('data', address, credentials).at(-1) as V1Pod;
    for (const pod of [client, agent]) {
      const c = pod.spec!.containers[0]!;
      expect(c.volumeDevices).toEqual([{ name: 'source', devicePath: '/data/device' }]);
      expect(c.volumeMounts!.map((m) => m.name)).not.toContain('source');
      expect(pod.spec!.volumes!.find((v) => v.name === 'source')!.persistentVolumeClaim).toEqual({ claimName: 'data', readOnly: true });
      expect(restrictedViolations(pod)).toEqual([]);
    }
    const rsync = server.spec!.containers[0]!;
    expect(rsync.volumeDevices).toEqual([{ name: 'pvc-0', devicePath: '/mnt/ferry/data/device' }]);
    expect(rsync.volumeMounts!.filter((m) => m.name.startsWith('pvc-'))).toEqual([{ name: 'pvc-1', mountPath: '/mnt/ferry/logs' }]);
    expect(restrictedViolations(server)).toEqual([]);
    // the file PVC's client is unchanged
    const logs = nt.sourceObjects('logs', address, credentials, { final: false }).at(-1) as V1Pod;
    expect(logs.spec!.containers[0]!.volumeDevices).toBeUndefined();
    expect(logs.spec!.containers[0]!.volumeMounts).toContainEqual({ name: 'source', mountPath: '/data', readOnly: true });
  });

  test('an engine that does not copy devices is refused when composing', () => {
    expect(() => createNamespaceTransfer(options({ volumes: blockVolumes, transfer: createRcloneTransfer({}), transport: createNullTransport() }))).toThrow(/transfer rclone does not copy block volumes \(volumeMode Block: data\): use transfer rsync/);
  });
});

describe("the server pod's readiness probe (issue 9: first byte)", () => {
  /** Runs the probe's command here with a listener on its port from `listenAfterMs` on; exit code and seconds. */
  async function runProbe(command: string[], port: number, listenAfterMs: number | undefined): Promise<{ code: number | null; seconds: number }> {
    const server = createServer((s) => s.on('error', () => undefined).end());
    const timer = listenAfterMs === undefined ? undefined : setTimeout(() => server.listen(port, '127.0.0.1'), listenAfterMs);
    const started = Date.now();
    try {
      const code = await new Promise<number | null>((resolve) => spawn(command[0]!, command.slice(1), { stdio: 'ignore' }).on('close', resolve));
      return { code, seconds: (Date.now() - started) / 1000 };
    } finally {
      clearTimeout(timer);
      server.close();
    }
  }

  it('one probe waits a few seconds for the transfer port: its first run, as the container starts, does not cost a 5 s period', async () => {
    const probe = pods('restricted').server.spec!.containers[0]!.readinessProbe!;
    const port = createNamespaceTransfer(options()).transfer.port;
    expect(probe.periodSeconds).toBe(5);
    // before: a single connect, refused while the daemon starts (exit 1 at once)
    const late = await runProbe(probe.exec!.command!, port, 700);
    expect(late.code).toBe(0);
    expect(late.seconds).toBeGreaterThanOrEqual(0.6);
    const never = await runProbe(probe.exec!.command!, port, undefined);
    expect(never.code).not.toBe(0);
    expect(never.seconds).toBeLessThan(probe.timeoutSeconds!);
  }, 20_000);
});
