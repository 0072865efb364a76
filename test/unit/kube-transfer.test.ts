/**
 * Transfer plumbing without an API server: credentials read back from Secret values (real
 * certificates), the probe pod built from the client pieces, the probe script run for real with bash
 * against a real rsync daemon, and failure explanations.
 */
import { execFile, spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { PVCInfo } from '../../src/core/types';
import { clientIdentity, clientSideTransferFor, namespaceTransferFor, serverIdentity, transferFor } from '../../src/migration/compose';
import { explainProbeFailure, PROBE_EXIT, probeScript } from '../../src/statetransfer/probe';
import type { V1Pod } from '@kubernetes/client-node';
import { ensureServer } from '../../src/migration/server';
import { credentialsFromSecrets, credentialsSecret } from '../../src/migration/credentials';
import { FerryError } from '../../src/core/errors';
import { parsePlan } from '../../src/plan/load';
import { createTransferCredentials, type TransferCredentials } from '../../src/statetransfer/namespace-transfer';
import { secretValues } from '../../src/statetransfer/objects';
import { serverSecretData } from '../../src/statetransfer/tls/certificates';
import { createEndpoint } from '../../src/statetransfer/endpoint';

const plan = parsePlan({ source: {}, destination: {}, namespaces: ['shop:shop2'] });
const pvc = (name: string, identity?: PVCInfo['identity']): PVCInfo => ({
  name, destinationName: name, capacity: '1Gi', capacityBytes: 2 ** 30, accessModes: ['ReadWriteOnce'], destinationAccessModes: ['ReadWriteOnce'], volumeMode: 'Filesystem', usedBy: [], ...(identity ? { identity } : {}),
});
const address = { host: '10.1.2.3', port: 31000 };

describe('credentials read back from the Secrets', () => {
  let creds: TransferCredentials;
  let other: TransferCredentials;
  beforeAll(() => {
    const endpoint = createEndpoint({ type: 'NodePort', migrationId: 'm1', namespace: 'shop2', backendPort: 8443 });
    creds = createTransferCredentials('m1', endpoint, address, 30);
    other = createTransferCredentials('m1', endpoint, address, 30);
  });
  const server = (c: TransferCredentials) => serverSecretData(c.certificates);
  const client = (c: TransferCredentials) => secretValues(credentialsSecret('m1', 'shop', c));

  it('rebuilds the credentials when both sides agree and the certificate names the address', () => {
    const { credentials, problem } = credentialsFromSecrets(server(creds), client(creds), address);
    expect(problem).toBeUndefined();
    expect(credentials!.password).toBe(creds.password);
    expect(credentials!.certificates.client).toEqual(creds.certificates.client);
    expect(credentials!.certificates.server).toEqual(creds.certificates.server);
    expect(credentials!.certificates.ca).toEqual({ certPem: creds.certificates.ca.certPem, keyPem: '' });
  });
  it('the credentials Secret holds no CA key and no server key', () => {
    const values = client(creds);
    expect(Object.keys(values).sort()).toEqual(['ca.crt', 'password', 'tls.crt', 'tls.key']);
    expect(values['tls.key']).toBe(creds.certificates.client.keyPem);
    expect(Object.values(values)).not.toContain(creds.certificates.ca.keyPem);
    expect(Object.values(values)).not.toContain(creds.certificates.server.keyPem);
  });
  it.each([
    ['different CAs', () => credentialsFromSecrets(server(other), client(creds), address), /different CAs/],
    ['another address', () => credentialsFromSecrets(server(creds), client(creds), { host: '10.9.9.9', port: 1 }), /does not name the endpoint address 10\.9\.9\.9/],
    ['an SNI the certificate lacks', () => credentialsFromSecrets(server(creds), client(creds), { ...address, sni: 'x.example.com' }), /x\.example\.com/],
    ['expiry within a day', () => credentialsFromSecrets(server(creds), client(creds), address, Date.now() + 30 * 86400 * 1000), /expire/],
    ['an incomplete source Secret', () => credentialsFromSecrets(server(creds), { ...client(creds), password: '' }, address), /incomplete/],
  ])('refuses %s', (_l, fn, message) => {
    const r = fn();
    expect(r.credentials).toBeUndefined();
    expect(r.problem).toMatch(message);
  });
  it('the client side alone needs no server Secret', () => {
    expect(credentialsFromSecrets(undefined, client(creds), undefined).credentials?.password).toBe(creds.password);
  });

  it('the probe pod is built for its purpose: the client side\'s image, transport and Secrets, the probe script; no PVC, no pinning, no transfer password', () => {
    const nt = clientSideTransferFor(plan, 'm1', plan.namespaces[0]!, [{ ...pvc('probe'), nodeName: 'node-1' } as PVCInfo]);
    const all = nt.probeObjects(address, creds, probeScript('rsync', '127.0.0.1', nt.transfer.port));
    const pod = all.at(-1) as V1Pod;
    const objects = all.slice(0, -1);
    expect(pod.kind).toBe('Pod');
    // the probe reads a greeting: it needs neither the PVC nor the transfer's password file
    expect(pod.spec!.volumes!.map((v) => v.name).filter((n) => /password/.test(n))).toEqual([]);
    expect(pod.metadata).toMatchObject({ name: expect.stringMatching(/^ferry-[0-9a-f]{10}-probe$/), namespace: 'shop', labels: { 'ferry.dev/role': 'probe' } });
    expect(pod.spec!.containers.map((c) => c.name)).toEqual(['probe', 'stunnel']);
    expect(pod.spec!.volumes!.some((v) => v.persistentVolumeClaim)).toBe(false);
    expect(pod.spec!.affinity).toBeUndefined();
    expect(pod.spec!.restartPolicy).toBe('Never');
    expect(pod.spec!.activeDeadlineSeconds).toBe(300);
    for (const c of pod.spec!.containers) for (const m of c.volumeMounts ?? []) expect(pod.spec!.volumes!.map((v) => v.name)).toContain(m.name);
    expect(pod.spec!.containers[0]!.command!.join(' ')).toContain('/dev/tcp/127.0.0.1/2222');
    expect(pod.spec!.containers[0]!.image).toBe(plan.transferImage);
    expect(objects.map((o) => o.kind).sort()).toEqual(['ConfigMap', 'Secret', 'Secret']);
  });
});

describe('the probe script, run with bash', () => {
  let work: string;
  let daemon: ChildProcess;
  const port = 20000 + Math.floor(Math.random() * 20000);
  const run = (script: string) => spawnSync('bash', ['-c', script], { encoding: 'utf8', timeout: 30000 });

  beforeAll(async () => {
    work = mkdtempSync(join(tmpdir(), 'ferry-probe-'));
    writeFileSync(join(work, 'rsyncd.conf'), `port = ${port}\naddress = 127.0.0.1\nuse chroot = no\npid file = ${work}/pid\nlock file = ${work}/lock\n[data]\npath = ${work}\nread only = yes\n`);
    daemon = spawn('rsync', ['--daemon', '--no-detach', `--config=${join(work, 'rsyncd.conf')}`], { stdio: 'ignore' });
    for (let i = 0; i < 50; i++) {
      if (run(`exec 3<>/dev/tcp/127.0.0.1/${port}`).status === 0) break;
      await new Promise((r) => setTimeout(r, 100));
    }
  });
  afterAll(() => {
    daemon?.kill();
    rmSync(work, { recursive: true, force: true });
  });

  it('reads the rsync daemon greeting', () => {
    const r = run(probeScript('rsync', '127.0.0.1', port));
    expect(r.status).toBe(0);
    expect(r.stdout).toMatch(/ferry-probe: OK, server says: @RSYNCD: \d+/);
  });
  it('nothing listening: noTcp', () => {
    const r = run(probeScript('rsync', '127.0.0.1', 1));
    expect(r.status).toBe(PROBE_EXIT.noTcp);
  });
  it('TCP-only mode (null transport) only connects', () => {
    expect(run(probeScript('rclone', '127.0.0.1', port, true)).status).toBe(0);
  });

  describe('against other servers (in this process: bash runs asynchronously)', () => {
    const runAsync = (script: string) =>
      new Promise<{ status: number; stdout: string }>((resolve) => {
        execFile('bash', ['-c', script], { encoding: 'utf8', timeout: 30000 }, (err, stdout) => resolve({ status: err ? Number((err as { code?: number }).code ?? -1) : 0, stdout }));
      });
    let server: Server;
    let mode: 'banner' | 'close' = 'banner';
    let sport = 0;
    beforeAll(async () => {
      server = createServer((s) => {
        s.on('error', () => undefined); // the probe closes as soon as it has its line
        if (mode === 'banner') s.end('SSH-2.0-OpenSSH_9.2\r\n');
        else s.destroy();
      });
      await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
      sport = (server.address() as { port: number }).port;
    });
    afterAll(() => server.close());
    it('another protocol answering: badGreeting, with the text', async () => {
      mode = 'banner';
      const r = await runAsync(probeScript('rsync', '127.0.0.1', sport));
      expect(r.status).toBe(PROBE_EXIT.badGreeting);
      expect(r.stdout).toMatch(/unexpected greeting: SSH-2\.0/);
    });
    it('a connection closed at once (what stunnel does when TLS fails): noGreeting', async () => {
      mode = 'close';
      expect((await runAsync(probeScript('rsync', '127.0.0.1', sport))).status).toBe(PROBE_EXIT.noGreeting);
    });
    it('rclone over the tunnel: the SSH identification line of rclone serve sftp', async () => {
      mode = 'banner';
      const r = await runAsync(probeScript('rclone', '127.0.0.1', sport));
      expect(r.status).toBe(0);
      expect(r.stdout).toMatch(/server says: SSH-2\.0-/);
    });
  });
});

describe('explainProbeFailure', () => {
  const a = { host: 'ferry.apps.example.com', port: 443, sni: 'ferry.apps.example.com' };
  it.each([
    ['LOG3[0]: SSL_connect: ssl/statem/statem_clnt.c:1889: error:0A000086:SSL routines::certificate verify failed', 'auth', /TLS handshake .* failed/],
    ['LOG3[0]: s_connect: connect 10.0.0.1:443: Connection refused (111)', 'transient', /refused the TCP connection/],
    ['LOG3[0]: s_connect: s_poll_wait 10.0.0.1:443: TIMEOUTconnect exceeded\nLOG3[0]: No more addresses to connect / Connection timed out', 'transient', /no route from the source cluster/],
    // what stunnel 5.68 of the transfer image logs when a firewall drops the SYNs (lab drill test/e2e/endpoint-auto.e2e.test.ts)
    [
      '2026.12.05 14:39:43 LOG3[15]: s_connect: s_poll_wait 10.250.0.152:8443: TIMEOUTconnect exceeded\n2026.12.05 14:39:43 LOG3[15]: No more addresses to connect\n2026.12.05 14:39:43 LOG5[15]: Connection reset: 0 byte(s) sent to TLS, 0 byte(s) sent to socket',
      'transient',
      /no route from the source cluster .*TIMEOUTconnect exceeded.*a firewall/,
    ],
    ['LOG3[0]: Error resolving "ferry.apps.example.com": Neither nodename nor servname known (EAI_NONAME)\nName or service not known', 'transient', /cannot resolve the endpoint host/],
    ['LOG5[0]: Connection reset by peer', 'transient', /was reset/],
  ])('%s → %s', (log, category, message) => {
    const e = explainProbeFailure(PROBE_EXIT.noGreeting, '', log, a);
    expect(e.category).toBe(category);
    expect(e.message).toMatch(message);
    expect(e.message).toContain('ferry.apps.example.com');
  });
  it('without transport evidence, by exit code', () => {
    expect(explainProbeFailure(PROBE_EXIT.noLocalPort, '', '', a).category).toBe('config');
    expect(explainProbeFailure(PROBE_EXIT.badGreeting, 'ferry-probe: unexpected greeting: SSH-2.0', '', a).message).toMatch(/something else answers/);
    expect(explainProbeFailure(PROBE_EXIT.noGreeting, 'ferry-probe: no greeting', '', a).message).toMatch(/did not answer through the tunnel/);
  });
});

describe('setup from the plan', () => {
  it('client identity: workload identity with the plan overrides; UID 0 dropped in restricted mode', () => {
    expect(clientIdentity(plan, { runAsUser: 1000, fsGroup: 2000, supplementalGroups: [5] })).toEqual({ runAsUser: 1000, fsGroup: 2000, supplementalGroups: [5] });
    expect(clientIdentity(plan, { runAsUser: 0, fsGroup: 2000 })).toEqual({ fsGroup: 2000 });
    const override = parsePlan({ source: {}, destination: {}, namespaces: ['a:b'], security: { runAsUser: 4242, fsGroup: 7 } });
    expect(clientIdentity(override, { runAsUser: 1000, fsGroup: 2000 })).toEqual({ runAsUser: 4242, fsGroup: 7 });
    expect(clientIdentity(plan, undefined)).toBeUndefined();
  });
  it('server identity: what all PVCs agree on; nothing in preserve-ownership mode', () => {
    expect(serverIdentity(plan, [pvc('a', { runAsUser: 1000, fsGroup: 2000 }), pvc('b', { runAsUser: 1000, fsGroup: 3000 })])).toEqual({ runAsUser: 1000 });
    expect(serverIdentity(plan, [pvc('a', { runAsUser: 0 })])).toBeUndefined();
    const root = parsePlan({ source: {}, destination: {}, namespaces: ['a:b'], security: { mode: 'preserve-ownership' } });
    expect(serverIdentity(root, [pvc('a', { runAsUser: 1000 })])).toBeUndefined();
  });
  it('transfer options from the plan; invalid ones are a config error', () => {
    const p = parsePlan({ source: {}, destination: {}, namespaces: ['a:b'], rsync: { verify: true, bandwidthLimitKiBps: 100, excludes: ['*.tmp'] } });
    const nt = namespaceTransferFor(p, 'm', p.namespaces[0]!, [pvc('data')], 'NodePort');
    const creds = { certificates: { ca: { certPem: 'c', keyPem: '' }, server: { certPem: 's', keyPem: 'k' }, client: { certPem: 'c', keyPem: 'k' }, notAfter: '' }, password: 'p'.repeat(43) };
    const clientPod = nt.sourceObjects('data', address, creds, { final: true }).find((o) => o.kind === 'Pod') as { spec: { containers: { command: string[] }[] } };
    const script = clientPod.spec.containers[0]!.command.join(' ');
    for (const flag of ['--checksum', '--bwlimit=100', '--exclude=/lost+found', '--exclude=\\*.tmp', '--delete-during']) expect(script).toContain(flag.replace('\\', ''));
    const bad = { ...p, rsync: { ...p.rsync, extraArgs: ['-S'] } };
    expect(() => transferFor(bad)).toThrow(/invalid transfer options in the plan: rsync\.extraArgs\[0\]/);
  });
});

describe('client pod lifecycle by cluster version', () => {
  const { clientLifecycleFor } = require('../../src/migration/compose') as typeof import('../../src/migration/compose');
  it('uses native sidecars from 1.29 on and the done-file wrapper before or when unknown', () => {
    expect(clientLifecycleFor({ major: '1', minor: '32' })).toBe('native-sidecar');
    expect(clientLifecycleFor({ major: '1', minor: '29+' })).toBe('native-sidecar');
    expect(clientLifecycleFor({ major: '1', minor: '28' })).toBe('done-file');
    expect(clientLifecycleFor({ major: '1', minor: '27+' })).toBe('done-file');
    expect(clientLifecycleFor({ major: '', minor: '' })).toBe('done-file');
    expect(clientLifecycleFor({ major: '2', minor: '0' })).toBe('native-sidecar');
  });
});

describe('ensureServer waits (issue 8 item 10)', () => {
  const nt = namespaceTransferFor(plan, 'm1', plan.namespaces[0]!, [pvc('data')], 'NodePort');
  const creds = createTransferCredentials('m1', nt.endpoint, address, 30);
  /** A destination cluster that accepts every object and then never shows the server pod. */
  const vanishing = {
    contextName: 'ferry-dst',
    createOrAdopt: async (o: unknown) => ({ object: o, created: true }),
    get: async () => undefined,
    delete: async () => true,
    core: { listNamespacedEvent: async () => ({ items: [] }) },
  };

  it('a server pod that disappears while starting is a transient failure at once, not a config error after the wait', async () => {
    const started = Date.now();
    const err = await ensureServer(vanishing as never, nt, creds, { timeoutSeconds: 3 }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(FerryError);
    expect(err).toMatchObject({ category: 'transient', message: expect.stringMatching(/^server pod shop2\/\S+ disappeared while starting$/) });
    expect(Date.now() - started).toBeLessThan(2000);
  });

  it('a server pod that is not Ready in time: config, naming what was awaited and the last state seen', async () => {
    const pending = {
      ...vanishing,
      get: async (ref: { kind: string; name: string; namespace: string }) =>
        ref.kind === 'Pod'
          ? {
              apiVersion: 'v1',
              kind: 'Pod',
              metadata: { name: ref.name, namespace: ref.namespace, creationTimestamp: new Date() },
              spec: { restartPolicy: 'Always', containers: [{ name: 'rsync' }, { name: 'stunnel' }] },
              status: { phase: 'Pending', conditions: [{ type: 'PodScheduled', status: 'False', reason: 'Unschedulable', message: '0/1 nodes are available: 1 node(s) had untolerated taint {node.kubernetes.io/unreachable: }.' }] },
            }
          : undefined,
    };
    const err = await ensureServer(pending as never, nt, creds, { timeoutSeconds: 1 }).catch((e: unknown) => e);
    expect(err).toMatchObject({ category: 'config' });
    expect((err as Error).message).toMatch(/timed out after \d+ s waiting for server pod shop2\/\S+ to be Ready: phase Pending; not scheduled: 0\/1 nodes are available: 1 node\(s\) had untolerated taint/);
  });
});
