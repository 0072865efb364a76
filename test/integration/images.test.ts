/**
 * Direct Image Migration (src/images) against REAL registries: two docker-registry 2.8 instances
 * (Debian package `docker-registry`) with TLS from a private CA and htpasswd authentication, and the
 * real skopeo. Images are built by hand as OCI layouts (a single-platform image and a two-platform
 * index) and pushed with skopeo.
 *
 * Skipped with a message when docker-registry, skopeo, htpasswd or openssl is missing, unless
 * FERRY_REQUIRE_LAB=1 (then it fails).
 */
import { execFileSync, spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { classifySkopeoError, copyNamespaceImages, planImageStreamCopies, registryArgs, registryLocation, repositoriesOf, type ImageStreamObject } from '../../src/images';
import { KubeClient } from '../../src/k8s/client';
import { FerryError } from '../../src/core/errors';
import { k8s } from '../../src/k8s/k8s';
import { parsePlan } from '../../src/plan/load';

const TOOLS = ['docker-registry', 'skopeo', 'htpasswd', 'openssl'];
const missing = TOOLS.filter((t) => spawnSync('which', [t]).status !== 0);
if (missing.length && process.env.FERRY_REQUIRE_LAB === '1') throw new Error(`FERRY_REQUIRE_LAB=1 but ${missing.join(', ')} missing (apt-get install docker-registry skopeo apache2-utils openssl)`);
if (missing.length) console.warn(`SKIPPED registry image tests: ${missing.join(', ')} not installed (apt-get install docker-registry skopeo apache2-utils openssl)`);
const registryDescribe = missing.length ? describe.skip : describe;

describe('image planning (pure)', () => {
  const is = (name: string, tags: [string, string | undefined][]): ImageStreamObject => ({
    apiVersion: 'image.openshift.io/v1',
    kind: 'ImageStream',
    metadata: { name, namespace: 'shop' },
    status: {
      dockerImageRepository: `image-registry.openshift-image-registry.svc:5000/shop/${name}`,
      tags: tags.map(([tag, ref]) => ({ tag, items: ref ? [{ dockerImageReference: ref, image: 'sha256:x' }] : [] })),
    },
  });
  it('copies tags of the internal registry by digest, skips external and empty tags', () => {
    const streams = [
      is('web', [
        ['1.0', 'image-registry.openshift-image-registry.svc:5000/shop/web@sha256:aaa'],
        ['latest', 'image-registry.openshift-image-registry.svc:5000/shop/web@sha256:bbb'],
        ['upstream', 'docker.io/library/nginx@sha256:ccc'],
        ['pending', undefined],
      ]),
      is('api', [['2', 'image-registry.openshift-image-registry.svc:5000/shop/api@sha256:ddd']]),
    ];
    const { items, skipped } = planImageStreamCopies(streams, { source: 'shop', destination: 'shop-new' }, 'registry.src.example:443', 'registry.dst.example:5000/mirror');
    expect(items).toEqual([
      { source: 'registry.src.example:443/shop/web@sha256:aaa', destination: 'registry.dst.example:5000/mirror/shop-new/web:1.0' },
      { source: 'registry.src.example:443/shop/web@sha256:bbb', destination: 'registry.dst.example:5000/mirror/shop-new/web:latest' },
      { source: 'registry.src.example:443/shop/api@sha256:ddd', destination: 'registry.dst.example:5000/mirror/shop-new/api:2' },
    ]);
    expect(skipped.map((s) => s.reason)).toEqual([expect.stringMatching(/outside the internal registry/), 'the tag has no image yet']);
    expect(planImageStreamCopies(streams, { source: 'shop', destination: 'x' }, 's', 'd', ['shop/api']).items).toHaveLength(1);
    expect(planImageStreamCopies(streams, { source: 'shop', destination: 'x' }, 's', 'd', ['web']).items).toHaveLength(2);
  });
  it('registry locations, options and repositories', () => {
    expect(registryLocation({ url: 'https://reg.example.com:5000/path/', insecureSkipTLSVerify: false })).toEqual({ base: 'reg.example.com:5000/path', tlsVerify: true });
    expect(registryArgs({ authFile: '/a.json', insecureSkipTLSVerify: false }, 'src', '/certs')).toEqual(['--src-authfile=/a.json', '--src-cert-dir=/certs']);
    expect(registryArgs({ insecureSkipTLSVerify: true }, 'dest', '/certs')).toEqual(['--dest-tls-verify=false']);
    expect(registryArgs({ authFile: '/a.json', insecureSkipTLSVerify: false }, 'single')).toEqual(['--authfile=/a.json']);
    expect(repositoriesOf('shop', ['shop/web', 'shop/tools/cli', 'other/x', 'shop'])).toEqual([['shop/web', 'web'], ['shop/tools/cli', 'tools/cli']]);
    expect(classifySkopeoError('reading manifest 1.0 in 127.0.0.1/shop/x: manifest unknown').category).toBe('missing');
    expect(classifySkopeoError('unauthorized: authentication required').category).toBe('auth');
    expect(classifySkopeoError('x509: certificate signed by unknown authority').category).toBe('config');
  });
});

async function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const s = createServer();
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address() as { port: number };
      s.close(() => resolve(port));
    });
  });
}

const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

/** Writes an OCI image layout with a single-platform image "1.0" and a two-platform index "multi". */
function buildOCILayout(dir: string): void {
  const blobs = join(dir, 'blobs/sha256');
  mkdirSync(blobs, { recursive: true });
  const blob = (b: Buffer) => {
    const d = sha(b);
    writeFileSync(join(blobs, d), b);
    return { digest: `sha256:${d}`, size: b.length };
  };
  const image = (arch: string, content: string) => {
    const src = mkdtempSync(join(tmpdir(), 'ferry-layer-'));
    writeFileSync(join(src, 'hello.txt'), content);
    const tar = execFileSync('tar', ['--sort=name', '--mtime=@0', '--owner=0', '--group=0', '-cf', '-', '-C', src, 'hello.txt']);
    rmSync(src, { recursive: true, force: true });
    const gz = execFileSync('gzip', ['-n', '-c'], { input: tar });
    const layer = blob(gz);
    const config = blob(Buffer.from(JSON.stringify({ architecture: arch, os: 'linux', config: {}, rootfs: { type: 'layers', diff_ids: [`sha256:${sha(tar)}`] } })));
    const manifest = Buffer.from(JSON.stringify({
      schemaVersion: 2,
      mediaType: 'application/vnd.oci.image.manifest.v1+json',
      config: { mediaType: 'application/vnd.oci.image.config.v1+json', ...config },
      layers: [{ mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip', ...layer }],
    }));
    return { mediaType: 'application/vnd.oci.image.manifest.v1+json', ...blob(manifest), platform: { architecture: arch, os: 'linux' } };
  };
  const single = image('amd64', 'single');
  const multi = blob(Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: 'application/vnd.oci.image.index.v1+json', manifests: [image('amd64', 'a'), image('arm64', 'b')] })));
  writeFileSync(join(dir, 'oci-layout'), JSON.stringify({ imageLayoutVersion: '1.0.0' }));
  writeFileSync(join(dir, 'index.json'), JSON.stringify({
    schemaVersion: 2,
    manifests: [
      { mediaType: single.mediaType, digest: single.digest, size: single.size, annotations: { 'org.opencontainers.image.ref.name': '1.0' } },
      { mediaType: 'application/vnd.oci.image.index.v1+json', ...multi, annotations: { 'org.opencontainers.image.ref.name': 'multi' } },
    ],
  }));
}

registryDescribe('copyNamespaceImages against two TLS + htpasswd registries', () => {
  let work: string;
  const registries: ChildProcess[] = [];
  let srcHost: string;
  let dstHost: string;
  let authFile: string;
  let badAuthFile: string;
  let caFile: string;
  let client: KubeClient;

  beforeAll(async () => {
    work = mkdtempSync(join(tmpdir(), 'ferry-images-'));
    // A private CA and a server certificate for 127.0.0.1.
    const o = (args: string[]) => execFileSync('openssl', args, { cwd: work, stdio: 'pipe' });
    o(['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', 'ca.key', '-out', 'ca.crt', '-days', '2', '-subj', '/CN=ferry-test-ca']);
    o(['req', '-newkey', 'rsa:2048', '-nodes', '-keyout', 'reg.key', '-out', 'reg.csr', '-subj', '/CN=127.0.0.1']);
    writeFileSync(join(work, 'ext'), 'subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\n');
    o(['x509', '-req', '-in', 'reg.csr', '-CA', 'ca.crt', '-CAkey', 'ca.key', '-CAcreateserial', '-out', 'reg.crt', '-days', '2', '-extfile', 'ext']);
    caFile = join(work, 'ca.crt');
    writeFileSync(join(work, 'htpasswd'), execFileSync('htpasswd', ['-Bbn', 'ferry', 's3cret']));
    const hosts: string[] = [];
    for (const name of ['src', 'dst']) {
      const port = await freePort();
      const conf = join(work, `${name}.yml`);
      writeFileSync(conf, [
        'version: 0.1',
        'log: { level: error }',
        `storage: { filesystem: { rootdirectory: ${join(work, `${name}-data`)} }, delete: { enabled: true } }`,
        `http: { addr: "127.0.0.1:${port}", tls: { certificate: ${join(work, 'reg.crt')}, key: ${join(work, 'reg.key')} } }`,
        `auth: { htpasswd: { realm: ferry, path: ${join(work, 'htpasswd')} } }`,
        '',
      ].join('\n'));
      registries.push(spawn('docker-registry', ['serve', conf], { stdio: 'ignore' }));
      hosts.push(`127.0.0.1:${port}`);
    }
    [srcHost, dstHost] = hosts as [string, string];
    const auth = (pass: string) => JSON.stringify({ auths: Object.fromEntries(hosts.map((h) => [h, { auth: Buffer.from(`ferry:${pass}`).toString('base64') }])) });
    authFile = join(work, 'auth.json');
    badAuthFile = join(work, 'bad-auth.json');
    writeFileSync(authFile, auth('s3cret'));
    writeFileSync(badAuthFile, auth('wrong'));
    const certDir = join(work, 'certs');
    mkdirSync(certDir);
    writeFileSync(join(certDir, 'ca.crt'), execFileSync('cat', [caFile]));
    // Ready when an authenticated TLS request gets the registry's own 404 for an unknown repository.
    for (const h of hosts) {
      for (let i = 0; i < 100; i++) {
        if (/404/.test(spawnSync('skopeo', ['list-tags', `--authfile=${authFile}`, `--cert-dir=${certDir}`, `docker://${h}/none/none`], { encoding: 'utf8' }).stderr)) break;
        await new Promise((r) => setTimeout(r, 100));
      }
    }
    // Seed the source registry.
    const layout = join(work, 'oci');
    buildOCILayout(layout);
    for (const tag of ['1.0', 'multi']) {
      execFileSync('skopeo', ['copy', '--all', '--preserve-digests', `--dest-authfile=${authFile}`, `--dest-cert-dir=${certDir}`, `oci:${layout}:${tag}`, `docker://${srcHost}/shop/web:${tag}`], { stdio: 'pipe' });
    }
    // registry mode never asks the cluster; a client that points nowhere proves it.
    const kc = new k8s.KubeConfig();
    kc.loadFromOptions({ clusters: [{ name: 'c', server: 'https://127.0.0.1:1' }], users: [{ name: 'u' }], contexts: [{ name: 'x', cluster: 'c', user: 'u' }], currentContext: 'x' });
    client = new KubeClient(kc);
  });

  afterAll(() => {
    for (const r of registries) r.kill();
    if (work) rmSync(work, { recursive: true, force: true });
  });

  const plan = (dst: Record<string, unknown> = {}) =>
    parsePlan({
      source: { context: 'a' },
      destination: { context: 'b' },
      namespaces: ['shop:shop-new'],
      images: {
        enabled: true,
        mode: 'registry',
        sourceRegistry: { url: `https://${srcHost}`, authFile, caFile },
        destinationRegistry: { url: `https://${dstHost}`, authFile, caFile, ...dst },
        repositories: ['shop/web', 'shop/gone', 'other/skipped'],
      },
    });
  const digestOf = (ref: string) => `sha256:${sha(execFileSync('skopeo', ['inspect', '--raw', `--authfile=${authFile}`, `--cert-dir=${join(work, 'certs')}`, `docker://${ref}`]))}`;

  it('copies every tag of the namespace\'s repositories with identical digests (all platforms), skipping what does not exist', async () => {
    const progress: number[] = [];
    const report = await copyNamespaceImages(client, plan(), plan().namespaces[0]!, { onProgress: (done) => progress.push(done) });
    expect(report.copied.map((c) => c.destination).sort()).toEqual([`${dstHost}/shop-new/web:1.0`, `${dstHost}/shop-new/web:multi`]);
    for (const c of report.copied) {
      expect(c.digest).toBe(digestOf(c.source));
      expect(digestOf(c.destination)).toBe(c.digest);
    }
    expect(report.skipped).toEqual([{ source: `${srcHost}/shop/gone`, reason: 'the repository does not exist in the source registry' }]);
    // Both platforms of the index arrived.
    const index = JSON.parse(execFileSync('skopeo', ['inspect', '--raw', `--authfile=${authFile}`, `--cert-dir=${join(work, 'certs')}`, `docker://${dstHost}/shop-new/web:multi`]).toString()) as { manifests: { platform: { architecture: string } }[] };
    expect(index.manifests.map((m) => m.platform.architecture).sort()).toEqual(['amd64', 'arm64']);
    expect(progress).toEqual([0, 1, 2]);

    // A retry finds them present with the same digest.
    const again = await copyNamespaceImages(client, plan(), plan().namespaces[0]!);
    expect(again.copied.map((c) => c.digest).sort()).toEqual(report.copied.map((c) => c.digest).sort());
  });

  it('wrong credentials: an auth failure (non-retryable upstream), without the credentials in the message', async () => {
    const err = await copyNamespaceImages(client, plan({ authFile: badAuthFile }), plan().namespaces[0]!).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(FerryError);
    expect((err as FerryError).category).toBe('auth');
    expect((err as FerryError).message).toMatch(/refused the credentials/);
    expect((err as FerryError).message).not.toMatch(/s3cret|wrong|ZmVycnk6/);
  });

  it('TLS is verified: without the CA the copy fails as a configuration problem', async () => {
    const p = plan();
    const noCA = { ...p, images: { ...p.images, destinationRegistry: { ...p.images.destinationRegistry!, caFile: undefined } } };
    const err = await copyNamespaceImages(client, noCA, p.namespaces[0]!).catch((e: unknown) => e);
    expect((err as FerryError).category).toBe('config');
    expect((err as FerryError).message).toMatch(/TLS verification failed: set caFile/);
  });

  const labKubeconfig = process.env.FERRY_LAB_KUBECONFIG ?? '/var/lib/ferry-lab/kubeconfig';
  (existsSync(labKubeconfig) ? it : it.skip)('imagestreams mode on a real cluster (the lab): without the ImageStream API it reports it instead of failing', async () => {
    const lab = KubeClient.fromOptions({ kubeconfig: labKubeconfig, context: 'ferry-src' });
    if (!(await lab.version().then(() => true, () => false))) return; // lab down: covered by the lab suite's skip message
    const p = plan();
    const isPlan = { ...p, images: { ...p.images, mode: 'imagestreams' as const } };
    const report = await copyNamespaceImages(lab, isPlan, { ...p.namespaces[0]!, source: `ferry-images-${Date.now()}` });
    if (await lab.hasApi('image.openshift.io/v1', 'ImageStream')) expect(report).toEqual({ copied: [], skipped: [] }); // the lab's OpenShift CRDs are on; no stream there
    else expect(report).toEqual({ copied: [], skipped: [{ source: expect.stringMatching(/^namespace ferry-images-/), reason: expect.stringMatching(/no ImageStream API/) }] });
  });
});

