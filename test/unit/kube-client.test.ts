/**
 * The parts of src/k8s/client.ts that need no API server: kubeconfig loading (real files), the
 * transient classifier, API error messages and waitFor. createOrAdopt & co. run against a real
 * kube-apiserver in test/integration/activities-lab.test.ts.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer as createHttpServer } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import { createMigrationCertificates } from '../../src/statetransfer/tls/certificates';
import { createServer as createTcpServer, type AddressInfo, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ApiRequestTimeoutError, apiErrorMessage, isTransient, KubeClient, KubeConfigError, loadKubeConfig, selectorString, statusCode, waitFor } from '../../src/k8s/client';
import { AbortedError, FerryError, WaitTimeoutError } from '../../src/core/errors';
import { k8s } from '../../src/k8s/k8s';

const KUBECONFIG = `apiVersion: v1
kind: Config
clusters:
- name: a
  cluster: { server: https://127.0.0.1:1 }
- name: b
  cluster: { server: https://127.0.0.1:2 }
users:
- name: u
  user: { token: abc }
contexts:
- name: ctx-a
  context: { cluster: a, user: u }
- name: ctx-b
  context: { cluster: b, user: u }
- name: ctx-broken
  context: { cluster: nowhere, user: u }
current-context: ctx-a
`;

describe('loadKubeConfig', () => {
  let dir: string;
  let file: string;
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'ferry-kc-'));
    file = join(dir, 'config');
    writeFileSync(file, KUBECONFIG);
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('selects the requested context, else the current one', () => {
    expect(loadKubeConfig({ kubeconfig: file, context: 'ctx-b' }).getCurrentCluster()?.server).toBe('https://127.0.0.1:2');
    expect(loadKubeConfig({ kubeconfig: file }).getCurrentContext()).toBe('ctx-a');
    expect(new KubeClient(loadKubeConfig({ kubeconfig: file, context: 'ctx-b' })).contextName).toBe('ctx-b');
  });

  it('lists the available contexts when the context is missing', () => {
    expect(() => loadKubeConfig({ kubeconfig: file, context: 'ferry-dst' })).toThrow(KubeConfigError);
    expect(() => loadKubeConfig({ kubeconfig: file, context: 'ferry-dst' })).toThrow(/context "ferry-dst" not found .*available contexts: ctx-a, ctx-b, ctx-broken/);
  });

  it('says which file is missing and where the path came from', () => {
    expect(() => loadKubeConfig({ kubeconfig: join(dir, 'nope') })).toThrow(/kubeconfig .*nope \(from the plan\) does not exist/);
    expect(() => loadKubeConfig({}, { KUBECONFIG: join(dir, 'nope') })).toThrow(/from \$KUBECONFIG/);
  });

  it('reports a context without cluster and a file without current-context', () => {
    expect(() => loadKubeConfig({ kubeconfig: file, context: 'ctx-broken' })).toThrow(/names a cluster that is not defined/);
    const noCurrent = join(dir, 'no-current');
    writeFileSync(noCurrent, KUBECONFIG.replace('current-context: ctx-a', ''));
    expect(() => loadKubeConfig({ kubeconfig: noCurrent })).toThrow(/has no current-context: set context in the plan; available contexts/);
  });

  it('merges $KUBECONFIG entries like kubectl', () => {
    const second = join(dir, 'second');
    writeFileSync(second, KUBECONFIG.replace(/ctx-/g, 'other-').replace(/name: a\b/g, 'name: a2').replace(/cluster: a,/g, 'cluster: a2,'));
    const kc = loadKubeConfig({ context: 'other-b' }, { KUBECONFIG: `${file}:${second}` });
    expect(kc.getContexts().map((c) => c.name)).toEqual(expect.arrayContaining(['ctx-a', 'other-b']));
  });

  it('is a preflight-category FerryError', () => {
    try {
      loadKubeConfig({ kubeconfig: file, context: 'x' });
    } catch (err) {
      expect(err).toBeInstanceOf(FerryError);
      expect((err as FerryError).category).toBe('preflight');
    }
  });
});

describe('isTransient', () => {
  const api = (code: number, body = '') => new k8s.ApiException(code, 'Unsuccessful HTTP Request', body, {});
  it.each([429, 500, 502, 503, 504, 408])('HTTP %d is transient', (code) => expect(isTransient(api(code))).toBe(true));
  it.each([400, 401, 403, 404, 405, 409, 410, 422])('HTTP %d is not', (code) => expect(isTransient(api(code))).toBe(false));

  it('network errors are transient, also wrapped (node-fetch FetchError shape, cause chains)', () => {
    const refused = Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:6443'), { code: 'ECONNREFUSED' });
    expect(isTransient(refused)).toBe(true);
    expect(isTransient(Object.assign(new Error('x'), { code: 'ETIMEDOUT' }))).toBe(true);
    expect(isTransient(Object.assign(new Error('request to https://x failed, reason: connect ECONNREFUSED 10.0.0.1:443'), { type: 'system', errno: 'ECONNREFUSED' }))).toBe(true);
    expect(isTransient(new Error('socket hang up'))).toBe(true);
    expect(isTransient(new Error('outer', { cause: Object.assign(new Error('inner'), { code: 'ECONNRESET' }) }))).toBe(true);
    expect(isTransient(Object.assign(new Error('The operation was aborted'), { name: 'AbortError' }))).toBe(true);
  });

  it('other errors and FerryErrors follow their category', () => {
    expect(isTransient(new TypeError('x is undefined'))).toBe(false);
    expect(isTransient('boom')).toBe(false);
    expect(isTransient(undefined)).toBe(false);
    expect(isTransient(new FerryError('transient', 'x'))).toBe(true);
    expect(isTransient(new FerryError('config', 'x'))).toBe(false);
    expect(isTransient(new WaitTimeoutError('x'))).toBe(true);
  });

  it('against a real closed port, the client error is transient', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'ferry-kc-'));
    try {
      const file = join(dir, 'config');
      // Port 1 on loopback: nothing listens, the connection is refused.
      writeFileSync(file, KUBECONFIG);
      const client = KubeClient.fromOptions({ kubeconfig: file });
      const err = await client.version().catch((e: unknown) => e);
      expect(isTransient(err)).toBe(true);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('apiErrorMessage / statusCode', () => {
  it('extracts the Status message of the API server', () => {
    const body = JSON.stringify({ kind: 'Status', apiVersion: 'v1', status: 'Failure', message: 'pods "x" is forbidden: User "bob" cannot create resource "pods"', reason: 'Forbidden', code: 403 });
    const err = new k8s.ApiException(403, 'Unsuccessful HTTP Request', body, {});
    expect(statusCode(err)).toBe(403);
    expect(apiErrorMessage(err)).toBe('pods "x" is forbidden: User "bob" cannot create resource "pods" (HTTP 403)');
    expect(apiErrorMessage(new k8s.ApiException(502, 'x', 'bad gateway', {}))).toBe('HTTP 502: bad gateway');
    expect(apiErrorMessage(new Error('plain'))).toBe('plain');
    expect(statusCode(new Error('plain'))).toBeUndefined();
  });
  it('selectorString', () => {
    expect(selectorString({ a: 'b', 'ferry.dev/role': 'server' })).toBe('a=b,ferry.dev/role=server');
  });
});

describe('waitFor', () => {
  it('returns the first truthy value, treating transient errors as not yet', async () => {
    let n = 0;
    const ticks: number[] = [];
    const v = await waitFor(
      async () => {
        n++;
        if (n === 1) throw Object.assign(new Error('x'), { code: 'ECONNRESET' });
        return n >= 3 ? 'done' : undefined;
      },
      { intervalSeconds: 0.01, onTick: (s) => ticks.push(s) },
    );
    expect(v).toBe('done');
    expect(ticks).toHaveLength(2);
  });
  it('rethrows non-transient errors at once', async () => {
    await expect(waitFor(async () => { throw new FerryError('config', 'bad'); }, { intervalSeconds: 0.01 })).rejects.toThrow('bad');
  });
  it('times out with the description and explanation', async () => {
    await expect(waitFor(async () => false, { timeoutSeconds: 0.05, intervalSeconds: 0.01, description: 'the thing', explain: () => 'still pending' })).rejects.toThrow(
      /timed out after \d+ s waiting for the thing: still pending/,
    );
  });
  it("propagates Ferry's own classified errors at once, transient ones included (issue 8 item 10)", async () => {
    // ensureServer's predicate throws "disappeared"; the old waitFor took it for an API hiccup, polled
    // on until its timeout and ended in a WaitTimeoutError that ensureServer turned into FerryConfig.
    const disappeared = new FerryError('transient', 'server pod Pod shop/ferry-m1-server disappeared while starting');
    let calls = 0;
    const started = Date.now();
    const err = await waitFor(async () => {
      calls++;
      throw disappeared;
    }, { timeoutSeconds: 1, intervalSeconds: 0.01, description: 'the server pod to be Ready' }).catch((e: unknown) => e);
    expect(err).toBe(disappeared);
    expect(calls).toBe(1);
    expect(Date.now() - started).toBeLessThan(500);
    const unschedulable = new FerryError('transient', 'pod shop/c cannot be scheduled after 601 s: 0/3 nodes are available');
    await expect(waitFor(async () => { throw unschedulable; }, { timeoutSeconds: 1, intervalSeconds: 0.01 })).rejects.toBe(unschedulable);
  });
  it('its timeout names what it waited for, the last observed state and the last API error', async () => {
    let n = 0;
    const err = await waitFor(
      async () => {
        if (++n % 2 === 0) throw Object.assign(new Error('connect ECONNREFUSED 10.0.0.1:6443'), { code: 'ECONNREFUSED' });
        return false;
      },
      { timeoutSeconds: 0.05, intervalSeconds: 0.01, description: 'probe pod shop/p to finish', explain: () => 'last seen: phase Pending' },
    ).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(WaitTimeoutError);
    expect((err as Error).message).toMatch(/^timed out after \d+ s waiting for probe pod shop\/p to finish: last seen: phase Pending(; last check failed: .*ECONNREFUSED.*)?$/);
    const always = await waitFor(async () => { throw Object.assign(new Error('connect ECONNREFUSED 10.0.0.1:6443'), { code: 'ECONNREFUSED' }); }, {
      timeoutSeconds: 0.05, intervalSeconds: 0.01, description: 'x', explain: () => 'state y',
    }).catch((e: unknown) => e);
    expect((always as Error).message).toMatch(/waiting for x: state y; last check failed: connect ECONNREFUSED 10.0.0.1:6443$/);
  });
  it('stops when aborted', async () => {
    const ac = new AbortController();
    setTimeout(() => ac.abort(), 30);
    await expect(waitFor(async () => false, { intervalSeconds: 0.01, signal: ac.signal })).rejects.toBeInstanceOf(AbortedError);
  });
});

describe('KubeClient: every API request is bounded in time', () => {
  const sockets = new Set<Socket>();
  const servers: Server[] = [];
  /** A server on 127.0.0.1 (an ephemeral port) that keeps every connection; returns its port. */
  async function listen(server: Server): Promise<number> {
    server.on('connection', (s: Socket) => {
      sockets.add(s);
      s.on('close', () => sockets.delete(s));
    });
    servers.push(server);
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    return (server.address() as AddressInfo).port;
  }
  const client = (server: string, requestTimeoutSeconds: number) => {
    const kc = new k8s.KubeConfig();
    kc.loadFromOptions({
      clusters: [{ name: 'c', server, skipTLSVerify: true }],
      users: [{ name: 'u', token: 't' }],
      contexts: [{ name: 'hung', cluster: 'c', user: 'u' }],
      currentContext: 'hung',
    });
    return new KubeClient(kc, { requestTimeoutSeconds });
  };
  /** The call's outcome, or 'still hanging' after `ms` (the bound the test allows). */
  const within = <T>(p: Promise<T>, ms: number) =>
    Promise.race([p.then((v) => ({ value: v }), (e: unknown) => ({ error: e })), new Promise<'still hanging'>((r) => setTimeout(() => r('still hanging'), ms))]);
  afterAll(async () => {
    for (const s of sockets) s.destroy();
    await Promise.all(servers.map((s) => new Promise((r) => s.close(r))));
  });

  it('a connection that is accepted and never answered (TLS handshake hangs) fails within the bound, as a transient error', async () => {
    // reads (and drops) what the client sends, never writes a byte
    const port = await listen(createTcpServer((s) => s.resume()));
    const started = Date.now();
    const outcome = await within(client(`https://127.0.0.1:${port}`, 1).get({ apiVersion: 'v1', kind: 'Secret', namespace: 'shop', name: 's' }), 5000);
    expect(outcome).not.toBe('still hanging');
    const err = (outcome as { error?: unknown }).error;
    expect(err).toBeInstanceOf(ApiRequestTimeoutError);
    expect(isTransient(err)).toBe(true);
    // (KubernetesObjectApi first asks the API for the kind's resource: GET /api/v1)
    expect((err as Error).message).toMatch(/context hung did not answer GET https:\/\/127\.0\.0\.1:\d+\/api\/v1\S* within 1 s/);
    expect(Date.now() - started).toBeLessThan(3000);
    // the hung socket was closed, not left behind
    await new Promise((r) => setTimeout(r, 200));
    expect(sockets.size).toBe(0);
  });

  it('a response whose body never ends fails within the bound too', async () => {
    const port = await listen(createHttpServer((_req, res) => {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.write('{"major":');
    }));
    const outcome = await within(client(`http://127.0.0.1:${port}`, 1).version(), 5000);
    expect(outcome).not.toBe('still hanging');
    expect((outcome as { error?: unknown }).error).toBeInstanceOf(ApiRequestTimeoutError);
  });

  it('answers within the bound pass through unchanged (a result, a 404 as undefined)', async () => {
    const port = await listen(createHttpServer((req, res) => {
      if (req.url === '/version') {
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end(JSON.stringify({ major: '1', minor: '32', gitVersion: 'v1.32.0' }));
      } else {
        res.writeHead(404, { 'content-type': 'application/json' });
        res.end(JSON.stringify({ kind: 'Status', apiVersion: 'v1', status: 'Failure', message: 'secrets "s" not found', reason: 'NotFound', code: 404 }));
      }
    }));
    const c = client(`http://127.0.0.1:${port}`, 1);
    expect((await c.version()).gitVersion).toBe('v1.32.0');
    expect(await c.get({ apiVersion: 'v1', kind: 'Secret', namespace: 'shop', name: 's' })).toBeUndefined();
  });

  it.each([204, 200])('an empty pod log without Content-Type (%i; the API server answers 204 for a pod not yet scheduled) reads as an empty string', async (status) => {
    // Seen on the lab's API server: the log of a pod without a node is a 204 without Content-Type,
    // and client-node's ObjectSerializer.parse threw "Cannot parse content. No Content-Type defined."
    // (a full CI run failed on it: verify read a manifest pod's log before the pod was scheduled).
    const asked: string[] = [];
    const port = await listen(createHttpServer((req, res) => {
      asked.push(req.url ?? '');
      res.writeHead(status, status === 200 ? { 'content-length': '0' } : {});
      res.end();
    }));
    const c = client(`http://127.0.0.1:${port}`, 1);
    expect(await c.core.readNamespacedPodLog({ namespace: 'shop', name: 'p', container: 'c', tailLines: 5 })).toBe('');
    expect(asked).toEqual([expect.stringMatching(/^\/api\/v1\/namespaces\/shop\/pods\/p\/log\?/)]);
  });
});

describe('KubeClient: API connections are kept and shared', () => {
  // An API server of its own CA that asks for client certificates, as kube-apiserver does.
  const certs = createMigrationCertificates({ migrationId: 'pool', serverNames: ['127.0.0.1'] });
  let connections = 0;
  const server = createHttpsServer({ key: certs.server.keyPem, cert: certs.server.certPem, ca: certs.ca.certPem, requestCert: true, rejectUnauthorized: true }, (req, res) => {
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ major: '1', minor: '32', gitVersion: 'v1.32.5', peer: (req.socket as import('node:tls').TLSSocket).getPeerCertificate().subject?.CN ?? '' }));
  });
  server.on('secureConnection', () => connections++);
  let url = '';
  beforeAll(async () => {
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    url = `https://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  afterAll(async () => {
    server.closeAllConnections();
    await new Promise((r) => server.close(r));
  });
  const client = () => {
    const kc = new k8s.KubeConfig();
    const b64 = (s: string) => Buffer.from(s).toString('base64');
    kc.loadFromOptions({
      clusters: [{ name: 'c', server: url, caData: b64(certs.ca.certPem) }],
      users: [{ name: 'u', certData: b64(certs.client.certPem), keyData: b64(certs.client.keyPem) }],
      contexts: [{ name: 'pool', cluster: 'c', user: 'u' }],
      currentContext: 'pool',
    });
    return new KubeClient(kc);
  };

  it('sequential requests of several clients of one cluster and identity use one TLS connection (before: one per request)', async () => {
    connections = 0;
    const a = client();
    const b = client();
    for (let i = 0; i < 5; i++) expect((await a.version()).gitVersion).toBe('v1.32.5');
    for (let i = 0; i < 5; i++) expect((await b.version()).gitVersion).toBe('v1.32.5');
    expect(connections).toBe(1);
  });
});
