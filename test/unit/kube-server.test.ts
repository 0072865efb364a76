/**
 * The transfer server before and after every sync (src/migration/server.ts, server-sync.ts): the pure
 * decisions on the live server pod, and the whole ensure / renew / explain logic against an in-memory
 * stand-in for the two API servers (it keeps objects by kind/namespace/name, honours uid
 * preconditions on delete and 409 on create, and marks a created pod Running and Ready — the kubelet's
 * part; the real clusters are exercised by test/e2e/server.e2e.test.ts).
 */
import { randomUUID } from 'node:crypto';
import { X509Certificate } from 'node:crypto';
import type { KubernetesObject, V1ConfigMap, V1Pod, V1Secret } from '@kubernetes/client-node';
import type { PVCInfo } from '../../src/core/types';
import type { KubeClient, ObjectRef } from '../../src/k8s/client';
import { FerryError } from '../../src/core/errors';
import { ensureServerForSync, explainSyncFailure, MISSING_GRACE_SECONDS, serverPassword, type SyncTarget } from '../../src/migration/server-sync';
import { podFromTemplate, serverChange, serverPodDecision, serverSnapshot, serverTemplateName } from '../../src/migration/server';
import { namespaceTransferFor } from '../../src/migration/compose';
import { serverTLSSecretName } from '../../src/statetransfer/namespace-transfer';
import { ensureServer } from '../../src/migration/server';
import { credentialsSecretName, ensureCredentials, TRANSFER_KEY_POOL } from '../../src/migration/credentials';
import { parsePlan } from '../../src/plan/load';
import { secretValues } from '../../src/statetransfer/objects';

/** The in-memory API server of one cluster (only what the code under test calls). */
class FakeCluster {
  readonly objects = new Map<string, KubernetesObject>();
  /** Pods become Ready when created (kubelet stand-in). */
  readyOnCreate = true;
  key(r: { kind?: string; namespace?: string; name?: string }) {
    return `${r.kind}/${r.namespace}/${r.name}`;
  }
  refKey(r: ObjectRef | KubernetesObject) {
    return 'metadata' in r ? this.key({ kind: r.kind, namespace: r.metadata?.namespace, name: r.metadata?.name }) : this.key(r as ObjectRef);
  }
  put(o: KubernetesObject, ageSeconds = 0): KubernetesObject {
    const copy = structuredClone(o);
    copy.metadata = { ...copy.metadata, uid: randomUUID(), creationTimestamp: new Date(Date.now() - ageSeconds * 1000) as never };
    if (copy.kind === 'Pod' && this.readyOnCreate) (copy as V1Pod).status = { phase: 'Running', conditions: [{ type: 'Ready', status: 'True' }], containerStatuses: [] };
    this.objects.set(this.refKey(copy), copy);
    return copy;
  }
  client(): KubeClient {
    const c = {
      get: async (r: ObjectRef) => structuredClone(this.objects.get(this.refKey(r))),
      list: async (kind: { kind: string }, ns: string) => [...this.objects.values()].filter((o) => o.kind === kind.kind && o.metadata?.namespace === ns),
      createOrAdopt: async (o: KubernetesObject) => {
        const have = this.objects.get(this.refKey(o));
        if (have) return { object: structuredClone(have), created: false };
        return { object: structuredClone(this.put(o)), created: true };
      },
      delete: async (r: ObjectRef | KubernetesObject, _grace?: number, uid?: string) => {
        const k = this.refKey(r);
        const have = this.objects.get(k);
        if (!have || (uid && have.metadata?.uid !== uid)) return false;
        this.objects.delete(k);
        return true;
      },
      hasApi: async () => true,
      version: async () => ({ major: '1', minor: '32' }),
    };
    return c as unknown as KubeClient;
  }
}

const plan = parsePlan({ source: {}, destination: {}, namespaces: ['shop:shop2'], endpoint: { type: 'NodePort' }, timeouts: { serverReadySeconds: 30 } });
const pvc = (name: string): PVCInfo => ({ name, destinationName: name, capacity: '1Gi', capacityBytes: 2 ** 30, accessModes: ['ReadWriteOnce'], destinationAccessModes: ['ReadWriteOnce'], volumeMode: 'Filesystem', usedBy: [] });
const address = { host: '10.1.2.3', port: 31000 };
const MID = 'mig-srv';
const target = (name = 'data'): SyncTarget => ({ migrationId: MID, plan, namespace: { source: 'shop', destination: 'shop2' }, pvc: pvc(name), address });
const nt = () => namespaceTransferFor(plan, MID, { source: 'shop', destination: 'shop2' }, [pvc('data'), pvc('logs')], 'NodePort');
const opts = { timeoutSeconds: 30 };

/** Both clusters after createServer (real code: ensureCredentials + ensureServer), the server pod `ageSeconds` old. */
async function prepared(validityDays?: number) {
  const src = new FakeCluster();
  const dst = new FakeCluster();
  const { credentials } = await ensureCredentials(src.client(), dst.client(), nt(), address);
  if (validityDays !== undefined) {
    // Stored credentials as a long warm migration would have them: near their end.
    const { createTransferCredentials } = await import('../../src/statetransfer/namespace-transfer');
    const { credentialsSecret } = await import('../../src/migration/credentials');
    const short = { ...createTransferCredentials(MID, nt().endpoint, address, validityDays), password: credentials.password };
    src.objects.clear();
    dst.objects.clear();
    src.put(credentialsSecret(MID, 'shop', short), 3600);
    for (const o of nt().destinationObjects(short)) if (o.kind !== 'Pod') dst.put(o, 3600);
    await ensureServer(dst.client(), nt(), short, opts);
  } else {
    await ensureServer(dst.client(), nt(), credentials, opts);
  }
  // everything was made two hours ago, the running server pod an hour ago
  for (const o of [...src.objects.values(), ...dst.objects.values()]) o.metadata!.creationTimestamp = new Date(Date.now() - 7200_000) as never;
  const podKey = `Pod/shop2/${nt().serverPodName}`;
  const pod = dst.objects.get(podKey)!;
  pod.metadata!.creationTimestamp = new Date(Date.now() - 3600_000) as never;
  return { src, dst, podKey, password: credentials.password };
}

const pod = (over: Partial<V1Pod['status']> & { deleting?: boolean; uid?: string } = {}): V1Pod => {
  const { deleting, uid, ...status } = over;
  return {
    metadata: { name: 'srv', uid: uid ?? 'u1', creationTimestamp: new Date('2026-01-01T00:00:00Z') as never, ...(deleting ? { deletionTimestamp: new Date('2026-01-02T00:00:10Z') as never, deletionGracePeriodSeconds: 10 } : {}) },
    status: { phase: 'Running', conditions: [{ type: 'Ready', status: 'True' }], ...status },
  };
};

describe('serverPodDecision (pure)', () => {
  it.each([
    ['missing', undefined, 'recreate', /does not exist \(not made yet, or deleted\)/],
    ['being deleted', pod({ deleting: true }), 'replace', /is being deleted \(since 2026-01-02T00:00:00Z\)/],
    ['evicted', pod({ phase: 'Failed', reason: 'Evicted', message: 'The node was low on resource: memory.' }), 'replace', /was evicted \(Evicted: The node was low on resource: memory\.\)/],
    ['ended', pod({ phase: 'Succeeded' }), 'replace', /ended \(phase Succeeded\)/],
    ['Ready', pod(), 'keep', /running and Ready/],
    ['restarting', pod({ conditions: [{ type: 'Ready', status: 'False' }], containerStatuses: [{ name: 'rsync', restartCount: 2, ready: false, image: 'i', imageID: '', lastState: { terminated: { exitCode: 137, reason: 'OOMKilled', finishedAt: new Date('2026-01-01T01:00:00Z') as never } } }] }), 'wait', /not Ready \(phase Running; its containers restarted 2 times; container rsync last exited with code 137 \(OOMKilled\)/],
  ])('%s', (_what, live, action, reason) => {
    const d = serverPodDecision(live, 'shop2/srv');
    expect(d.action).toBe(action);
    expect(d.reason).toMatch(reason);
  });
  it('replaces a Ready pod older than its renewed certificates, keeps a newer one', () => {
    expect(serverPodDecision(pod(), 'x', { configSince: Date.parse('2026-01-01T00:00:05Z') }).action).toBe('replace');
    expect(serverPodDecision(pod(), 'x', { configSince: Date.parse('2025-12-31T00:00:00Z') }).action).toBe('keep');
  });
});

describe('serverChange (pure): what happened to the server during a failed sync', () => {
  const before = serverSnapshot(pod())!;
  it.each([
    ['deleted', undefined, /was deleted during the sync \(it had run since 2026-01-01T00:00:00Z\)/],
    ['replaced', pod({ uid: 'u2' }), /was replaced during the sync/],
    ['evicted', pod({ phase: 'Failed', reason: 'Evicted', message: 'node drained' }), /was evicted \(Evicted: node drained\)/],
    ['restarted', pod({ containerStatuses: [{ name: 'stunnel', restartCount: 1, ready: true, image: 'i', imageID: '' }] }), /restarted 1 time during the sync/],
  ])('%s', (_what, now, re) => {
    expect(serverChange(before, now, 'shop2/srv')).toMatch(re);
  });
  it('nothing when the same pod ran throughout', () => {
    expect(serverChange(before, pod(), 'shop2/srv')).toBeUndefined();
  });
});

describe('ensureServerForSync: the server is made right before every sync', () => {
  it('keeps a Ready server and valid credentials without touching anything', async () => {
    const { src, dst, podKey } = await prepared();
    const uid = dst.objects.get(podKey)!.metadata!.uid;
    const before = JSON.stringify([...src.objects, ...dst.objects]);
    const s = await ensureServerForSync(src.client(), dst.client(), target(), opts);
    expect(s.actions).toEqual([]);
    expect(s.before?.uid).toBe(uid);
    expect(JSON.stringify([...src.objects, ...dst.objects])).toBe(before);
  });

  it('createServer again (a retry) keeps the same template and the same server pod', async () => {
    const { src, dst, podKey } = await prepared();
    const uids = () => [dst.objects.get(podKey)!.metadata!.uid, dst.objects.get(`ConfigMap/shop2/${serverTemplateName(MID)}`)!.metadata!.uid];
    const before = uids();
    const { credentials, created } = await ensureCredentials(src.client(), dst.client(), nt(), address);
    expect(created).toBe(false);
    await ensureServer(dst.client(), nt(), credentials, opts);
    expect(uids()).toEqual(before);
  });

  it('a migration set up before the template existed: the server is left alone, the credentials used as stored', async () => {
    const { src, dst, podKey } = await prepared();
    dst.objects.delete(`ConfigMap/shop2/${serverTemplateName(MID)}`);
    dst.objects.delete(podKey);
    const s = await ensureServerForSync(src.client(), dst.client(), target(), opts);
    expect(s.template).toBeUndefined();
    expect(dst.objects.has(podKey)).toBe(false);
    expect(s.credentials.password).toBeTruthy();
  });

  it('recreates a deleted server pod from the stored template, with the same Secrets', async () => {
    const { src, dst, podKey } = await prepared();
    const template = podFromTemplate(dst.objects.get(`ConfigMap/shop2/${serverTemplateName(MID)}`) as V1ConfigMap)!;
    const secretsBefore = [...dst.objects.values()].filter((o) => o.kind === 'Secret').map((o) => o.metadata!.uid);
    dst.objects.delete(podKey);
    const s = await ensureServerForSync(src.client(), dst.client(), target(), opts);
    expect(s.actions.join()).toMatch(/does not exist \(not made yet, or deleted\): recreated it, Ready again/);
    const live = dst.objects.get(podKey) as V1Pod;
    expect(live.spec).toEqual(template.spec);
    expect(live.spec!.volumes!.filter((v) => v.persistentVolumeClaim).map((v) => v.persistentVolumeClaim!.claimName)).toEqual(['data', 'logs']);
    expect([...dst.objects.values()].filter((o) => o.kind === 'Secret').map((o) => o.metadata!.uid)).toEqual(secretsBefore);
  });

  it('replaces an evicted server pod', async () => {
    const { src, dst, podKey } = await prepared();
    const old = dst.objects.get(podKey) as V1Pod;
    old.status = { phase: 'Failed', reason: 'Evicted', message: 'The node was low on resource: ephemeral-storage.' };
    const s = await ensureServerForSync(src.client(), dst.client(), target(), opts);
    expect(s.actions.join()).toMatch(/was evicted .*: recreated it/);
    expect(dst.objects.get(podKey)!.metadata!.uid).not.toBe(old.metadata!.uid);
    expect((dst.objects.get(podKey) as V1Pod).status?.phase).toBe('Running');
  });

  it('renews certificates that expire within a week on both sides, keeps the password, restarts the server', async () => {
    const { src, dst, podKey, password } = await prepared(3);
    const oldPod = dst.objects.get(podKey)!.metadata!.uid;
    const s = await ensureServerForSync(src.client(), dst.client(), target(), opts);
    expect(s.actions.join()).toMatch(/renewed the transfer certificates/);
    const client = secretValues(src.objects.get(`Secret/shop/${credentialsSecretName(MID)}`) as V1Secret);
    const server = secretValues(dst.objects.get(`Secret/shop2/${serverTLSSecretName(MID)}`) as V1Secret);
    expect(server['ca.crt']).toBe(client['ca.crt']);
    expect(client.password).toBe(password);
    expect(s.credentials.password).toBe(password);
    const days = (Date.parse(new X509Certificate(client['tls.crt']!).validTo) - Date.now()) / 86400_000;
    expect(days).toBeGreaterThan(25);
    expect(new X509Certificate(server['tls.crt']!).checkIP(address.host)).toBe(address.host);
    expect(dst.objects.get(podKey)!.metadata!.uid).not.toBe(oldPod);
  }, 60_000);

  it('two concurrent syncs renew once and use the same credentials', async () => {
    const { src, dst } = await prepared(2);
    const [a, b] = await Promise.all([ensureServerForSync(src.client(), dst.client(), target('data'), opts), ensureServerForSync(src.client(), dst.client(), target('logs'), opts)]);
    expect(a.credentials.certificates.ca.certPem).toBe(b.credentials.certificates.ca.certPem);
    expect([a, b].filter((x) => x.actions.some((y) => /renewed/.test(y)))).toHaveLength(1);
    const client = secretValues(src.objects.get(`Secret/shop/${credentialsSecretName(MID)}`) as V1Secret);
    expect(client['ca.crt']).toBe(a.credentials.certificates.ca.certPem);
  }, 60_000);
});

describe('ensureServerForSync: a renewal that died half-way is not a dead end (review B6)', () => {
  const srcSecretKey = `Secret/shop/${credentialsSecretName(MID)}`;
  const tlsKey = `Secret/shop2/${serverTLSSecretName(MID)}`;
  /** The server's rsync Secret (the daemon's secrets file holds the transfer password). */
  const rsyncSecret = (dst: FakeCluster) => [...dst.objects.values()].find((o) => o.kind === 'Secret' && 'rsyncd.secrets' in (secretValues(o as V1Secret) ?? {}))!;
  const expectRenewedFromServer = async (src: FakeCluster, dst: FakeCluster, password: string, s: Awaited<ReturnType<typeof ensureServerForSync>>) => {
    expect(s.actions.join()).toMatch(/renewed the transfer certificates/);
    const client = secretValues(src.objects.get(srcSecretKey) as V1Secret);
    const server = secretValues(dst.objects.get(tlsKey) as V1Secret);
    expect(client.password).toBe(password);
    expect(s.credentials.password).toBe(password);
    expect(server['ca.crt']).toBe(client['ca.crt']);
    expect(s.credentials.certificates.ca.certPem).toBe(client['ca.crt']);
    expect(new X509Certificate(server['tls.crt']!).checkIP(address.host)).toBe(address.host);
  };

  it('source Secret deleted, crash before the new one: past the grace, renews both sides with the password the server holds', async () => {
    const { src, dst, podKey, password } = await prepared();
    const oldPod = dst.objects.get(podKey)!.metadata!.uid;
    const rsync = rsyncSecret(dst).metadata!.uid;
    src.objects.delete(srcSecretKey);
    // The grace (a renewing sync may be about to write the new Secret) passes after half a second.
    const realNow = Date.now.bind(Date);
    let skew = 0;
    const clock = jest.spyOn(Date, 'now').mockImplementation(() => realNow() + skew);
    const pass = setTimeout(() => (skew = (MISSING_GRACE_SECONDS + 1) * 1000), 500);
    let s;
    try {
      s = await ensureServerForSync(src.client(), dst.client(), target(), opts);
    } finally {
      clearTimeout(pass);
      clock.mockRestore();
    }
    await expectRenewedFromServer(src, dst, password, s);
    expect(rsyncSecret(dst).metadata!.uid).toBe(rsync);
    expect(dst.objects.get(podKey)!.metadata!.uid).not.toBe(oldPod);
  }, 60_000);

  it('both TLS sides gone (the renewal was for a missing server TLS Secret): renews at once from the server password', async () => {
    const { src, dst, password } = await prepared();
    src.objects.delete(srcSecretKey);
    dst.objects.delete(tlsKey);
    const started = Date.now();
    const s = await ensureServerForSync(src.client(), dst.client(), target(), opts);
    await expectRenewedFromServer(src, dst, password, s);
    expect(Date.now() - started).toBeLessThan(MISSING_GRACE_SECONDS * 1000);
  }, 60_000);

  it('a source Secret without password is renewed from the server password', async () => {
    const { src, dst, password } = await prepared();
    const old = src.objects.get(srcSecretKey) as V1Secret;
    delete old.data!.password;
    const s = await ensureServerForSync(src.client(), dst.client(), target(), opts);
    await expectRenewedFromServer(src, dst, password, s);
  }, 60_000);

  it('nobody holds the password any more: a config error that names the operator commands, nothing touched', async () => {
    const { src, dst } = await prepared();
    src.objects.delete(srcSecretKey);
    dst.objects.delete(tlsKey);
    dst.objects.delete(`Secret/shop2/${rsyncSecret(dst).metadata!.name}`);
    const before = JSON.stringify([...src.objects, ...dst.objects]);
    const err = (await ensureServerForSync(src.client(), dst.client(), target(), opts).catch((e: unknown) => e)) as FerryError;
    expect(err).toBeInstanceOf(FerryError);
    expect(err.category).toBe('config');
    expect(err.message).toMatch(/is missing in the source cluster and the transfer server's Secrets in namespace shop2 hold no transfer password/);
    expect(err.message).toContain('`ferry retry mig-srv --namespace shop --pvc data`');
    expect(err.message).toContain('`ferry cancel mig-srv`');
    expect(err.message).not.toMatch(/createServer|createEndpoint/);
    expect(JSON.stringify([...src.objects, ...dst.objects])).toBe(before);
  });

  it('serverPassword reads the rsync secrets file the server was made with', async () => {
    const { dst, password } = await prepared();
    expect(await serverPassword(dst.client(), nt())).toBe(password);
    expect(secretValues(rsyncSecret(dst) as V1Secret)['rsyncd.secrets']).toBe(`ferry:${password}\n`);
    expect(await serverPassword(new FakeCluster().client(), nt())).toBeUndefined();
  });

  it('serverPassword follows the transfer engine: rclone keeps it under `password`', async () => {
    const rclonePlan = parsePlan({ source: {}, destination: {}, namespaces: ['shop:shop2'], endpoint: { type: 'NodePort' }, transfer: 'rclone' });
    const rclone = namespaceTransferFor(rclonePlan, MID, { source: 'shop', destination: 'shop2' }, [pvc('data')], 'NodePort');
    const dst = new FakeCluster();
    const { createTransferCredentials } = await import('../../src/statetransfer/namespace-transfer');
    const credentials = createTransferCredentials(MID, rclone.endpoint, address, 1);
    for (const o of rclone.destinationObjects(credentials)) if (o.kind === 'Secret') dst.put(o);
    expect(await serverPassword(dst.client(), rclone)).toBe(credentials.password);
  }, 60_000);
});

describe('explainSyncFailure: the error says what happened to the server', () => {
  const broken = () => new FerryError('transient', 'The rsync data stream broke, usually because the connection or the other side died mid-transfer; retrying resumes from partial files.', { details: { exitCode: 12 } });

  it('server pod deleted mid-sync: says so and recreates it', async () => {
    const { src, dst, podKey } = await prepared();
    const s = await ensureServerForSync(src.client(), dst.client(), target(), opts);
    dst.objects.delete(podKey);
    const err = (await explainSyncFailure(broken(), dst.client(), s, opts)) as FerryError;
    expect(err).toBeInstanceOf(FerryError);
    expect(err.category).toBe('transient');
    expect(err.details).toEqual({ exitCode: 12 });
    expect(err.message).toMatch(/retrying resumes from partial files\. Server: the transfer server pod shop2\/\S+ was deleted during the sync .*; Ferry recreated it, Ready again at \S+: the next attempt resumes/);
    expect(dst.objects.has(podKey)).toBe(true);
  });

  it('server unchanged: the connection broke elsewhere', async () => {
    const { src, dst } = await prepared();
    const s = await ensureServerForSync(src.client(), dst.client(), target(), opts);
    const err = (await explainSyncFailure(broken(), dst.client(), s, opts)) as FerryError;
    expect(err.message).toMatch(/ran throughout the sync \(same pod, no restart, Ready\): the connection broke between the clusters/);
  });

  it('leaves other failures as they are', async () => {
    const { src, dst } = await prepared();
    const s = await ensureServerForSync(src.client(), dst.client(), target(), opts);
    const partial = new FerryError('partial', 'some files failed', { details: { exitCode: 23 } });
    expect(await explainSyncFailure(partial, dst.client(), s, opts)).toBe(partial);
  });
});

describe('new transfer credentials', () => {
  it("take their keys from the worker's pool, made ahead of need (not on the first byte's path)", async () => {
    const take = jest.spyOn(TRANSFER_KEY_POOL, 'take');
    try {
      const { created } = await ensureCredentials(new FakeCluster().client(), new FakeCluster().client(), nt(), address);
      expect(created).toBe(true);
      // before: generateKeyPairs(3) in the activity, after the endpoint and before the server pod
      expect(take).toHaveBeenCalledWith(3);
    } finally {
      take.mockRestore();
      TRANSFER_KEY_POOL.stop();
    }
  });
});
