/**
 * From a MigrationPlan to the state-transfer library's objects: the Transfer engine, the Transport,
 * the Endpoint options and the composed NamespaceTransfer of one namespace. Pure (no API calls).
 */
import type { PVCInfo, WorkloadIdentity } from '../core/types';
import type { MigrationPlan, NamespaceMapping } from '../plan/schema';
import { createEndpoint, EndpointOptionsError, type EndpointOptions } from '../statetransfer/endpoint';
import { createNamespaceTransfer, type NamespaceTransfer, type VolumePair } from '../statetransfer/namespace-transfer';
import type { ClientLifecycle } from '../statetransfer/pods/pods';
import { createRcloneTransfer } from '../statetransfer/transfer/rclone';
import { DEFAULT_EXCLUDES, RsyncOptionsError } from '../statetransfer/transfer/rsync/options';
import { createRsyncTransfer } from '../statetransfer/transfer/rsync';
import { TRANSPORTS } from '../statetransfer/registry';
import { ENDPOINT_TYPE_TRAITS, type EndpointType, type EndpointTypeOption, type Transfer, type Transport } from '../statetransfer/types';
import { FerryError, errorMessage } from '../core/errors';

/**
 * Port of the server pod that the endpoint forwards to: stunnel's TLS listener (or, with the null
 * transport, the self-encrypting engine). The engine itself listens on 127.0.0.1 behind stunnel.
 */
export const BACKEND_PORT = 8443;

/** The plan fields that shape the transfer objects. */
export type TransferPlan = Pick<MigrationPlan, 'transfer' | 'transport' | 'allowInsecure' | 'security' | 'rsync' | 'transferImage' | 'endpoint'>;

/**
 * The Transfer engine of a plan: rsync (verify → --checksum, bandwidthLimitKiBps → --bwlimit,
 * excludes after the default `/lost+found`, extraArgs, and in preserve-ownership mode `chown` and
 * ACLs + xattrs, on unless the plan turns them off) or
 * rclone (the same verify, bandwidth limit and excludes).
 * @throws FerryError (config) listing every invalid option.
 */
export function transferFor(plan: TransferPlan): Transfer {
  try {
    if (plan.transfer === 'rclone') {
      return createRcloneTransfer({
        checksum: plan.rsync.verify,
        ...(plan.rsync.bandwidthLimitKiBps !== undefined ? { bwLimitKiBps: plan.rsync.bandwidthLimitKiBps } : {}),
        excludes: ['/lost+found/**', ...plan.rsync.excludes],
      });
    }
    return createRsyncTransfer({
      checksum: plan.rsync.verify,
      ...(plan.rsync.bandwidthLimitKiBps !== undefined ? { bwLimitKiBps: plan.rsync.bandwidthLimitKiBps } : {}),
      excludes: [...DEFAULT_EXCLUDES, ...plan.rsync.excludes],
      ...(plan.rsync.extraArgs?.length ? { extraArgs: plan.rsync.extraArgs } : {}),
      ...(plan.security.mode === 'preserve-ownership' && plan.security.chown ? { chown: plan.security.chown } : {}),
      // ACLs and xattrs: kept by default where they can be (root); the plan schema refuses them in
      // restricted mode.
      ...(plan.security.mode === 'preserve-ownership'
        ? { acls: plan.rsync.acls ?? true, xattrs: plan.rsync.xattrs ?? true, selinuxXattrs: (plan.rsync.selinuxXattrs ?? false) && (plan.rsync.xattrs ?? true) }
        : {}),
    });
  } catch (err) {
    const detail = err instanceof RsyncOptionsError ? err.problems.map((p) => `rsync.${p.path}: ${p.message}`).join('; ') : errorMessage(err);
    throw new FerryError('config', `invalid transfer options in the plan: ${detail}`, { cause: err });
  }
}

/** The Transport of a plan (stunnel mutual TLS, or null). */
export function transportFor(plan: TransferPlan): Transport {
  return TRANSPORTS[plan.transport]();
}

/** Endpoint options for a concrete endpoint type (the plan's, or what 'auto' chose). */
export function endpointOptionsFor(plan: TransferPlan, migrationId: string, namespace: string, type: EndpointType): EndpointOptions {
  const e = plan.endpoint;
  const accepts = (option: EndpointTypeOption) => (ENDPOINT_TYPE_TRAITS[type].options as readonly EndpointTypeOption[]).includes(option);
  return {
    type,
    migrationId,
    namespace,
    backendPort: BACKEND_PORT,
    // the plan's options that this type takes (auto may resolve to a type that takes fewer)
    ...(e.hostname !== undefined && accepts('hostname') ? { hostname: e.hostname } : {}),
    ...(e.ingressClassName !== undefined && accepts('ingressClassName') ? { ingressClassName: e.ingressClassName } : {}),
    ...(e.nodePort !== undefined && accepts('nodePort') ? { nodePort: e.nodePort } : {}),
    ...(e.gateway !== undefined && accepts('gateway') ? { gateway: e.gateway } : {}),
  };
}

/** Creates the Endpoint object. @throws FerryError (config) with every option problem. */
export function endpointFor(plan: TransferPlan, migrationId: string, namespace: string, type: EndpointType) {
  try {
    return createEndpoint(endpointOptionsFor(plan, migrationId, namespace, type));
  } catch (err) {
    if (err instanceof EndpointOptionsError) throw new FerryError('config', `endpoint: ${err.problems.map((p) => `${p.path} ${p.message}`).join('; ')}`, { cause: err });
    throw err;
  }
}

/**
 * The identity of a client pod: the workload's, with the plan's restricted-mode overrides
 * (security.runAsUser/runAsGroup/fsGroup) on top. UID 0 is dropped in restricted mode (the pod
 * then runs as the image's non-root user; preflight warns that root-only files may be unreadable).
 */
export function clientIdentity(plan: TransferPlan, identity: WorkloadIdentity | undefined): WorkloadIdentity | undefined {
  const id: WorkloadIdentity = { ...(identity ?? {}) };
  if (plan.security.mode === 'restricted') {
    if (plan.security.runAsUser !== undefined) id.runAsUser = plan.security.runAsUser;
    if (plan.security.runAsGroup !== undefined) id.runAsGroup = plan.security.runAsGroup;
    if (plan.security.fsGroup !== undefined) id.fsGroup = plan.security.fsGroup;
    if (id.runAsUser === 0) delete id.runAsUser;
  }
  return Object.keys(id).length ? id : undefined;
}

/**
 * The identity of the destination server pod (one per namespace, restricted mode: the UID that will
 * own the written files): the plan's overrides, else the value all PVCs' workloads agree on (UID 0
 * excluded), else unset (the image's non-root user). preserve-ownership: root, nothing to choose.
 */
export function serverIdentity(plan: TransferPlan, pvcs: readonly PVCInfo[]): WorkloadIdentity | undefined {
  if (plan.security.mode !== 'restricted') return undefined;
  const common = (pick: (i: WorkloadIdentity) => number | undefined): number | undefined => {
    const values = new Set(pvcs.map((p) => (p.identity ? pick(p.identity) : undefined)));
    if (values.size !== 1) return undefined;
    const [v] = [...values];
    return v === 0 ? undefined : v;
  };
  const id: WorkloadIdentity = {};
  const runAsUser = plan.security.runAsUser ?? common((i) => i.runAsUser);
  const runAsGroup = plan.security.runAsGroup ?? common((i) => i.runAsGroup);
  const fsGroup = plan.security.fsGroup ?? common((i) => i.fsGroup);
  if (runAsUser !== undefined) id.runAsUser = runAsUser;
  if (runAsGroup !== undefined) id.runAsGroup = runAsGroup;
  if (fsGroup !== undefined) id.fsGroup = fsGroup;
  return Object.keys(id).length ? id : undefined;
}

/**
 * The NamespaceTransfer of one namespace for the given PVCs (all of them for the server side; one for
 * a client). `endpointType` is the concrete type in use (see endpoint.ts `endpointTypeInUse`).
 * @throws FerryError (config) for invalid plan options or a composition the library refuses.
 */
export function namespaceTransferFor(
  plan: TransferPlan,
  migrationId: string,
  mapping: Pick<NamespaceMapping, 'source' | 'destination'>,
  pvcs: readonly PVCInfo[],
  endpointType: EndpointType,
  lifecycle?: ClientLifecycle,
): NamespaceTransfer {
  const volumes: VolumePair[] = pvcs.map((p) => {
    const identity = clientIdentity(plan, p.identity);
    return {
      sourcePVC: p.name,
      destinationPVC: p.destinationName,
      ...(p.nodeName ? { nodeName: p.nodeName } : {}),
      ...(identity ? { identity } : {}),
      ...(p.volumeMode === 'Block' ? { block: true } : {}),
    };
  });
  const endpoint = endpointFor(plan, migrationId, mapping.destination, endpointType);
  const server = serverIdentity(plan, pvcs);
  try {
    return createNamespaceTransfer({
      migrationId,
      sourceNamespace: mapping.source,
      destinationNamespace: mapping.destination,
      volumes,
      transfer: transferFor(plan),
      transport: transportFor(plan),
      endpoint,
      security: plan.security.mode,
      image: plan.transferImage,
      ...(server ? { serverIdentity: server } : {}),
      allowInsecure: plan.allowInsecure,
      ...(lifecycle ? { lifecycle } : {}),
    });
  } catch (err) {
    if (err instanceof FerryError) throw err;
    throw new FerryError('config', errorMessage(err), { cause: err });
  }
}

/**
 * The NamespaceTransfer used on the source side only (client pods, the probe): the client objects
 * depend on the transfer, the transport and the endpoint's address, not on the endpoint's type, so a
 * ClusterIP endpoint stands in for whatever the destination uses and the destination cluster is not
 * consulted.
 */
export function clientSideTransferFor(
  plan: TransferPlan,
  migrationId: string,
  mapping: Pick<NamespaceMapping, 'source' | 'destination'>,
  pvcs: readonly PVCInfo[],
  lifecycle?: ClientLifecycle,
): NamespaceTransfer {
  return namespaceTransferFor(plan, migrationId, mapping, pvcs, 'ClusterIP', lifecycle);
}

/**
 * The client pod lifecycle a cluster supports, from its version (GET /version): native sidecar
 * containers from Kubernetes 1.29 on (the SidecarContainers feature is beta and on by default in
 * 1.29, GA in 1.33: KEP-753), the done-file wrapper before. Unparseable versions get the done-file
 * wrapper, which works everywhere.
 */
export function clientLifecycleFor(version: { major?: string; minor?: string }): ClientLifecycle {
  const major = Number.parseInt(version.major ?? '', 10);
  const minor = Number.parseInt((version.minor ?? '').replace(/\D.*$/, ''), 10);
  if (!Number.isFinite(major) || !Number.isFinite(minor)) return 'done-file';
  return major > 1 || (major === 1 && minor >= 29) ? 'native-sidecar' : 'done-file';
}
