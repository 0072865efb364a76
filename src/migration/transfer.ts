/**
 * The transfer's objects in the clusters: credentials, the destination server pod (and its stored
 * template, server.ts), the source client
 * pods (one per PVC sync) and the connectivity probe pod.
 *
 * Credentials live only in Secrets in the clusters, never in workflow state:
 * - destination: the server TLS Secret `ferry-<key>-srv-tls` (server certificate + key, CA
 *   certificate), made by namespace-transfer.ts `destinationObjects`;
 * - source: the credentials Secret `ferry-<key>-credentials` (client certificate + key, CA
 *   certificate, transfer password), made here; client pods get their Secrets from it.
 * The CA private key is discarded right after signing. On a retry both Secrets are read back; when
 * either is missing, they disagree (different CA), the server certificate no longer names the
 * endpoint address, or it expires within a day, every credential Secret of both sides, the server
 * pod and any client or probe pod are deleted and everything is made afresh (a client certificate
 * cannot be re-issued without the discarded CA key). Before every sync, server-sync.ts renews
 * credentials that expire within a week (both sides, same password) and ensures the server pod from
 * the manifest `ensureServer` stores (server.ts).
 */
import { X509Certificate } from 'node:crypto';
import { isIP } from 'node:net';
import type { KubernetesObject, V1Pod, V1Secret } from '@kubernetes/client-node';
import type { EndpointAddress, PVCInfo, TransferProgress, TransferResult } from '../core/types';
import { createTransferCredentials, type NamespaceTransfer, type TransferCredentials } from '../statetransfer/namespace-transfer';
import { LABELS, migrationSelector, objectLabels, objectName } from '../statetransfer/names';
import { secret, secretValues } from '../statetransfer/objects';
import { transferClientScript } from '../statetransfer/pods/lifecycle';
import { transferEngine } from '../statetransfer/registry';
import { TLS_KEYS } from '../statetransfer/tls/certificates';
import type { TransferType } from '../statetransfer/types';
import { describeRef, refOf, selectorString, waitFor, type KubeClient } from '../k8s/client';
import { FerryError, errorMessage } from '../core/errors';
import { silentLogger, type Logger } from '../core/log';
import { ensureServerPod, serverTemplateConfigMap } from './server';
import { describePodState, diagnosePod, followTransferPod, readLogTail, transferContainerName, transferContainerState, transferVerdict, type PendingLimits } from './follow';

/** Object role of the source credentials Secret. */
export const CREDENTIALS_ROLE = 'credentials';
/** Key of the transfer password in the credentials Secret. */
export const PASSWORD_KEY = 'password';
/** Label on client pods: the sync number (TransferRequest.pass) the pod performs. */
export const PASS_LABEL = 'ferry.dev/pass';
/** Annotation on client pods: 'final' or 'stage' (set by namespace-transfer.ts). */
export const SYNC_ANNOTATION = 'ferry.dev/sync';
/** Credentials expiring sooner than this are replaced by createServer (seconds). */
export const CREDENTIALS_MIN_REMAINING_SECONDS = 24 * 3600;
/** Validity of fresh credentials in days (long enough for a warm migration with manual cutover). */
export const CREDENTIALS_VALIDITY_DAYS = 30;

/** Name of the destination's server TLS Secret (namespace-transfer.ts: objectName(id, 'srv-tls')). */
export function serverTLSSecretName(migrationId: string): string {
  return objectName(migrationId, 'srv-tls');
}

/** Name of the source's credentials Secret. */
export function credentialsSecretName(migrationId: string): string {
  return objectName(migrationId, CREDENTIALS_ROLE);
}

/** Name of the connectivity probe pod. */
export function probePodName(migrationId: string): string {
  return objectName(migrationId, 'probe');
}

function secretRef(namespace: string, name: string) {
  return { apiVersion: 'v1', kind: 'Secret', namespace, name };
}

function podRef(namespace: string, name: string) {
  return { apiVersion: 'v1', kind: 'Pod', namespace, name };
}

/** Whether a certificate (PEM) names `host` (DNS SAN or IP SAN). */
export function certificateNames(certPem: string, host: string): boolean {
  const cert = new X509Certificate(certPem);
  return isIP(host) ? cert.checkIP(host) !== undefined : cert.checkHost(host) !== undefined;
}

/**
 * Pure: rebuilds TransferCredentials from the two Secrets' values, or says why they cannot be used
 * (incomplete, different CAs, expiring within `minRemainingSeconds`, not naming the address). The CA key is not available (never stored): `certificates.ca.keyPem` is ''.
 */
export function credentialsFromSecrets(
  server: Record<string, string> | undefined,
  client: Record<string, string>,
  address: EndpointAddress | undefined,
  now = Date.now(),
  minRemainingSeconds = CREDENTIALS_MIN_REMAINING_SECONDS,
): { credentials?: TransferCredentials; problem?: string } {
  const need = [TLS_KEYS.cert, TLS_KEYS.key, TLS_KEYS.ca];
  if (need.some((k) => !client[k]) || !client[PASSWORD_KEY]) return { problem: 'the source credentials Secret is incomplete' };
  if (server && need.some((k) => !server[k])) return { problem: 'the destination server TLS Secret is incomplete' };
  if (server && server[TLS_KEYS.ca] !== client[TLS_KEYS.ca]) return { problem: 'the two sides hold certificates of different CAs' };
  let notAfter: string;
  try {
    const clientCert = new X509Certificate(client[TLS_KEYS.cert]!);
    notAfter = new Date(clientCert.validTo).toISOString();
    if (new Date(clientCert.validTo).getTime() - now < minRemainingSeconds * 1000) return { problem: `the certificates expire at ${notAfter}` };
    if (server && address) {
      for (const name of [address.host, ...(address.sni ? [address.sni] : [])]) {
        if (!certificateNames(server[TLS_KEYS.cert]!, name)) return { problem: `the server certificate does not name the endpoint address ${name}` };
      }
    }
  } catch (err) {
    return { problem: `a stored certificate cannot be read (${errorMessage(err)})` };
  }
  return {
    credentials: {
      certificates: {
        ca: { certPem: client[TLS_KEYS.ca]!, keyPem: '' },
        server: { certPem: server?.[TLS_KEYS.cert] ?? '', keyPem: server?.[TLS_KEYS.key] ?? '' },
        client: { certPem: client[TLS_KEYS.cert]!, keyPem: client[TLS_KEYS.key]! },
        notAfter,
      },
      password: client[PASSWORD_KEY]!,
    },
  };
}

/** The source credentials Secret for fresh credentials (client certificate, CA certificate, password). */
export function credentialsSecret(migrationId: string, namespace: string, credentials: TransferCredentials): V1Secret {
  const c = credentials.certificates;
  return secret(credentialsSecretName(migrationId), namespace, objectLabels(migrationId, CREDENTIALS_ROLE), {
    [TLS_KEYS.cert]: c.client.certPem,
    [TLS_KEYS.key]: c.client.keyPem,
    [TLS_KEYS.ca]: c.ca.certPem,
    [PASSWORD_KEY]: credentials.password,
  });
}

/**
 * Reads the credentials a client needs (source side only).
 * @throws FerryError (config) when the credentials Secret is missing or unusable (the message says
 *   what the operator does: `ferry cancel` and migrate again).
 */
export async function readClientCredentials(source: KubeClient, migrationId: string, namespace: string): Promise<TransferCredentials> {
  const s = await source.get<V1Secret>(secretRef(namespace, credentialsSecretName(migrationId)));
  if (!s) {
    throw new FerryError('config', `credentials Secret ${namespace}/${credentialsSecretName(migrationId)} is missing in the source cluster: the transfer of namespace ${namespace} cannot go on; run \`ferry cancel ${migrationId}\` (the namespace rolls back) and migrate it again`);
  }
  const { credentials, problem } = credentialsFromSecrets(undefined, secretValues(s), undefined);
  if (!credentials) throw new FerryError('config', `credentials Secret ${namespace}/${credentialsSecretName(migrationId)} is unusable (${problem}): the transfer of namespace ${namespace} cannot go on; run \`ferry cancel ${migrationId}\` (the namespace rolls back) and migrate it again`);
  return credentials;
}

/** Kinds deleted when credentials are replaced. */
const CREDENTIAL_KINDS = [
  { apiVersion: 'v1', kind: 'Secret' },
  { apiVersion: 'v1', kind: 'ConfigMap' },
  { apiVersion: 'v1', kind: 'Pod' },
];

/**
 * Deletes every object that holds or uses the credentials on both sides: the destination's server
 * objects (role server: TLS and rsync Secrets, ConfigMaps, server pod) and the source's client
 * objects, credentials Secret and probe pod; waits until the pods are gone.
 */
export async function deleteCredentialObjects(source: KubeClient, destination: KubeClient, nt: NamespaceTransfer, signal?: AbortSignal): Promise<void> {
  const mid = nt.migrationId;
  const sel = (role: string) => selectorString({ ...migrationSelector(mid), [LABELS.role]: role });
  await destination.deleteBySelector(CREDENTIAL_KINDS, nt.destinationNamespace, sel('server'));
  await source.deleteBySelector(CREDENTIAL_KINDS, nt.sourceNamespace, sel('client'));
  await source.deleteBySelector(CREDENTIAL_KINDS, nt.sourceNamespace, sel(CREDENTIALS_ROLE));
  await source.delete(podRef(nt.sourceNamespace, probePodName(mid)));
  await waitFor(
    async () => {
      const left = [
        ...(await destination.list({ apiVersion: 'v1', kind: 'Pod' }, nt.destinationNamespace, { labelSelector: sel('server') })),
        ...(await source.list({ apiVersion: 'v1', kind: 'Pod' }, nt.sourceNamespace, { labelSelector: sel('client') })),
        ...((await source.get(podRef(nt.sourceNamespace, probePodName(mid)))) ? [1] : []),
      ];
      return left.length === 0;
    },
    { timeoutSeconds: 120, intervalSeconds: 2, signal, description: 'the old transfer pods to be deleted' },
  );
}

/**
 * The namespace's credentials: read back from both clusters when usable (see module docstring),
 * else made afresh (after deleting every old credential object) and stored: the credentials Secret in
 * the source now, the server TLS Secret by `ensureServer` with the other destination objects.
 * Returns whether they were created by this call.
 */
export async function ensureCredentials(
  source: KubeClient,
  destination: KubeClient,
  nt: NamespaceTransfer,
  address: EndpointAddress,
  options: { logger?: Logger; signal?: AbortSignal } = {},
): Promise<{ credentials: TransferCredentials; created: boolean }> {
  const log = options.logger ?? silentLogger;
  const mid = nt.migrationId;
  const [serverSecret, clientSecret] = await Promise.all([
    destination.get<V1Secret>(secretRef(nt.destinationNamespace, serverTLSSecretName(mid))),
    source.get<V1Secret>(secretRef(nt.sourceNamespace, credentialsSecretName(mid))),
  ]);
  let reason = 'none exist yet';
  if (serverSecret && clientSecret) {
    const { credentials, problem } = credentialsFromSecrets(secretValues(serverSecret), secretValues(clientSecret), address);
    if (credentials) {
      log.info({ namespace: nt.destinationNamespace }, 'reusing the transfer credentials stored in both clusters');
      return { credentials, created: false };
    }
    reason = problem!;
  } else if (serverSecret || clientSecret) {
    reason = `the ${serverSecret ? 'source credentials' : 'destination server TLS'} Secret is missing`;
  }
  if (serverSecret || clientSecret) {
    log.warn({ namespace: nt.destinationNamespace, reason }, 'transfer credentials unusable; deleting both sides and making new ones');
    await deleteCredentialObjects(source, destination, nt, options.signal);
  }
  const credentials = createTransferCredentials(mid, nt.endpoint, address, CREDENTIALS_VALIDITY_DAYS);
  await source.createOrAdopt(credentialsSecret(mid, nt.sourceNamespace, credentials));
  log.info({ namespace: nt.destinationNamespace, notAfter: credentials.certificates.notAfter }, 'new transfer credentials created');
  return { credentials, created: true };
}

/** What `ensureOwned` did. */
export type EnsureAction = 'created' | 'adopted' | 'replaced';

/** The `data` map of a Secret/ConfigMap as a canonical string (the API server returns keys sorted). */
function dataOf(o: KubernetesObject): string {
  const data = (o as { data?: Record<string, string> }).data ?? {};
  return JSON.stringify(Object.keys(data).sort().map((k) => [k, data[k]]));
}

/**
 * createOrAdopt, plus: an adopted Ferry Secret or ConfigMap whose `data` differs from `obj` (e.g.
 * a stunnel config for an endpoint address that changed) is deleted and created again.
 */
export async function ensureOwned(client: KubeClient, obj: KubernetesObject): Promise<EnsureAction> {
  const { object, created } = await client.createOrAdopt(obj);
  if (created) return 'created';
  if ((obj.kind === 'Secret' || obj.kind === 'ConfigMap') && dataOf(object) !== dataOf(obj)) {
    await client.delete(object);
    await waitFor(async () => !(await client.get(refOf(obj))), { timeoutSeconds: 60, intervalSeconds: 1, description: `${describeRef(obj)} to be deleted` });
    await client.createOrAdopt(obj);
    return 'replaced';
  }
  return 'adopted';
}

/** Options of `ensureServer`. */
export interface EnsureServerOptions {
  /** Seconds to wait for the server pod to be Ready (plan timeouts.serverReadySeconds). */
  timeoutSeconds: number;
  onTick?: (reason: string) => void;
  signal?: AbortSignal;
  logger?: Logger;
}

/**
 * Creates (or adopts) the destination's Secrets, ConfigMaps, PodDisruptionBudget, the server pod's
 * template (server.ts) and the server pod, in order, and waits until the server pod is Ready. A server
 * pod that is missing, ended (Failed/Succeeded, e.g. evicted), or was made before one of its
 * Secrets/ConfigMaps changed is (re)created (server.ts `ensureServerPod`).
 * @throws FerryError (config) for a pod that cannot start (image, configuration) or is not Ready in
 *   time; ConflictError when a foreign object holds a name.
 */
export async function ensureServer(destination: KubeClient, nt: NamespaceTransfer, credentials: TransferCredentials, options: EnsureServerOptions): Promise<void> {
  const objects = nt.destinationObjects(credentials);
  const pod = objects.find((o) => o.kind === 'Pod') as V1Pod;
  let changed = false;
  for (const o of [...objects.filter((x) => x.kind !== 'Pod'), serverTemplateConfigMap(nt.migrationId, pod)]) {
    const action = await ensureOwned(destination, o);
    if (action === 'replaced') changed = true;
  }
  await ensureServerPod(destination, pod, {
    timeoutSeconds: options.timeoutSeconds,
    replace: changed,
    ...(options.onTick ? { onTick: options.onTick } : {}),
    ...(options.signal ? { signal: options.signal } : {}),
    ...(options.logger ? { logger: options.logger } : {}),
  });
}

/** One sync of one PVC. */
export interface ClientTransferRequest {
  pvc: PVCInfo;
  address: EndpointAddress;
  final: boolean;
  pass: number;
}

/** Options of `runClientTransfer`. */
export interface ClientTransferOptions {
  /** Heartbeat: latest progress (undefined before the first progress line) and the pod phase. */
  onProgress?: (progress: TransferProgress | undefined, phase: string) => void;
  signal?: AbortSignal;
  logger?: Logger;
  /** Limit for the sync in seconds (plan timeouts.transferSeconds); default none. */
  timeoutSeconds?: number;
  /** Seconds between progress polls (default 5). */
  intervalSeconds?: number;
  /** Asked when `signal` aborts: true leaves the client pod running (the worker is shutting down, and
   * the next attempt of the sync re-attaches to the pod, which copies on meanwhile); false or absent
   * deletes it (a real cancellation: rollback). */
  keepPodOnAbort?: () => boolean;
  /** Bounds of a client pod that cannot start or keeps crashing (default DEFAULT_PENDING_LIMITS;
   * pendingSeconds from plan timeouts.podStartSeconds). */
  pendingLimits?: PendingLimits;
}

/** Deletes a pod and waits (up to 180 s) until it is gone, explaining what holds it. */
export async function deletePodAndWait(client: KubeClient, namespace: string, name: string, signal?: AbortSignal): Promise<void> {
  const ref = podRef(namespace, name);
  if (!(await client.delete(ref))) return;
  let seen: V1Pod | undefined;
  await waitFor(
    async () => {
      seen = await client.get<V1Pod>(ref);
      return !seen;
    },
    {
      timeoutSeconds: 180,
      intervalSeconds: 2,
      signal,
      description: `pod ${namespace}/${name} to be deleted`,
      explain: () => (seen ? `still there: ${describePodState(seen)}${seen.metadata?.finalizers?.length ? `; finalizers ${seen.metadata.finalizers.join(', ')}` : ''}${seen.spec?.nodeName ? `; on node ${seen.spec.nodeName} (is its kubelet down?)` : ''}` : undefined),
    },
  );
}

/**
 * Runs (or re-attaches to) the client pod of one sync of one PVC, follows it, deletes it and returns
 * the result.
 *
 * The client pod's name is per PVC (names.ts); its label `ferry.dev/pass` and annotation
 * `ferry.dev/sync` say which sync it performs. An existing pod for the same pass and kind of sync is
 * followed (a retried activity re-attaches instead of starting a second writer; a pod that already
 * finished yields its result); a pod of another pass is deleted first.
 * @throws FerryError classified by `transferVerdict` (transient, noSpace, auth, config, partial,
 *   fatal); AbortedError when cancelled (the pod is deleted first, unless `keepPodOnAbort` says the
 *   worker is shutting down).
 */
export async function runClientTransfer(
  source: KubeClient,
  nt: NamespaceTransfer,
  credentials: TransferCredentials,
  req: ClientTransferRequest,
  options: ClientTransferOptions = {},
): Promise<TransferResult> {
  const log = options.logger ?? silentLogger;
  const ns = nt.sourceNamespace;
  const name = nt.clientPodName(req.pvc.name);
  const sync = req.final ? 'final' : 'stage';
  const objects = nt.sourceObjects(req.pvc.name, req.address, credentials, { final: req.final });
  const pod = structuredClone(objects.find((o) => o.kind === 'Pod')) as V1Pod;
  pod.metadata!.labels = { ...pod.metadata!.labels, [PASS_LABEL]: String(req.pass) };

  const existing = await source.get<V1Pod>(podRef(ns, name));
  let reattached = false;
  if (existing) {
    const samePass = existing.metadata?.labels?.[PASS_LABEL] === String(req.pass) && existing.metadata?.annotations?.[SYNC_ANNOTATION] === sync && !existing.metadata?.deletionTimestamp;
    if (samePass) {
      reattached = true;
      log.info({ pod: `${ns}/${name}`, pass: req.pass, phase: existing.status?.phase }, 're-attaching to the client pod of this sync');
    } else {
      log.info({ pod: `${ns}/${name}`, pass: existing.metadata?.labels?.[PASS_LABEL] }, 'deleting the client pod of an earlier sync');
      await deletePodAndWait(source, ns, name, options.signal);
    }
  }
  let uid = existing?.metadata?.uid;
  if (!reattached) {
    for (const o of objects) if (o.kind !== 'Pod') await ensureOwned(source, o);
    const { object, created } = await source.createOrAdopt(pod);
    uid = object.metadata?.uid;
    log.info({ pod: `${ns}/${name}`, pass: req.pass, sync, created }, created ? 'client pod created' : 'client pod of this migration already exists (created concurrently); following it');
  }

  const started = existing && reattached && existing.metadata?.creationTimestamp ? new Date(existing.metadata.creationTimestamp as unknown as string | Date).getTime() : Date.now();
  const limit = options.timeoutSeconds !== undefined ? new AbortController() : undefined;
  const timer = limit ? setTimeout(() => limit.abort(), Math.max(0, options.timeoutSeconds! * 1000 - (Date.now() - started))) : undefined;
  const signal = limit && options.signal ? AbortSignal.any([options.signal, limit.signal]) : (limit?.signal ?? options.signal);
  try {
    const finished = await followTransferPod(source, {
      namespace: ns,
      name,
      engine: nt.transfer.type,
      intervalSeconds: options.intervalSeconds,
      onProgress: options.onProgress,
      signal,
      ...(options.pendingLimits ? { pendingLimits: options.pendingLimits } : {}),
      ...(uid ? { uid } : {}),
    });
    const durationSeconds = Math.round((Date.now() - started) / 1000);
    log.info({ pod: `${ns}/${name}`, exitCode: finished.exitCode, durationSeconds }, 'client transfer ended');
    await source.delete(podRef(ns, name), undefined, uid).catch(() => undefined);
    const sc = pod.spec?.securityContext;
    return transferVerdict(finished, {
      engine: nt.transfer.type,
      final: req.final,
      durationSeconds,
      client: { root: sc?.runAsUser === 0, ...(sc?.runAsUser !== undefined ? { uid: sc.runAsUser } : {}), ...(sc?.runAsGroup !== undefined ? { gid: sc.runAsGroup } : {}) },
    });
  } catch (err) {
    const timedOut = limit?.signal.aborted && !options.signal?.aborted;
    if (options.signal?.aborted && options.keepPodOnAbort?.()) {
      log.info({ pod: `${ns}/${name}`, pass: req.pass }, 'worker shutting down: leaving the client pod running for the next attempt to re-attach to');
      throw err;
    }
    // Whatever else ended the follow (cancel, stuck pod, time limit), this attempt's pod goes; the
    // uid precondition keeps a replacement made by another attempt.
    await source.delete(podRef(ns, name), undefined, uid).catch(() => undefined);
    if (timedOut) throw new FerryError('transient', `the sync of PVC ${ns}/${req.pvc.name} exceeded the plan's transferSeconds (${options.timeoutSeconds} s); the next attempt resumes from what was copied`);
    throw err;
  } finally {
    if (timer) clearTimeout(timer);
  }
}

/** Options of `probeConnectivity`. */
export interface ProbeOptions {
  /** Overall limit (default 300 s). */
  timeoutSeconds?: number;
  /** Bounds of a probe pod that cannot start or keeps crashing (default DEFAULT_PENDING_LIMITS). */
  pendingLimits?: PendingLimits;
  onTick?: (reason: string) => void;
  signal?: AbortSignal;
  logger?: Logger;
}

/** Exit codes of the probe script. */
export const PROBE_EXIT = { ok: 0, noLocalPort: 35, noGreeting: 4, badGreeting: 5, noTcp: 6 } as const;

/**
 * The probe script: reads the transfer server's greeting at host:port (the local transport port);
 * `tcpOnly` (null transport: the engine encrypts itself) only opens the TCP connection.
 */
export function probeScript(engine: TransferType, host: string, port: number, tcpOnly = false): string {
  if (tcpOnly) return `exec 3<>/dev/tcp/${host}/${port} || { echo "ferry-probe: cannot connect to ${host}:${port}"; exit ${PROBE_EXIT.noTcp}; }\necho "ferry-probe: OK, TCP connection to ${host}:${port} established"`;
  // The engine's server speaks first; its greeting is the engine's knowledge (TransferEngine.greeting).
  const expect = transferEngine(engine).greeting;
  return [
    `exec 3<>/dev/tcp/${host}/${port} || { echo "ferry-probe: cannot connect to ${host}:${port}"; exit ${PROBE_EXIT.noTcp}; }`,
    `if ! IFS= read -r -t 15 line <&3; then echo "ferry-probe: no greeting from the transfer server within 15 s (the connection was closed or stayed silent)"; exit ${PROBE_EXIT.noGreeting}; fi`,
    'line=${line%$\'\\r\'}',
    `if [[ $line == ${expect} ]]; then echo "ferry-probe: OK, server says: \${line:0:60}"; exit 0; fi`,
    `echo "ferry-probe: unexpected greeting: \${line:0:80}"; exit ${PROBE_EXIT.badGreeting}`,
  ]
    .filter((l) => l !== '')
    .join('\n');
}

/**
 * Pure: what a failed probe means, from its exit code and the transport (stunnel) log.
 * TLS refusals are `auth`; unreachable addresses and silent servers are `transient`.
 */
export function explainProbeFailure(exitCode: number, probeLog: string, transportLog: string, address: EndpointAddress): FerryError {
  const at = `${address.host}:${address.port}${address.sni ? ` (SNI ${address.sni})` : ''}`;
  const t = transportLog;
  if (/certificate verify failed|unknown ca|bad certificate|certificate required|peer did not return a certificate|CERT_CHECK|certificate unknown|wrong version number|handshake failure/i.test(t)) {
    return new FerryError('auth', `the TLS handshake with ${at} failed (${firstMatch(t, /.*(certificate|handshake|wrong version).*/i)}): the server presented a certificate the client does not trust or refused the client certificate. If a proxy or router terminates TLS in between, use a passthrough Route/Ingress or a Service endpoint; otherwise delete the source credentials Secret (ferry-<key>-credentials) so that the next sync renews both sides, or run 'ferry cancel' on the migration and migrate again`);
  }
  if (/Connection refused/i.test(t)) return new FerryError('transient', `the endpoint ${at} refused the TCP connection: nothing listens there (server pod not running, wrong port, or NodePort/LoadBalancer not forwarding)`);
  if (/No route to host|Network is unreachable|timed out|Connection timed out/i.test(t)) {
    return new FerryError('transient', `no route from the source cluster to the endpoint ${at} (${firstMatch(t, /.*(No route|unreachable|timed out).*/i)}): a firewall, a network policy or an address that is not routable from the source (e.g. a node InternalIP); check endpoint.type`);
  }
  if (/Name or service not known|Temporary failure in name resolution|getaddrinfo|Name does not resolve/i.test(t)) {
    return new FerryError('transient', `the source cluster cannot resolve the endpoint host ${address.host}: add a DNS record or use an endpoint that publishes an IP`);
  }
  if (/Connection reset by peer/i.test(t)) return new FerryError('transient', `the connection to ${at} was reset: something between the clusters (proxy, router without TLS passthrough) drops it`);
  if (exitCode === PROBE_EXIT.noLocalPort) return new FerryError('config', `the probe's transport (stunnel) never listened locally: check the probe pod's stunnel container (${firstLine(t)})`);
  if (exitCode === PROBE_EXIT.noTcp) return new FerryError('transient', `cannot open a TCP connection to ${at}: ${firstLine(probeLog)}`);
  if (exitCode === PROBE_EXIT.badGreeting) return new FerryError('config', `something else answers at ${at}: ${firstLine(probeLog)} (is the endpoint routed to Ferry's server?)`);
  return new FerryError('transient', `the transfer server at ${at} did not answer through the tunnel (exit ${exitCode}: ${firstLine(probeLog)}); the TLS tunnel may be up but the daemon not answering, check the server pod${t ? `; transport log: ${firstLine(t)}` : ''}`);
}

function firstMatch(text: string, re: RegExp): string {
  return (re.exec(text)?.[0] ?? '').trim().slice(0, 200);
}

function firstLine(text: string): string {
  return (text.split('\n').map((l) => l.trim()).filter((l) => l && !l.startsWith('ferry: ') ).slice(-3).join(' | ') || 'no output').slice(0, 300);
}

/**
 * The probe pod: the client pod of the namespace's first PVC with the transfer replaced by
 * `probeScript` (same image, same transport sidecar, Secrets and security context), without the PVC
 * volume or node pinning. Pure.
 */
export function buildProbePod(nt: NamespaceTransfer, credentials: TransferCredentials, address: EndpointAddress): { objects: KubernetesObject[]; pod: V1Pod } {
  const first = nt.volumes[0]!;
  const all = nt.sourceObjects(first.sourcePVC, address, credentials, { final: false });
  const pod = structuredClone(all.find((o) => o.kind === 'Pod')) as V1Pod;
  const objects = all.filter((o) => o.kind !== 'Pod');
  const name = probePodName(nt.migrationId);
  pod.metadata = { name, namespace: nt.sourceNamespace, labels: objectLabels(nt.migrationId, 'probe') };
  const spec = pod.spec!;
  delete spec.affinity;
  delete spec.nodeName;
  spec.volumes = (spec.volumes ?? []).filter((v) => !v.persistentVolumeClaim);
  const transfer = spec.containers[0]!;
  transfer.volumeMounts = (transfer.volumeMounts ?? []).filter((m) => spec.volumes!.some((v) => v.name === m.name));
  const direct = nt.transport.direct;
  const target = direct ? { host: address.host, port: address.port } : { host: '127.0.0.1', port: nt.transfer.port };
  const script = probeScript(nt.transfer.type, target.host, target.port, direct);
  const legacy = spec.containers.length > 1;
  transfer.name = 'probe';
  transfer.command = ['/bin/bash', '-c', transferClientScript(['/bin/bash', '-c', script], { waitPort: legacy ? target.port : undefined, waitSeconds: 60, signalDone: legacy })];
  spec.activeDeadlineSeconds = 300;
  return { objects, pod };
}

/**
 * From the source namespace, opens TCP + TLS (client certificate) to the endpoint and reads the
 * transfer server's greeting (rsync "@RSYNCD:"; the SSH identification line for rclone). With the null
 * transport only TCP reachability is checked (TLS is the engine's own). The probe pod is deleted at
 * the end whatever happened.
 * @throws FerryError explaining the failure (see explainProbeFailure), or podTrouble's.
 */
export async function probeConnectivity(
  source: KubeClient,
  nt: NamespaceTransfer,
  credentials: TransferCredentials,
  address: EndpointAddress,
  options: ProbeOptions = {},
): Promise<{ message: string }> {
  const log = options.logger ?? silentLogger;
  const ns = nt.sourceNamespace;
  const { objects, pod } = buildProbePod(nt, credentials, address);
  const name = pod.metadata!.name!;
  await deletePodAndWait(source, ns, name, options.signal);
  for (const o of objects) await ensureOwned(source, o);
  await source.createOrAdopt(pod);
  try {
    let phase = 'Pending';
    let state = 'not observed yet';
    const done = await waitFor(
      async () => {
        const p = await source.get<V1Pod>(podRef(ns, name));
        if (!p) throw new FerryError('transient', `probe pod ${ns}/${name} disappeared`);
        phase = p.status?.phase ?? 'Pending';
        const st = transferContainerState(p);
        if (st.state === 'terminated') return { pod: p, exitCode: st.exitCode };
        state = describePodState(p);
        const created = p.metadata?.creationTimestamp ? new Date(p.metadata.creationTimestamp as unknown as string | Date).getTime() : Date.now();
        const trouble = await diagnosePod(source, p, (Date.now() - created) / 1000, options.pendingLimits);
        if (trouble) throw trouble;
        return undefined;
      },
      {
        timeoutSeconds: options.timeoutSeconds ?? 300,
        intervalSeconds: 2,
        signal: options.signal,
        onTick: () => options.onTick?.(`probe pod ${phase}`),
        description: `probe pod ${ns}/${name} to finish`,
        explain: () => `last seen: ${state}`,
      },
    );
    const probeLog = await readLogTail(source, ns, name, transferContainerName(done.pod), 50, 16 * 1024).catch(() => '');
    const transport = done.pod.spec?.containers?.[1]?.name ?? done.pod.spec?.initContainers?.[0]?.name;
    const transportLog = transport ? await readLogTail(source, ns, name, transport, 100, 32 * 1024).catch(() => '') : '';
    if (done.exitCode !== 0) throw explainProbeFailure(done.exitCode, probeLog, transportLog, address);
    const message = (/ferry-probe: OK.*/.exec(probeLog)?.[0] ?? 'ferry-probe: OK') + (nt.transport.direct ? ' (TCP only: the null transport leaves TLS to the engine)' : '');
    log.info({ namespace: ns, address, message }, 'connectivity probe succeeded');
    return { message };
  } finally {
    await source.delete(podRef(ns, name), 0).catch(() => undefined);
  }
}
