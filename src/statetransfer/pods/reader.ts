/**
 * The read-only volume reader pod: the transfer image running one script over a PVC mounted
 * read-only, with a scratch emptyDir at /tmp. Used by post-copy verification (manifest.ts) and by the
 * dry run's usage measurement (usage.ts). Pure.
 */
import type { V1Pod } from '@kubernetes/client-node';
import type { WorkloadIdentity } from '../../core/types';
import { nodeAffinity } from './pods';
import { containerSecurityContext, podSecurityContext } from './security';
import { BLOCK_DEVICE_FILE } from '../types';

/** Options of `buildVolumeReaderPod`. */
export interface VolumeReaderPodOptions {
  name: string;
  namespace: string;
  labels: Record<string, string>;
  pvcName: string;
  image: string;
  imagePullPolicy?: string;
  /** Name of the one container. */
  container: string;
  /** The bash script it runs (the PVC is at `mountPath`). */
  script: string;
  /** Where the PVC is mounted, read-only; a `block` PVC's device node is `<mountPath>/BLOCK_DEVICE_FILE`. */
  mountPath: string;
  /** The PVC is volumeMode Block (volumeDevices instead of a mount). */
  block?: boolean;
  /** Root (preserve-ownership mode: reads every file) or the workload's identity (restricted). */
  root: boolean;
  identity?: WorkloadIdentity;
  /** Pin to this node (a ReadWriteOnce volume in use is attached there: elsewhere the pod would wait
   * for a Multi-Attach that never comes). */
  nodeName?: string;
  /** The pod's own limit (activeDeadlineSeconds), seconds. */
  deadlineSeconds: number;
}

/**
 * The reader pod: restartPolicy Never, no service account token, restricted security context unless
 * `root` (then root with the preserve-ownership capabilities), the PVC read-only.
 */
export function buildVolumeReaderPod(o: VolumeReaderPodOptions): V1Pod {
  const mode = o.root ? 'preserve-ownership' : 'restricted';
  return {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name: o.name, namespace: o.namespace, labels: o.labels },
    spec: {
      restartPolicy: 'Never',
      automountServiceAccountToken: false,
      enableServiceLinks: false,
      terminationGracePeriodSeconds: 1,
      activeDeadlineSeconds: o.deadlineSeconds,
      securityContext: podSecurityContext(mode, o.identity),
      ...(o.nodeName ? { affinity: nodeAffinity(o.nodeName) } : {}),
      containers: [
        {
          name: o.container,
          image: o.image,
          ...(o.imagePullPolicy ? { imagePullPolicy: o.imagePullPolicy } : {}),
          command: ['/bin/bash', '-c', o.script],
          securityContext: containerSecurityContext(mode, true),
          volumeMounts: [...(o.block ? [] : [{ name: 'data', mountPath: o.mountPath, readOnly: true }]), { name: 'tmp', mountPath: '/tmp' }],
          ...(o.block ? { volumeDevices: [{ name: 'data', devicePath: `${o.mountPath}/${BLOCK_DEVICE_FILE}` }] } : {}),
        },
      ],
      volumes: [
        { name: 'data', persistentVolumeClaim: { claimName: o.pvcName, readOnly: true } },
        { name: 'tmp', emptyDir: {} },
      ],
    },
  };
}
