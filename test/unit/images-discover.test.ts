/**
 * Image discovery of registry mode (src/images/discover.ts): references parsed by the Docker
 * reference grammar, read from every pod-template kind, kept when they point at the source registry
 * (by its url host or an alias) inside the namespace, and the others skipped with the reason.
 */
import type { KubernetesObject } from '@kubernetes/client-node';
import { discoverRepositories, imageReferencesOf, parseImageReference, registryHost } from '../../src/images/discover';

const pod = (containers: string[], init: string[] = []) => ({ spec: { containers: containers.map((image, i) => ({ name: `c${i}`, image })), initContainers: init.map((image, i) => ({ name: `i${i}`, image })) } });

describe('image discovery', () => {
  it('parses references like distribution/reference', () => {
    expect(parseImageReference('nginx')).toEqual({ host: 'docker.io', repository: 'nginx' });
    expect(parseImageReference('library/nginx:1.27')).toEqual({ host: 'docker.io', repository: 'library/nginx', tag: '1.27' });
    expect(parseImageReference('10.250.0.21:5000/shop/web:v2')).toEqual({ host: '10.250.0.21:5000', repository: 'shop/web', tag: 'v2' });
    expect(parseImageReference('localhost/shop/web@sha256:abc')).toEqual({ host: 'localhost', repository: 'shop/web', digest: 'sha256:abc' });
    expect(parseImageReference('reg.example.com:5000/shop/sub/web:1@sha256:def')).toEqual({ host: 'reg.example.com:5000', repository: 'shop/sub/web', tag: '1', digest: 'sha256:def' });
    expect(parseImageReference('  ')).toBeUndefined();
    expect(registryHost('https://reg.example.com:5000/path')).toBe('reg.example.com:5000');
  });

  it('reads the pod templates of every workload kind, bare pods, CronJobs, and names the controller of a pod', () => {
    const objects: KubernetesObject[] = [
      { kind: 'Deployment', metadata: { name: 'web' }, spec: { template: pod(['r:5000/shop/web:1'], ['r:5000/shop/init:1']) } } as KubernetesObject,
      { kind: 'CronJob', metadata: { name: 'nightly' }, spec: { jobTemplate: { spec: { template: pod(['r:5000/shop/batch:7']) } } } } as KubernetesObject,
      { kind: 'Pod', metadata: { name: 'web-abc', ownerReferences: [{ apiVersion: 'apps/v1', kind: 'ReplicaSet', name: 'web-5d4', uid: 'u1', controller: true }] }, ...pod(['r:5000/shop/web:1', 'docker.io/library/redis:7']) } as KubernetesObject,
      { kind: 'Pod', metadata: { name: 'debug' }, ...pod(['r:5000/other/tool:1']) } as KubernetesObject,
      { kind: 'ConfigMap', metadata: { name: 'x' } } as KubernetesObject,
    ];
    expect(imageReferencesOf(objects)).toEqual([
      { image: 'r:5000/shop/init:1', usedBy: 'Deployment web' },
      { image: 'r:5000/shop/web:1', usedBy: 'Deployment web' },
      { image: 'r:5000/shop/batch:7', usedBy: 'CronJob nightly' },
      { image: 'docker.io/library/redis:7', usedBy: 'ReplicaSet web-5d4' },
      { image: 'r:5000/other/tool:1', usedBy: 'Pod debug' },
    ]);
  });

  it('keeps the namespace repositories of the source registry (url host or alias) and says why it skips the rest', () => {
    const refs = [
      { image: 'r:5000/shop/web:1', usedBy: 'Deployment web' },
      { image: 'image-registry.svc:5000/shop/batch@sha256:1', usedBy: 'CronJob nightly' },
      { image: 'docker.io/library/redis:7', usedBy: 'StatefulSet cache' },
      { image: 'r:5000/other/tool:1', usedBy: 'Pod debug' },
      { image: 'r:5000/shop/web:2', usedBy: 'Deployment web2' },
    ];
    const r = discoverRepositories(refs, 'shop', ['r:5000', 'image-registry.svc:5000']);
    expect(r.repositories).toEqual(['shop/batch', 'shop/web']);
    expect(r.skipped).toEqual([
      { source: 'docker.io/library/redis:7', reason: expect.stringMatching(/^external image \(registry docker.io, used by StatefulSet cache\)/) },
      { source: 'r:5000/other/tool:1', reason: expect.stringMatching(/outside namespace shop's repositories \(used by Pod debug\)/) },
    ]);
    // without the alias the in-cluster name is external
    expect(discoverRepositories(refs, 'shop', ['r:5000']).repositories).toEqual(['shop/web']);
  });
});
