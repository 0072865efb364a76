/**
 * Preflight: every check that can fail a migration before anything is touched, run all at once so
 * the operator gets the complete list (empty = go):
 * - each cluster: kubeconfig usable and API server reachable (GET /version);
 * - permissions of Ferry's identity on each side (SelfSubjectAccessReview for every verb it uses,
 *   depending on the plan: quiesce, endpoint type, rollback);
 * - source namespaces exist (not Terminating), named PVCs exist, something is selected;
 * - PVCs are Bound (Block ones need an engine that copies devices: rsync), their destination StorageClass exists
 *   (or the destination has a default class), their destination names are free or already this
 *   migration's, and usable as rsync module names; existing destination PVCs carry no cutover mark
 *   of a finished migration (unless the plan says overwriteCutoverPVCs: true); with keepPVCNames:
 *   another class or access mode than their own, and the PV permissions of the rebind;
 * - destination namespaces are not Terminating;
 * - ReadWriteOncePod volumes in use cannot be read by a client pod while the application runs
 *   (stage syncs would wait forever);
 * - the plan's transfer and endpoint options are accepted by the state-transfer library;
 * - endpoint TLSRoute: its Gateway exists and has the listener (sectionName, else a TLS Passthrough
 *   one), which passes TLS through and admits TLSRoutes from the destination namespace as far as its
 *   spec tells (allowedRoutes);
 * - image migration: skopeo runs on the worker, the registry files exist, the ImageStream API exists
 *   in imagestreams mode;
 * - the Pod Security admission level the source and destination namespaces enforce
 *   (`pod-security.kubernetes.io/enforce`) admits the transfer pods of the security mode;
 * - with quiesce: no pod Ferry cannot stop mounts a source PVC (unless `unmanagedPods: delete`),
 *   no quiesced workload is in the middle of a rollout (unless `acceptRevisionChange: true`), and no
 *   StatefulSet whose retention policy deletes PVCs is owned by a controller Ferry does not manage
 *   (unless `acceptOperatorRetentionPolicy: true`): that controller could set Delete back after quiesce.
 */
import { spawnSync } from 'node:child_process';
import { accessSync, constants as fsConstants } from 'node:fs';
import type { KubernetesObject, V1Namespace, V1PersistentVolumeClaim, V1StorageClass } from '@kubernetes/client-node';
import type { NamespaceDiscovery, PreflightProblem } from '../core/types';
import { sourceCopyMethodOf, type MigrationPlan } from '../plan/schema';
import { validateEndpointOptions } from '../statetransfer/endpoint';
import { LABELS, migrationKey } from '../statetransfer/names';
import { moduleNameProblem } from '../statetransfer/transfer/rsync/rsyncd-conf';
import type { EndpointType } from '../statetransfer/types';
import { SKOPEO_BINARY } from '../images/skopeo';
import { apiErrorMessage, type AccessCheck, type KubeClient } from '../k8s/client';
import { cutoverMarkOf } from './destination';
import { defaultStorageClassName } from './discovery';
import { errorMessage } from '../core/errors';
import { PRESERVE_OWNERSHIP_CAPABILITIES } from '../statetransfer/pods/security';
import type { SecurityMode } from '../statetransfer/types';
import { DEFAULT_GROUP_SNAPSHOT_CLASS_ANNOTATION, DEFAULT_SNAPSHOT_CLASS_ANNOTATION, GROUP_SNAPSHOT_API_VERSION } from '../statetransfer/snapshot';
import { endpointKind, endpointPermissions } from '../statetransfer/registry';
import { TLSRouteEndpoint, type GatewayObject } from '../statetransfer/endpoint/tlsroute';
import { endpointFor, endpointOptionsFor, transferFor } from './compose';
import { policyDeletesPVCs, retentionPolicyOf } from './quiesce';
import { hookCluster } from '../plan/hooks';
import { ownerIndex, resolveController, WORKLOAD_KINDS } from './workloads';

/** The namespace label that sets the Pod Security Standard level admission enforces (Kubernetes docs,
 * "Enforce Pod Security Standards with Namespace Labels"). */
export const POD_SECURITY_ENFORCE_LABEL = 'pod-security.kubernetes.io/enforce';

/** Capabilities the "baseline" Pod Security Standard allows to add (Kubernetes docs, "Pod Security
 * Standards", Baseline → Capabilities). */
export const BASELINE_CAPABILITIES: readonly string[] = [
  'AUDIT_WRITE', 'CHOWN', 'DAC_OVERRIDE', 'FOWNER', 'FSETID', 'KILL', 'MKNOD', 'NET_BIND_SERVICE', 'SETFCAP', 'SETGID', 'SETPCAP', 'SETUID', 'SYS_CHROOT',
];

/**
 * Pure: why the transfer pods of `mode` would be rejected by a namespace enforcing Pod Security `level`
 * (undefined: admitted). restricted-mode pods pass "restricted"; preserve-ownership pods run as root
 * with PRESERVE_OWNERSHIP_CAPABILITIES, which "restricted" refuses and "baseline" admits while every
 * capability is in BASELINE_CAPABILITIES. `side` and `namespace` name the namespace in the message.
 */
export function podSecurityProblem(mode: SecurityMode, level: string | undefined, side: 'source' | 'destination', namespace: string): string | undefined {
  if (mode !== 'preserve-ownership' || level === undefined || level === 'privileged') return undefined;
  const where = `${side} namespace ${namespace}`;
  const fix =
    `label the namespace for the migration (kubectl label --overwrite namespace ${namespace} ${POD_SECURITY_ENFORCE_LABEL}=baseline${side === 'source' ? ' in the source cluster; a destination namespace Ferry creates copies it' : ' in the destination cluster'}), ` +
    'or use security.mode: restricted (file owners are then not kept)';
  if (level === 'restricted') {
    return `${where} enforces the "restricted" Pod Security Standard (${POD_SECURITY_ENFORCE_LABEL}=restricted), which rejects the root transfer pods of security.mode preserve-ownership: ${fix}`;
  }
  if (level === 'baseline') {
    const beyond = PRESERVE_OWNERSHIP_CAPABILITIES.filter((c) => !BASELINE_CAPABILITIES.includes(c));
    if (beyond.length) {
      return `${where} enforces the "baseline" Pod Security Standard, which rejects the capabilities ${beyond.join(', ')} of security.mode preserve-ownership: label it ${POD_SECURITY_ENFORCE_LABEL}=privileged for the migration, or use security.mode: restricted`;
    }
    return undefined;
  }
  return `${where} has an unknown Pod Security level ${POD_SECURITY_ENFORCE_LABEL}=${level} (expected privileged, baseline or restricted): fix the label`;
}

/** Pure: the problem of the unmanaged pods of a discovery for this plan (undefined: none or accepted). */
export function unmanagedPodsProblem(plan: Pick<MigrationPlan, 'quiesce' | 'unmanagedPods'>, discovery: Pick<NamespaceDiscovery, 'sourceNamespace' | 'unmanagedPods'>): string | undefined {
  const pods = discovery.unmanagedPods ?? [];
  if (!plan.quiesce || pods.length === 0 || plan.unmanagedPods === 'delete') return undefined;
  const list = pods.map((p) => `pod ${p.name} (${p.owner ? `controlled by ${p.owner}` : 'no controller'}; mounts ${p.pvcs.join(', ')})`).join('; ');
  return (
    `${pods.length} pod${pods.length === 1 ? '' : 's'} in ${discovery.sourceNamespace} that Ferry cannot quiesce mount${pods.length === 1 ? 's' : ''} source PVCs and could write during the final sync: ${list}. ` +
    'Stop them (or their controller) before migrating, or set unmanagedPods: delete to have Ferry delete them after quiesce'
  );
}

/** Pure: the problem of the pending rollouts of a discovery for this plan (undefined: none or accepted). */
export function pendingRolloutsProblem(plan: Pick<MigrationPlan, 'quiesce' | 'acceptRevisionChange'>, discovery: Pick<NamespaceDiscovery, 'pendingRollouts'>): string | undefined {
  const rollouts = discovery.pendingRollouts ?? [];
  if (!plan.quiesce || rollouts.length === 0 || plan.acceptRevisionChange === true) return undefined;
  return (
    `quiesce cannot restore these workloads as they were, because they are in the middle of a rollout: ` +
    rollouts.map((r) => `${r.workload.kind} ${r.workload.namespace}/${r.workload.name}: ${r.detail}`).join('; ') +
    '. Finish or undo the rollout first, or set acceptRevisionChange: true to accept it'
  );
}

/**
 * Pure: the problem of quiescing StatefulSet `sts` for this plan (undefined: none or accepted). Quiesce
 * sets a retention policy that deletes PVCs (whenScaled/whenDeleted: Delete) to Retain before scaling
 * to 0; a controller Ferry does not manage (ownerReferences `controller: true` of a kind outside
 * WORKLOAD_KINDS, e.g. an operator's custom resource) reconciles the StatefulSet from its own spec and
 * may set Delete back, and the StatefulSet controller then deletes the PVCs. Refused unless the plan
 * says `acceptOperatorRetentionPolicy: true` (or quiesce is off).
 */
export function operatorRetentionProblem(plan: Pick<MigrationPlan, 'quiesce' | 'acceptOperatorRetentionPolicy'>, sts: KubernetesObject): string | undefined {
  if (!plan.quiesce || plan.acceptOperatorRetentionPolicy === true || sts.kind !== 'StatefulSet') return undefined;
  const policy = retentionPolicyOf(sts);
  if (!policyDeletesPVCs(policy)) return undefined;
  const owner = resolveController(sts, ownerIndex([])).foreignOwner;
  if (!owner) return undefined;
  const name = `${sts.metadata?.namespace ?? '?'}/${sts.metadata?.name ?? '?'}`;
  return (
    `StatefulSet ${name} has persistentVolumeClaimRetentionPolicy ${JSON.stringify(policy)} and is controlled by ${owner.kind} ${owner.name} (${owner.apiVersion}), which Ferry does not manage: ` +
    'quiesce sets the policy to Retain before scaling to 0, and that controller may set Delete back, after which the StatefulSet controller deletes the PVCs. ' +
    `Set whenScaled and whenDeleted to Retain in ${owner.kind} ${owner.name} (or pause its reconciliation) for the migration, stop the application yourself and migrate with quiesce: false, ` +
    'or set acceptOperatorRetentionPolicy: true to accept the risk (Ferry then rolls back if the policy deletes PVCs again before the final sync)'
  );
}

/** A cluster for preflight: a client, or why none could be built (bad kubeconfig/context). */
export type PreflightCluster = { client: KubeClient } | { error: string };

/** Input of `runPreflight`. */
export interface PreflightInput {
  migrationId: string;
  plan: MigrationPlan;
  discoveries: readonly NamespaceDiscovery[];
  source: PreflightCluster;
  destination: PreflightCluster;
}

interface Needed {
  verbs: string[];
  group: string;
  resource: string;
  subresource?: string;
}

const need = (verbs: string[], group: string, resource: string, subresource?: string): Needed => ({ verbs, group, resource, ...(subresource ? { subresource } : {}) });

/**
 * Pure: what the plan's hooks in `side`'s namespaces need (migration/hooks.ts): exec hooks the pods
 * and pods/exec; job hooks the Jobs, their pods and logs, and the events that say why a Job could not
 * create its pod.
 */
export function hookPermissions(plan: Pick<MigrationPlan, 'hooks'>, side: 'source' | 'destination'): Needed[] {
  const hooks = (plan.hooks ?? []).filter((h) => hookCluster(h) === side);
  const out: Needed[] = [];
  if (hooks.some((h) => h.exec)) out.push(need(['list'], '', 'pods'), need(['get', 'create'], '', 'pods', 'exec'));
  if (hooks.some((h) => h.job)) {
    out.push(need(['get', 'create', 'delete'], 'batch', 'jobs'), need(['list'], '', 'pods'), need(['get'], '', 'pods', 'log'), need(['list'], '', 'events'));
  }
  return out;
}

/** Pure: the namespaced permissions Ferry needs in a source namespace for this plan. */
export function sourcePermissions(plan: MigrationPlan, hasDeploymentConfigs: boolean): Needed[] {
  const out = [
    need(['get', 'list'], '', 'persistentvolumeclaims'),
    need(['get', 'list', 'create', 'delete'], '', 'pods'),
    need(['get'], '', 'pods', 'log'),
    // Warm agents (migration/agent.ts) run each sync through exec, a WebSocket (GET) upgrade: clusters
    // before 1.31 authorize it as `get`, later ones as `create` (KEP-4006); the built-in edit role has both.
    ...(plan.agents === 'per-sync' ? [] : [need(['get', 'create'], '', 'pods', 'exec')]),
    need(['get', 'create', 'delete', 'list'], '', 'secrets'),
    need(['get', 'create', 'delete', 'list'], '', 'configmaps'),
    need(['list'], 'apps', 'replicasets'),
    need(['list'], 'apps', 'deployments'),
    need(['list'], 'apps', 'statefulsets'),
    need(['list'], 'apps', 'daemonsets'),
    need(['list'], 'batch', 'jobs'),
    need(['list'], 'batch', 'cronjobs'),
    need(['list'], '', 'replicationcontrollers'),
  ];
  if (hasDeploymentConfigs) out.push(need(['list'], 'apps.openshift.io', 'deploymentconfigs'));
  // point-in-time stage sources (migration/snapshot.ts): the claim, and the snapshot it is restored from
  if (plan.sourceCopyMethod !== 'direct') out.push(need(['get', 'create', 'delete'], '', 'persistentvolumeclaims'));
  if (plan.sourceCopyMethod === 'snapshot') out.push(need(['get', 'list', 'create', 'delete'], 'snapshot.storage.k8s.io', 'volumesnapshots'));
  // groupSnapshot: the group, and the label on the source PVCs that it selects
  if (plan.groupSnapshot && plan.sourceCopyMethod === 'snapshot') out.push(need(['get', 'list', 'create', 'delete'], 'groupsnapshot.storage.k8s.io', 'volumegroupsnapshots'), need(['list', 'patch'], '', 'persistentvolumeclaims'));
  out.push(...hookPermissions(plan, 'source'));
  if (plan.quiesce) {
    for (const r of ['deployments', 'statefulsets', 'replicasets', 'daemonsets']) out.push(need(['get', 'patch'], 'apps', r));
    for (const r of ['jobs', 'cronjobs']) out.push(need(['get', 'patch'], 'batch', r));
    out.push(need(['get', 'patch'], '', 'replicationcontrollers'));
    if (hasDeploymentConfigs) out.push(need(['get', 'patch'], 'apps.openshift.io', 'deploymentconfigs'));
  }
  return out;
}

/** Pure: the namespaced permissions Ferry needs in a destination namespace for this plan and endpoint types. */
export function destinationPermissions(plan: MigrationPlan, endpointTypes: readonly EndpointType[]): Needed[] {
  const out = [
    // patch and list: the cutover mark after each final sync, and its removal on rollback.
    need(['get', 'create', 'patch', 'list', ...(plan.deleteDestinationPVCsOnRollback || plan.keepPVCNames ? ['delete'] : [])], '', 'persistentvolumeclaims'),
    need(['get', 'list', 'create', 'delete'], '', 'pods'),
    need(['get', 'list', 'create', 'delete'], '', 'services'),
    need(['get', 'list', 'create', 'delete'], '', 'secrets'),
    need(['get', 'list', 'create', 'delete'], '', 'configmaps'),
    // the transfer server's PodDisruptionBudget (namespace-transfer.ts serverDisruptionBudget)
    need(['get', 'list', 'create', 'delete'], 'policy', 'poddisruptionbudgets'),
  ];
  // what each endpoint type creates besides Services (its EndpointKind in statetransfer/registry.ts)
  for (const p of endpointPermissions(endpointTypes)) out.push(need([...p.verbs], p.group, p.resource));
  out.push(...hookPermissions(plan, 'destination'));
  return out;
}

/** Runs every check of `needs` in `namespace` (undefined: cluster scope); returns "verb resource" of the denied ones. */
async function denied(client: KubeClient, needs: readonly Needed[], namespace: string | undefined): Promise<string[]> {
  const checks: AccessCheck[] = needs.flatMap((n) =>
    n.verbs.map((verb) => ({ verb, group: n.group, resource: n.resource, ...(n.subresource ? { subresource: n.subresource } : {}), ...(namespace ? { namespace } : {}) })),
  );
  const results = await Promise.all(checks.map((c) => client.canI(c).then((r) => ({ c, r }))));
  return results
    .filter(({ r }) => !r.allowed)
    .map(({ c }) => `${c.verb} ${c.resource}${c.subresource ? `/${c.subresource}` : ''}${c.group ? ` (${c.group})` : ''}`);
}

/** The concrete endpoint types the plan may use on the destination (auto: Route, or LoadBalancer and NodePort). */
async function candidateEndpointTypes(plan: MigrationPlan, destination: KubeClient | undefined): Promise<EndpointType[]> {
  if (plan.endpoint.type !== 'auto') return [plan.endpoint.type];
  if (destination && (await destination.hasApi('route.openshift.io/v1', 'Route').catch(() => false))) return ['Route'];
  return ['LoadBalancer', 'NodePort'];
}

/** Pure: problems of the plan's transfer and endpoint options for one destination namespace. */
export function optionProblems(plan: MigrationPlan, migrationId: string, destinationNamespace: string, types: readonly EndpointType[]): string[] {
  const out: string[] = [];
  for (const t of types) {
    for (const p of validateEndpointOptions(endpointOptionsFor(plan, migrationId, destinationNamespace, t))) out.push(`endpoint ${t}: ${p}`);
  }
  return out;
}

/** The annotation that marks the cluster's default IngressClass (Kubernetes docs, "Default IngressClass"). */
export const DEFAULT_INGRESS_CLASS_ANNOTATION = 'ingressclass.kubernetes.io/is-default-class';

/**
 * Pure: why the Ingress endpoint would get no controller: the plan's IngressClass does not exist, or
 * (none named) the cluster has no default IngressClass; undefined when one serves it. Without a
 * controller no address is ever published and the endpoint would fail only at endpointReadySeconds.
 */
export function ingressClassProblem(classes: readonly KubernetesObject[], name: string | undefined): string | undefined {
  const names = classes.map((c) => c.metadata?.name ?? '?');
  if (name !== undefined) {
    return names.includes(name) ? undefined : `IngressClass ${name} does not exist in the destination (there: ${names.join(', ') || 'none'}): set endpoint.ingressClassName to the class of an ingress controller that passes TLS through`;
  }
  if (classes.some((c) => c.metadata?.annotations?.[DEFAULT_INGRESS_CLASS_ANNOTATION] === 'true')) return undefined;
  return `no IngressClass is named and the destination has no default IngressClass (there: ${names.join(', ') || 'none'}): set endpoint.ingressClassName`;
}

/**
 * Why the TLSRoute endpoint of `namespace` cannot attach to the plan's Gateway, from the Gateway's
 * spec (TLSRouteEndpoint.gatewayProblem); undefined when nothing is wrong, or when the destination
 * does not serve the Gateway kind (the served-API check reports that).
 */
async function tlsRouteGatewayProblem(dst: KubeClient, plan: MigrationPlan, migrationId: string, namespace: string): Promise<string | undefined> {
  const endpoint = endpointFor(plan, migrationId, namespace, 'TLSRoute');
  if (!(endpoint instanceof TLSRouteEndpoint)) return undefined;
  const [ref] = endpoint.observes;
  if (!ref || !(await dst.hasApi(ref.apiVersion, ref.kind))) return undefined;
  const problem = endpoint.gatewayProblem(await dst.get<GatewayObject>(ref));
  return problem ? `endpoint TLSRoute: ${problem}` : undefined;
}

function fileProblem(path: string | undefined, what: string): string | undefined {
  if (path === undefined) return undefined;
  try {
    accessSync(path, fsConstants.R_OK);
    return undefined;
  } catch (err) {
    return `${what} ${path} cannot be read by the worker (${errorMessage(err)})`;
  }
}

/**
 * Pure: the problem with writing into the existing destination PVC `pvc` (of `namespace`) when it
 * carries a cutover mark (../migration/destination.ts CUTOVER_ANNOTATIONS): a migration already finished
 * its final sync into it, its application may have written since, and a new sync (the final one runs
 * with --delete) would overwrite those writes. Undefined when unmarked or the plan says
 * `overwriteCutoverPVCs: true`.
 */
export function cutoverMarkProblem(pvc: V1PersistentVolumeClaim | undefined, plan: MigrationPlan): string | undefined {
  const mark = cutoverMarkOf(pvc);
  if (!mark || plan.overwriteCutoverPVCs === true) return undefined;
  const name = `${pvc?.metadata?.namespace ?? '?'}/${pvc?.metadata?.name ?? '?'}`;
  return (
    `destination PVC ${name} was cut over by migration ${mark.by}${mark.at ? ` at ${mark.at}` : ''}: the migrated application may have written to it since, ` +
    `and another sync would overwrite those writes. Leave it out of the plan, or set overwriteCutoverPVCs: true if overwriting it is really wanted`
  );
}

/**
 * Runs every check (see module docstring) and returns every problem found. Never throws for what it
 * checks; an unexpected API error while checking becomes a problem of its own.
 */
export async function runPreflight(input: PreflightInput): Promise<PreflightProblem[]> {
  const { plan, migrationId, discoveries } = input;
  const problems: PreflightProblem[] = [];
  const add = (subject: string, message: string) => problems.push({ subject, message });

  try {
    transferFor(plan);
  } catch (err) {
    add('plan', errorMessage(err));
  }

  const reachable = async (side: 'source' | 'destination', c: PreflightCluster): Promise<KubeClient | undefined> => {
    if ('error' in c) {
      add(side, c.error);
      return undefined;
    }
    try {
      await c.client.version();
      return c.client;
    } catch (err) {
      add(side, `API server of context ${c.client.contextName} is not reachable: ${apiErrorMessage(err)}`);
      return undefined;
    }
  };
  const [src, dst] = await Promise.all([reachable('source', input.source), reachable('destination', input.destination)]);
  const types = await candidateEndpointTypes(plan, dst);

  const guarded = async (subject: string, fn: () => Promise<void>) => {
    try {
      await fn();
    } catch (err) {
      add(subject, `check failed: ${apiErrorMessage(err)}`);
    }
  };

  let destinationClasses: V1StorageClass[] | undefined;
  if (dst) {
    await guarded('destination', async () => {
      const cluster = await denied(
        dst,
        [
          need(['get'], '', 'namespaces'),
          need(['list'], 'storage.k8s.io', 'storageclasses'),
          ...(types.includes('NodePort') ? [need(['list'], '', 'nodes')] : []),
          // keepPVCNames (migration/rebind.ts): both volumes set to Retain, the new one re-bound
          ...(plan.keepPVCNames ? [need(['get', 'list', 'patch'], '', 'persistentvolumes')] : []),
        ],
        undefined,
      );
      if (cluster.length) add('destination', `missing cluster permissions for context ${dst.contextName}: ${cluster.join(', ')}`);
      else destinationClasses = await dst.list<V1StorageClass>({ apiVersion: 'storage.k8s.io/v1', kind: 'StorageClass' });
    });
    // endpoint Ingress: its IngressClass (the plan's, else the cluster's default) must exist; read
    // softly (listing IngressClasses is not a permission Ferry requires: unreadable, not checked)
    if (types.includes('Ingress') && plan.endpoint.type === 'Ingress') {
      const classes = await dst.list<KubernetesObject>({ apiVersion: 'networking.k8s.io/v1', kind: 'IngressClass' }).catch(() => undefined);
      const problem = classes ? ingressClassProblem(classes, plan.endpoint.ingressClassName) : undefined;
      if (problem) add('destination', `endpoint Ingress: ${problem}`);
    }
    // the kinds the endpoint type creates besides Services must be served (Route: OpenShift;
    // TLSRoute: Gateway API v1.5+ Standard channel)
    if (plan.endpoint.type !== 'auto') {
      for (const k of endpointKind(plan.endpoint.type).extraKinds) {
        await guarded('destination', async () => {
          if (!(await dst.hasApi(k.apiVersion, k.kind))) add('destination', `endpoint type ${plan.endpoint.type} needs ${k.apiVersion} ${k.kind}, which context ${dst.contextName} does not serve: install its API and an implementation, or choose another endpoint type`);
        });
      }
    }
  }
  const hasDeploymentConfigs = src ? await src.hasApi(WORKLOAD_KINDS.DeploymentConfig.apiVersion, 'DeploymentConfig').catch(() => false) : false;

  if (plan.images.enabled) {
    const skopeo = spawnSync(SKOPEO_BINARY, ['--version'], { encoding: 'utf8', timeout: 10000 });
    if (skopeo.status !== 0) add('images', `skopeo is not usable on the worker (${skopeo.error ? errorMessage(skopeo.error) : skopeo.stderr.trim()}): install skopeo to migrate images`);
    for (const [side, reg] of [['sourceRegistry', plan.images.sourceRegistry], ['destinationRegistry', plan.images.destinationRegistry]] as const) {
      for (const p of [fileProblem(reg?.authFile, 'authFile'), fileProblem(reg?.caFile, 'caFile')]) if (p) add(`images.${side}`, p);
    }
    if (plan.images.mode === 'imagestreams' && src && !(await src.hasApi('image.openshift.io/v1', 'ImageStream').catch(() => false))) {
      add('images', `the source cluster (context ${src.contextName}) has no ImageStream API (image.openshift.io/v1): use images.mode: registry with repositories`);
    }
  }

  const snapshotting = new Set(plan.namespaces.filter((n) => sourceCopyMethodOf(plan, n) === 'snapshot').map((n) => n.source));
  if (src && snapshotting.size > 0) {
    await guarded('sourceCopyMethod', async () => {
      for (const p of await snapshotProblems(src, plan, discoveries.filter((d) => snapshotting.has(d.sourceNamespace)))) add('sourceCopyMethod', p);
    });
  }

  for (const [i, mapping] of plan.namespaces.entries()) {
    const subject = `namespaces[${i}]`;
    const discovery = discoveries.find((d) => d.sourceNamespace === mapping.source);
    const options = optionProblems(plan, migrationId, mapping.destination, types);
    for (const p of options) add(subject, p);

    if (discovery) {
      const unmanaged = unmanagedPodsProblem(plan, discovery);
      if (unmanaged) add(subject, unmanaged);
      const rollouts = pendingRolloutsProblem(plan, discovery);
      if (rollouts) add(subject, rollouts);
    }

    if (src) {
      await guarded(subject, async () => {
        const ns = await src.get<V1Namespace>({ apiVersion: 'v1', kind: 'Namespace', name: mapping.source });
        if (!ns) {
          add(subject, `source namespace ${mapping.source} does not exist in context ${src.contextName}`);
          return;
        }
        const psa = podSecurityProblem(plan.security.mode, ns.metadata?.labels?.[POD_SECURITY_ENFORCE_LABEL], 'source', mapping.source);
        if (psa) add(subject, psa);
        if (ns.metadata?.deletionTimestamp) add(subject, `source namespace ${mapping.source} is being deleted`);
        const missing = await denied(src, sourcePermissions({ ...plan, sourceCopyMethod: sourceCopyMethodOf(plan, mapping) }, hasDeploymentConfigs), mapping.source);
        if (missing.length) add(subject, `missing permissions in source namespace ${mapping.source} (context ${src.contextName}): ${missing.join(', ')}`);
        if ('names' in mapping.pvcs) {
          const found = new Set(discovery?.pvcs.map((p) => p.name) ?? []);
          const absent = mapping.pvcs.names.filter((n) => !found.has(n));
          if (absent.length) add(subject, `PVC(s) ${absent.join(', ')} not found in source namespace ${mapping.source}`);
        } else if ((discovery?.pvcs.length ?? 0) === 0 && !plan.images.enabled) {
          add(subject, `no PVC selected in source namespace ${mapping.source}${'labelSelector' in mapping.pvcs ? ` by labelSelector "${mapping.pvcs.labelSelector}"` : ''}: nothing to migrate`);
        }
        for (const info of discovery?.pvcs ?? []) {
          const pvc = await src.get<V1PersistentVolumeClaim>({ apiVersion: 'v1', kind: 'PersistentVolumeClaim', namespace: mapping.source, name: info.name });
          const ps = `pvc ${mapping.source}/${info.name}`;
          if (!pvc) add(ps, 'disappeared since discovery');
          else if (pvc.status?.phase !== 'Bound') add(ps, `is ${pvc.status?.phase ?? 'not Bound'}: only Bound PVCs hold data to migrate`);
          else if (plan.keepPVCNames && info.destinationStorageClass !== undefined && info.destinationStorageClass === info.storageClass && info.destinationAccessModes.join() === info.accessModes.join()) {
            add(ps, `keepPVCNames would move it to the StorageClass it is in (${info.storageClass}) with the same access modes: map its class with storageClassMapping (or defaultStorageClass), or leave it out of the selection`);
          }
          if (info.volumeMode === 'Block' && !transferFor(plan).copiesBlockDevices) add(ps, `has volumeMode Block: transfer ${plan.transfer} copies files, not devices; use transfer rsync (device to device, changed blocks only) or leave it out of the selection`);
          if (info.accessModes.includes('ReadWriteOncePod') && info.nodeName && plan.stagePasses > 0) {
            add(ps, 'is ReadWriteOncePod and mounted by a running pod: no other pod can read it before quiesce, so stage syncs cannot run; set stagePasses: 0');
          }
          const moduleProblem = plan.transfer === 'rsync' ? moduleNameProblem(info.destinationName) : undefined;
          if (moduleProblem) add(ps, `destination name ${info.destinationName} cannot be an rsync module: ${moduleProblem}`);
        }
        if (plan.quiesce && plan.acceptOperatorRetentionPolicy !== true) {
          for (const w of discovery?.workloads ?? []) {
            if (w.kind !== 'StatefulSet') continue;
            const sts = await src.get({ apiVersion: WORKLOAD_KINDS.StatefulSet.apiVersion, kind: 'StatefulSet', namespace: w.namespace, name: w.name });
            const problem = sts ? operatorRetentionProblem(plan, sts) : undefined;
            if (problem) add(subject, problem);
          }
        }
      });
    }

    if (dst) {
      await guarded(subject, async () => {
        const ns = await dst.get<V1Namespace>({ apiVersion: 'v1', kind: 'Namespace', name: mapping.destination });
        // A namespace Ferry creates copies the source's labels (its Pod Security level included): the
        // source check covers it.
        const psa = ns ? podSecurityProblem(plan.security.mode, ns.metadata?.labels?.[POD_SECURITY_ENFORCE_LABEL], 'destination', mapping.destination) : undefined;
        if (psa) add(subject, psa);
        if (ns?.metadata?.deletionTimestamp) add(subject, `destination namespace ${mapping.destination} is being deleted (Terminating): wait until it is gone or choose another name`);
        if (!ns) {
          const cluster = await denied(dst, [need(['create'], '', 'namespaces')], undefined);
          if (cluster.length) add(subject, `destination namespace ${mapping.destination} does not exist and context ${dst.contextName} may not create namespaces: create it first or grant create namespaces`);
        }
        const missing = await denied(dst, destinationPermissions(plan, types), mapping.destination);
        if (missing.length) add(subject, `missing permissions in destination namespace ${mapping.destination} (context ${dst.contextName}): ${missing.join(', ')}`);
        if (types.includes('TLSRoute') && !options.some((p) => p.startsWith('endpoint TLSRoute:'))) {
          const gateway = await tlsRouteGatewayProblem(dst, plan, migrationId, mapping.destination);
          if (gateway) add(subject, gateway);
        }
        for (const info of discovery?.pvcs ?? []) {
          const ps = `pvc ${mapping.source}/${info.name}`;
          if (destinationClasses) {
            if (info.destinationStorageClass !== undefined) {
              if (!destinationClasses.some((c) => c.metadata?.name === info.destinationStorageClass)) {
                add(ps, `destination StorageClass ${info.destinationStorageClass} does not exist in context ${dst.contextName} (available: ${destinationClasses.map((c) => c.metadata?.name).join(', ') || 'none'}); map it with storageClassMapping or set defaultStorageClass`);
              }
            } else if (!defaultStorageClassName(destinationClasses)) {
              add(ps, `has no StorageClass at the destination and context ${dst.contextName} has no default StorageClass; set defaultStorageClass or storageClassMapping`);
            }
          }
          const existing = ns ? await dst.get<V1PersistentVolumeClaim>({ apiVersion: 'v1', kind: 'PersistentVolumeClaim', namespace: mapping.destination, name: info.destinationName }) : undefined;
          if (existing && existing.metadata?.labels?.[LABELS.migration] !== migrationKey(migrationId)) {
            add(ps, `destination PVC ${mapping.destination}/${info.destinationName} already exists and is not this migration's: Ferry never overwrites it; delete it or migrate into another namespace`);
          }
          const marked = cutoverMarkProblem(existing, plan);
          if (marked) add(ps, marked);
        }
      });
    }
  }
  return problems;
}

/**
 * What keeps `sourceCopyMethod: snapshot` from working in the source cluster: the snapshot API not
 * served, the named VolumeSnapshotClass missing or of another driver, or (no class named) no default
 * class for the CSI driver of a selected PVC's StorageClass.
 */
async function snapshotProblems(src: KubeClient, plan: MigrationPlan, discoveries: readonly NamespaceDiscovery[]): Promise<string[]> {
  if (!(await src.hasApi('snapshot.storage.k8s.io/v1', 'VolumeSnapshot'))) {
    return [`the source cluster (context ${src.contextName}) does not serve snapshot.storage.k8s.io/v1 VolumeSnapshot: install the CSI snapshot CRDs and snapshot-controller, or use sourceCopyMethod direct`];
  }
  type Snapclass = KubernetesObject & { driver?: string };
  const classes = await src.list<Snapclass>({ apiVersion: 'snapshot.storage.k8s.io/v1', kind: 'VolumeSnapshotClass' });
  const storageClasses = await src.list<V1StorageClass>({ apiVersion: 'storage.k8s.io/v1', kind: 'StorageClass' });
  const problems: string[] = [];
  const named = plan.volumeSnapshotClass !== undefined ? classes.find((c) => c.metadata?.name === plan.volumeSnapshotClass) : undefined;
  if (plan.volumeSnapshotClass !== undefined && !named) problems.push(`VolumeSnapshotClass ${plan.volumeSnapshotClass} does not exist (available: ${classes.map((c) => c.metadata?.name).join(', ') || 'none'})`);
  const drivers = new Map<string, string[]>();
  for (const d of discoveries) {
    for (const pvc of d.pvcs) {
      const sc = storageClasses.find((c) => c.metadata?.name === pvc.storageClass);
      const driver = sc?.provisioner ?? '?';
      drivers.set(driver, [...(drivers.get(driver) ?? []), `${d.sourceNamespace}/${pvc.name}`]);
    }
  }
  if (plan.groupSnapshot) problems.push(...(await groupSnapshotProblems(src, plan, drivers)));
  for (const [driver, pvcs] of drivers) {
    const list = `${pvcs.slice(0, 3).join(', ')}${pvcs.length > 3 ? ` and ${pvcs.length - 3} more` : ''}`;
    if (named) {
      if (named.driver !== driver) problems.push(`VolumeSnapshotClass ${plan.volumeSnapshotClass} is for driver ${named.driver}, but PVC ${list} is provisioned by ${driver}`);
    } else if (!classes.some((c) => c.driver === driver && c.metadata?.annotations?.[DEFAULT_SNAPSHOT_CLASS_ANNOTATION] === 'true')) {
      problems.push(`no default VolumeSnapshotClass for driver ${driver} (PVC ${list}): name one with volumeSnapshotClass, or use sourceCopyMethod direct`);
    }
  }
  return problems;
}

/**
 * What keeps `groupSnapshot: true` from working: the VolumeGroupSnapshot API not served, the named
 * VolumeGroupSnapshotClass missing or of another driver, or no default class for a PVC's CSI driver.
 * `drivers`: CSI driver → the PVCs it provisions ("ns/name").
 */
async function groupSnapshotProblems(src: KubeClient, plan: MigrationPlan, drivers: ReadonlyMap<string, string[]>): Promise<string[]> {
  if (!(await src.hasApi(GROUP_SNAPSHOT_API_VERSION, 'VolumeGroupSnapshot'))) {
    return [`groupSnapshot: the source cluster (context ${src.contextName}) does not serve ${GROUP_SNAPSHOT_API_VERSION} VolumeGroupSnapshot: install the group snapshot CRDs and a snapshot-controller with the VolumeGroupSnapshot feature, or set groupSnapshot: false`];
  }
  type GroupClass = KubernetesObject & { driver?: string };
  const classes = await src.list<GroupClass>({ apiVersion: GROUP_SNAPSHOT_API_VERSION, kind: 'VolumeGroupSnapshotClass' });
  const problems: string[] = [];
  const named = plan.volumeGroupSnapshotClass !== undefined ? classes.find((c) => c.metadata?.name === plan.volumeGroupSnapshotClass) : undefined;
  if (plan.volumeGroupSnapshotClass !== undefined && !named) problems.push(`VolumeGroupSnapshotClass ${plan.volumeGroupSnapshotClass} does not exist (available: ${classes.map((c) => c.metadata?.name).join(', ') || 'none'})`);
  for (const [driver, pvcs] of drivers) {
    if (named && named.driver !== driver) problems.push(`VolumeGroupSnapshotClass ${plan.volumeGroupSnapshotClass} is for driver ${named.driver}, but PVC ${pvcs[0]} is provisioned by ${driver}`);
    if (!named && plan.volumeGroupSnapshotClass === undefined && !classes.some((c) => c.driver === driver && c.metadata?.annotations?.[DEFAULT_GROUP_SNAPSHOT_CLASS_ANNOTATION] === 'true')) {
      problems.push(`groupSnapshot: no default VolumeGroupSnapshotClass for driver ${driver} (PVC ${pvcs[0]}): name one with volumeGroupSnapshotClass`);
    }
  }
  return problems;
}
