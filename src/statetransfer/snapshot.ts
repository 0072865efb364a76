/**
 * The objects of a point-in-time source for a stage sync (plan `sourceCopyMethod`): a CSI
 * VolumeSnapshot of the source PVC and a PVC restored from it (`snapshot`), or a PVC cloned from the
 * source PVC (`clone`, a CSI volume clone: dataSource = the PVC). The client then reads that claim,
 * which no pod uses yet: no Multi-Attach with the writer's RWO volume, and a copy that does not change
 * under rsync. Pure. Sources: Kubernetes docs "Volume Snapshots" (snapshot.storage.k8s.io/v1,
 * status.readyToUse, restoreSize) and "CSI Volume Cloning".
 */
import type { V1PersistentVolumeClaim } from '@kubernetes/client-node';
import { objectLabels, objectName } from './names';

/** API version of VolumeSnapshot / VolumeSnapshotClass / VolumeSnapshotContent. */
export const SNAPSHOT_API_VERSION = 'snapshot.storage.k8s.io/v1';
/** Object role of the VolumeSnapshot and of the claim a stage sync reads. */
export const SNAPSHOT_ROLE = 'snapshot';
export const SNAPSHOT_SOURCE_ROLE = 'snapshot-source';
/** Annotation: the sync (pass) a snapshot was taken for; another pass takes a fresh one. */
export const SNAPSHOT_PASS_ANNOTATION = 'ferry.dev/pass';
/** VolumeSnapshotClass annotation marking the default class of its driver. */
export const DEFAULT_SNAPSHOT_CLASS_ANNOTATION = 'snapshot.storage.kubernetes.io/is-default-class';

/** How a stage sync reads the source (plan `sourceCopyMethod`). */
export type SourceCopyMethod = 'direct' | 'snapshot' | 'clone';

/** A VolumeSnapshot (the fields Ferry writes and reads). */
export interface VolumeSnapshotObject {
  apiVersion: typeof SNAPSHOT_API_VERSION;
  kind: 'VolumeSnapshot';
  metadata: { name: string; namespace: string; labels: Record<string, string>; annotations?: Record<string, string> };
  spec: { source: { persistentVolumeClaimName: string }; volumeSnapshotClassName?: string };
  status?: { readyToUse?: boolean; restoreSize?: string; boundVolumeSnapshotContentName?: string; error?: { message?: string; time?: string } };
}

/** What the point-in-time objects of one PVC need. */
export interface PointInTimeOptions {
  migrationId: string;
  namespace: string;
  /** The source PVC. */
  pvc: string;
  /** Its StorageClass (the copy is made in the same class: same CSI driver). */
  storageClass?: string;
  /** Its requested size (quantity). */
  capacity: string;
  /** Its volumeMode: the copy must have the same (a Block snapshot restores only into a Block claim). */
  volumeMode?: 'Filesystem' | 'Block';
  pass: number;
  /** snapshot: the VolumeSnapshotClass (unset: the driver's default class). */
  volumeSnapshotClass?: string;
}

/** Name of the claim a point-in-time stage sync reads. */
export function pointInTimeClaimName(migrationId: string, pvc: string): string {
  return objectName(migrationId, SNAPSHOT_SOURCE_ROLE, pvc);
}

/** Name of the VolumeSnapshot of a PVC. */
export function snapshotName(migrationId: string, pvc: string): string {
  return objectName(migrationId, SNAPSHOT_ROLE, pvc);
}

/** The VolumeSnapshot of the source PVC. */
export function volumeSnapshot(o: PointInTimeOptions): VolumeSnapshotObject {
  return {
    apiVersion: SNAPSHOT_API_VERSION,
    kind: 'VolumeSnapshot',
    metadata: { name: snapshotName(o.migrationId, o.pvc), namespace: o.namespace, labels: objectLabels(o.migrationId, SNAPSHOT_ROLE, o.pvc), annotations: { [SNAPSHOT_PASS_ANNOTATION]: String(o.pass) } },
    spec: { source: { persistentVolumeClaimName: o.pvc }, ...(o.volumeSnapshotClass !== undefined ? { volumeSnapshotClassName: o.volumeSnapshotClass } : {}) },
  };
}

/**
 * The claim the stage sync reads: restored from the snapshot (`size`: its restoreSize when larger
 * than the source's request; `fromSnapshot`: another VolumeSnapshot than the PVC's own, e.g. its
 * member of a VolumeGroupSnapshot) or cloned from the source PVC. ReadWriteOnce, mounted read-only.
 */
export function pointInTimeClaim(o: PointInTimeOptions, method: Exclude<SourceCopyMethod, 'direct'>, size: string = o.capacity, fromSnapshot: string = snapshotName(o.migrationId, o.pvc)): V1PersistentVolumeClaim {
  return {
    apiVersion: 'v1',
    kind: 'PersistentVolumeClaim',
    metadata: { name: pointInTimeClaimName(o.migrationId, o.pvc), namespace: o.namespace, labels: objectLabels(o.migrationId, SNAPSHOT_SOURCE_ROLE, o.pvc), annotations: { [SNAPSHOT_PASS_ANNOTATION]: String(o.pass) } },
    spec: {
      accessModes: ['ReadWriteOnce'],
      ...(o.storageClass !== undefined ? { storageClassName: o.storageClass } : {}),
      resources: { requests: { storage: size } },
      ...(o.volumeMode === 'Block' ? { volumeMode: 'Block' } : {}),
      dataSource:
        method === 'snapshot'
          ? { apiGroup: 'snapshot.storage.k8s.io', kind: 'VolumeSnapshot', name: fromSnapshot }
          : { kind: 'PersistentVolumeClaim', name: o.pvc },
    },
  };
}

/** API version of VolumeGroupSnapshot / VolumeGroupSnapshotClass (GA in external-snapshotter v8.x). */
export const GROUP_SNAPSHOT_API_VERSION = 'groupsnapshot.storage.k8s.io/v1';
/** Object role of a stage pass's VolumeGroupSnapshot. */
export const GROUP_SNAPSHOT_ROLE = 'group';
/** Label Ferry puts on the source PVCs of a namespace so that its VolumeGroupSnapshot selects them
 * (value: the migration key); cleanup removes it. */
export const GROUP_SNAPSHOT_LABEL = 'ferry.dev/snapshot-group';
/** VolumeGroupSnapshotClass annotation marking the default class of its driver. */
export const DEFAULT_GROUP_SNAPSHOT_CLASS_ANNOTATION = 'groupsnapshot.storage.kubernetes.io/is-default-class';

/** A VolumeGroupSnapshot (the fields Ferry writes and reads). */
export interface VolumeGroupSnapshotObject {
  apiVersion: typeof GROUP_SNAPSHOT_API_VERSION;
  kind: 'VolumeGroupSnapshot';
  metadata: { name: string; namespace: string; labels: Record<string, string>; annotations?: Record<string, string> };
  spec: { source: { selector: { matchLabels: Record<string, string> } }; volumeGroupSnapshotClassName?: string };
  /** creationTime: when the snapshot was cut (RFC 3339). */
  status?: { readyToUse?: boolean; boundVolumeGroupSnapshotContentName?: string; creationTime?: string; error?: { message?: string } };
}

/** What the group snapshot of one namespace's stage pass needs. */
export interface GroupSnapshotOptions {
  migrationId: string;
  namespace: string;
  pass: number;
  /** The VolumeGroupSnapshotClass (unset: the driver's default class). */
  volumeGroupSnapshotClass?: string;
}

/** Name of the VolumeGroupSnapshot of a namespace's stage pass (one at a time per namespace). */
export function groupSnapshotName(migrationId: string): string {
  return objectName(migrationId, GROUP_SNAPSHOT_ROLE);
}

/** The label value that puts a source PVC into the migration's group (GROUP_SNAPSHOT_LABEL). */
export function groupSnapshotLabelValue(migrationId: string): string {
  return objectLabels(migrationId, GROUP_SNAPSHOT_ROLE)['ferry.dev/migration']!;
}

/**
 * The VolumeGroupSnapshot of the labelled source PVCs of one namespace: the CSI driver snaps them
 * together (crash-consistent across volumes; Kubernetes docs "Volume Group Snapshots", KEP-3476).
 */
export function volumeGroupSnapshot(o: GroupSnapshotOptions): VolumeGroupSnapshotObject {
  return {
    apiVersion: GROUP_SNAPSHOT_API_VERSION,
    kind: 'VolumeGroupSnapshot',
    metadata: { name: groupSnapshotName(o.migrationId), namespace: o.namespace, labels: objectLabels(o.migrationId, GROUP_SNAPSHOT_ROLE), annotations: { [SNAPSHOT_PASS_ANNOTATION]: String(o.pass) } },
    spec: {
      source: { selector: { matchLabels: { [GROUP_SNAPSHOT_LABEL]: groupSnapshotLabelValue(o.migrationId) } } },
      ...(o.volumeGroupSnapshotClass !== undefined ? { volumeGroupSnapshotClassName: o.volumeGroupSnapshotClass } : {}),
    },
  };
}
