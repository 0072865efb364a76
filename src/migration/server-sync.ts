/**
 * Before and after every sync (the runTransfer activity): the destination's transfer server and the
 * credentials both sides hold, made right again whatever happened to them since createServer.
 *
 * Before a sync (`ensureServerForSync`):
 * - credentials: read back from both clusters (credentials.ts `credentialsFromSecrets`). When they
 *   expire within RENEW_BEFORE_SECONDS (a long warm migration), or the destination's server TLS Secret
 *   is gone or disagrees with the source's, new certificates (a new CA) are made for both sides and the
 *   server pod is restarted on them; the transfer password is kept (the server's rsync Secret holds it
 *   and cannot be rebuilt from one sync's request). Concurrent syncs of other PVCs renew once: the
 *   renewing sync deletes the source credentials Secret with a uid precondition, so exactly one wins;
 *   the others wait until both sides agree and the server was restarted. A renewal that died between
 *   deleting the source Secret and writing the new one (or a source Secret deleted by hand) leaves
 *   the source side without credentials: after MISSING_GRACE_SECONDS the next sync renews from the
 *   password the destination's server still holds (its transfer Secret, `serverPassword`).
 * - the server pod: server.ts `ensureServerPod` from the manifest createServer stored in the
 *   destination (kept if Ready, awaited if starting, recreated if deleted, evicted or ended).
 *
 * After a sync that failed at the connection level (`explainSyncFailure`): what happened to the server
 * during the sync goes into the error, and a lost server is recreated at once.
 */
import type { V1ConfigMap, V1Pod, V1Secret } from '@kubernetes/client-node';
import type { EndpointAddress, PVCInfo } from '../core/types';
import type { MigrationPlan, NamespaceMapping } from '../plan/schema';
import { createTransferCredentials, type NamespaceTransfer, type TransferCredentials } from '../statetransfer/namespace-transfer';
import { objectLabels } from '../statetransfer/names';
import { secret, secretValues } from '../statetransfer/objects';
import { generateKeyPairs, serverSecretData } from '../statetransfer/tls/certificates';
import { isTransient, sleep, type KubeClient } from '../k8s/client';
import { endpointTypeInUse } from './endpoint';
import { FerryError, errorMessage } from '../core/errors';
import { silentLogger, type Logger } from '../core/log';
import { ensureServerPod, podFromTemplate, serverChange, serverSnapshot, serverTemplateName, type ServerSnapshot } from './server';
import { namespaceTransferFor } from './compose';
import { serverTLSSecretName } from '../statetransfer/namespace-transfer';
import { ensureOwned } from './server';
import { credentialsFromSecrets, credentialsSecret, credentialsSecretName, CREDENTIALS_VALIDITY_DAYS, PASSWORD_KEY, readClientCredentials } from './credentials';

/** Credentials expiring sooner than this are renewed before a sync (seconds): longer than any one sync. */
export const RENEW_BEFORE_SECONDS = 7 * 24 * 3600;
/** How long a renewal by another sync may take before this one takes over (seconds). */
export const RENEWAL_GRACE_SECONDS = 180;
/** How long a missing source credentials Secret is awaited (a renewal replaces it) before it is an error (seconds). */
export const MISSING_GRACE_SECONDS = 30;
/** rsync exit codes that mean the connection to the server broke or never came up. */
export const CONNECTION_EXIT_CODES: readonly number[] = Object.freeze([5, 10, 12, 30, 35]);

/** The sync's identity: the runTransfer request's fields used here. */
export interface SyncTarget {
  migrationId: string;
  plan: MigrationPlan;
  namespace: Pick<NamespaceMapping, 'source' | 'destination'>;
  pvc: PVCInfo;
  address: EndpointAddress;
}

/** Options of `ensureServerForSync`. */
export interface SyncServerOptions {
  /** Seconds to wait for the server pod to be Ready (plan timeouts.serverReadySeconds). */
  timeoutSeconds: number;
  onTick?: (reason: string) => void;
  signal?: AbortSignal;
  logger?: Logger;
}

/** What `ensureServerForSync` found and did. */
export interface SyncServer {
  credentials: TransferCredentials;
  /** The server pod's manifest (undefined: a migration created before Ferry stored it). */
  template?: V1Pod;
  /** The server pod the sync is about to use. */
  before?: ServerSnapshot;
  /** What was done to the server or the credentials before the sync (for logs). */
  actions: string[];
}

const ref = (kind: string, namespace: string, name: string) => ({ apiVersion: 'v1', kind, namespace, name });
const createdAt = (o: { metadata?: { creationTimestamp?: unknown } } | undefined) => (o?.metadata?.creationTimestamp ? new Date(o.metadata.creationTimestamp as string | Date).getTime() : undefined);

/** The destination's server TLS Secret for `credentials` (what namespace-transfer.ts makes). */
function serverTLSSecret(migrationId: string, namespace: string, credentials: TransferCredentials): V1Secret {
  return secret(serverTLSSecretName(migrationId), namespace, objectLabels(migrationId, 'server'), serverSecretData(credentials.certificates));
}

interface StoredCredentials {
  credentials: TransferCredentials;
  /** When the server TLS Secret was written (ms): a server pod older than that serves old certificates. */
  since?: number;
  renewed: boolean;
}

/** A password no real transfer has (generatePassword makes 43 base64url characters): marks where the
 * password sits in the server's rendered transfer Secrets. */
const PASSWORD_MARKER = 'ferry-password-marker-0000000000';

/**
 * The transfer password the destination's server holds, read from its transfer Secret (rsync: the
 * daemon's secrets file `ferry:<password>` in `…-srv-rsyncd-secrets`; rclone: `password`). Which Secret
 * and key hold it, and in what text, is taken from the objects namespace-transfer.ts
 * `destinationObjects` renders (with a marker password), so this follows the transfer engine's own
 * layout. undefined when no such Secret exists or none holds a password in the expected form.
 */
export async function serverPassword(destination: KubeClient, nt: NamespaceTransfer): Promise<string | undefined> {
  const marker = { certificates: { ca: { certPem: '', keyPem: '' }, server: { certPem: '', keyPem: '' }, client: { certPem: '', keyPem: '' }, notAfter: '' }, password: PASSWORD_MARKER };
  for (const o of nt.destinationObjects(marker)) {
    if (o.kind !== 'Secret') continue;
    const rendered = secretValues(o as V1Secret);
    const holders = Object.entries(rendered).filter(([, v]) => v.includes(PASSWORD_MARKER));
    if (!holders.length) continue;
    const live = await destination.get<V1Secret>(ref('Secret', o.metadata!.namespace!, o.metadata!.name!));
    if (!live) continue;
    const values = secretValues(live);
    for (const [key, template] of holders) {
      const [before, after] = template.split(PASSWORD_MARKER, 2) as [string, string];
      const v = values[key];
      if (v === undefined || v.length <= before.length + after.length || !v.startsWith(before) || !v.endsWith(after)) continue;
      const password = v.slice(before.length, v.length - after.length);
      if (!/[\r\n\0]/.test(password)) return password;
    }
  }
  return undefined;
}

/**
 * The credentials of the sync, renewed first when needed (see module docstring). When the source
 * credentials Secret is missing for longer than MISSING_GRACE_SECONDS (a renewal that died half-way,
 * or deleted by hand) or holds no password, new certificates are made for both sides with the
 * password the destination's server holds (`serverPassword`).
 * @throws FerryError (config) when neither side holds the transfer password any more, or the
 *   endpoint is gone (the message names the operator's way out: restore and `ferry retry`, or
 *   `ferry cancel` and migrate again), or transient when another sync's renewal does not complete in time.
 */
async function syncCredentials(source: KubeClient, destination: KubeClient, t: SyncTarget, log: Logger, options: SyncServerOptions): Promise<StoredCredentials> {
  const signal = options.signal;
  const srcRef = ref('Secret', t.namespace.source, credentialsSecretName(t.migrationId));
  const dstRef = ref('Secret', t.namespace.destination, serverTLSSecretName(t.migrationId));
  const deadline = Date.now() + RENEWAL_GRACE_SECONDS * 1000;
  const missingDeadline = Date.now() + MISSING_GRACE_SECONDS * 1000;
  const sourceSecret = `${t.namespace.source}/${credentialsSecretName(t.migrationId)}`;
  const cancelAdvice = `run \`ferry cancel ${t.migrationId}\` (the namespace rolls back) and migrate it again`;
  const wayOut = `the transfer of namespace ${t.namespace.source} cannot go on: if the Secret was deleted by mistake and you can restore it, restore it and run \`ferry retry ${t.migrationId} --namespace ${t.namespace.source} --pvc ${t.pvc.name}\`; otherwise ${cancelAdvice}`;

  /** New certificates for both sides; `old` (the live source Secret, if any) is deleted first with a
   * uid precondition so that one concurrent sync renews. undefined: another sync got there first. */
  const renew = async (old: V1Secret | undefined, why: string): Promise<StoredCredentials | undefined> => {
    const type = await endpointTypeInUse(destination, t.plan, t.migrationId, t.namespace.destination);
    if (!type) throw new FerryError('config', `the transfer credentials must be renewed (${why}), but the endpoint of namespace ${t.namespace.destination} does not exist: the transfer of namespace ${t.namespace.source} cannot go on: ${cancelAdvice}`);
    const nt = namespaceTransferFor(t.plan, t.migrationId, t.namespace, [t.pvc], type);
    const kept = old ? secretValues(old)[PASSWORD_KEY] : undefined;
    const password = kept || (await serverPassword(destination, nt));
    if (!password) {
      throw new FerryError('config', `credentials Secret ${sourceSecret} ${old ? `is unusable (${why})` : 'is missing in the source cluster'} and the transfer server's Secrets in namespace ${t.namespace.destination} hold no transfer password to renew it from: ${wayOut}`);
    }
    // The new certificates are made first (key generation takes a fraction of a second), then the Secret read
    // above is deleted with a uid precondition: only one concurrent sync succeeds.
    const fresh = { ...createTransferCredentials(t.migrationId, nt.endpoint, t.address, CREDENTIALS_VALIDITY_DAYS, await generateKeyPairs(3)), password };
    if (old && !(await source.delete(old, undefined, old.metadata?.uid))) return undefined;
    log.warn({ reason: why, notAfter: fresh.certificates.notAfter, passwordFrom: kept ? 'source' : 'destination server' }, 'renewing the transfer certificates of both sides');
    const { created } = await source.createOrAdopt(credentialsSecret(t.migrationId, t.namespace.source, fresh));
    if (!created) return undefined;
    await ensureOwned(destination, serverTLSSecret(t.migrationId, t.namespace.destination, fresh));
    const written = createdAt(await destination.get<V1Secret>(dstRef));
    return { credentials: fresh, renewed: true, since: written ?? Date.now() };
  };

  for (let round = 0; ; round++) {
    if (round > 0) {
      options.onTick?.('waiting for the transfer credentials');
      await sleep(2000, signal);
    }
    const [s, d] = await Promise.all([source.get<V1Secret>(srcRef), destination.get<V1Secret>(dstRef)]);
    const now = Date.now();
    if (!s) {
      // Deleted by a renewing sync that is about to write the new one (the destination side is still
      // there); past the grace, a renewal that died half-way (or a deletion by hand): renew from the
      // password the destination's server holds.
      if (d && Date.now() < missingDeadline) continue;
      const renewed = await renew(undefined, `the source credentials Secret ${sourceSecret} is missing`);
      if (renewed) return renewed;
      continue;
    }
    const values = secretValues(s);
    const { credentials, problem } = credentialsFromSecrets(d ? secretValues(d) : undefined, values, t.address, now, RENEW_BEFORE_SECONDS);
    if (credentials && d) return { credentials, renewed: false, ...(createdAt(d) !== undefined ? { since: createdAt(d)! } : {}) };
    const why = d ? problem! : 'the destination server TLS Secret is missing';
    // Another sync renewed the source side moments ago and is writing the destination side: wait.
    const sourceNewer = (createdAt(s) ?? 0) > now - RENEWAL_GRACE_SECONDS * 1000 && (!d || (createdAt(d) ?? 0) < (createdAt(s) ?? 0));
    if (sourceNewer && Date.now() < deadline) {
      if (round === 0) log.info({ reason: why }, 'waiting for the credential renewal of another sync');
      continue;
    }
    if (round > 60) throw new FerryError('transient', `the transfer credentials could not be renewed (${why}): concurrent renewals kept conflicting; retrying`);
    // This sync renews.
    const renewed = await renew(s, why);
    if (renewed) return renewed;
  }
}

/**
 * Before a sync: the credentials (renewed when they expire within RENEW_BEFORE_SECONDS or the two
 * sides disagree), and the server pod Ready (recreated when deleted, evicted or ended; restarted when
 * older than its certificates). Without a stored server template (a migration set up by an older
 * Ferry) the server pod is left as it is; when an API server is unreachable, the sync goes ahead with
 * the source's credentials unchecked.
 * @throws FerryError as `syncCredentials` and server.ts `ensureServerPod`.
 */
export async function ensureServerForSync(source: KubeClient, destination: KubeClient, t: SyncTarget, options: SyncServerOptions): Promise<SyncServer> {
  const log = options.logger ?? silentLogger;
  try {
    return await ensureServerForSyncOrFail(source, destination, t, options, log);
  } catch (err) {
    // The data path does not need the API servers: when one is unreachable (network error, 5xx), the
    // sync goes ahead with the source's credentials, as before Ferry checked the server.
    if (err instanceof FerryError || !isTransient(err)) throw err;
    log.warn({ error: errorMessage(err) }, 'the transfer server could not be checked before the sync (API unreachable); syncing anyway');
    return { credentials: await readClientCredentials(source, t.migrationId, t.namespace.source), actions: [] };
  }
}

async function ensureServerForSyncOrFail(source: KubeClient, destination: KubeClient, t: SyncTarget, options: SyncServerOptions, log: Logger): Promise<SyncServer> {
  const cm = await destination.get<V1ConfigMap>(ref('ConfigMap', t.namespace.destination, serverTemplateName(t.migrationId)));
  const template = podFromTemplate(cm);
  if (!template) {
    // Without the manifest the server cannot be restarted on renewed certificates either.
    log.warn({ configMap: serverTemplateName(t.migrationId) }, 'no stored server pod template (migration set up by an older Ferry): the server pod is not checked before the sync');
    return { credentials: await readClientCredentials(source, t.migrationId, t.namespace.source), actions: [] };
  }
  const stored = await syncCredentials(source, destination, t, log, options);
  const actions: string[] = stored.renewed ? [`renewed the transfer certificates (valid until ${stored.credentials.certificates.notAfter})`] : [];
  const ensured = await ensureServerPod(destination, template, {
    timeoutSeconds: options.timeoutSeconds,
    ...(stored.since !== undefined ? { configSince: stored.since } : {}),
    ...(options.onTick ? { onTick: options.onTick } : {}),
    ...(options.signal ? { signal: options.signal } : {}),
    logger: log,
  });
  if (ensured.decision.action !== 'keep') actions.push(`${ensured.decision.reason}: ${ensured.created ? 'recreated it' : 'waited for it'}, Ready again`);
  if (actions.length) log.warn({ actions }, 'transfer server repaired before the sync');
  return { credentials: stored.credentials, template, ...(serverSnapshot(ensured.pod) ? { before: serverSnapshot(ensured.pod)! } : {}), actions };
}

/** Whether a sync error is a connection-level failure (CONNECTION_EXIT_CODES of rsync). */
export function isConnectionFailure(err: unknown): err is FerryError {
  const code = err instanceof FerryError ? err.details?.exitCode : undefined;
  return typeof code === 'number' && CONNECTION_EXIT_CODES.includes(code);
}

/**
 * After a failed sync: for a connection-level failure, what happened to the server during the sync
 * (server.ts `serverChange`) is added to the error, and a lost server is recreated now so that the
 * next attempt resumes at once. Other errors are returned unchanged. Never throws.
 */
export async function explainSyncFailure(err: unknown, destination: KubeClient, server: SyncServer, options: SyncServerOptions): Promise<unknown> {
  if (!isConnectionFailure(err) || !server.template) return err;
  const log = options.logger ?? silentLogger;
  const name = `${server.template.metadata!.namespace}/${server.template.metadata!.name}`;
  let note: string;
  try {
    const live = await destination.get<V1Pod>(ref('Pod', server.template.metadata!.namespace!, server.template.metadata!.name!));
    const change = serverChange(server.before, live, name);
    if (!change) {
      note = `the transfer server pod ${name} ran throughout the sync (same pod, no restart, Ready): the connection broke between the clusters (endpoint, network or transport); the next attempt resumes from partial files`;
    } else {
      try {
        const ensured = await ensureServerPod(destination, server.template, { ...options, logger: log });
        note = `${change}; ${ensured.created ? 'Ferry recreated it, ' : ''}Ready again at ${new Date().toISOString().replace(/\.\d{3}Z$/, 'Z')}: the next attempt resumes from partial files`;
      } catch (e) {
        note = `${change}; recreating it failed (${errorMessage(e)}): the next attempt recreates it again`;
      }
    }
  } catch (e) {
    note = `the transfer server pod ${name} could not be checked (${errorMessage(e)})`;
  }
  log.warn({ note }, 'sync failed at the connection level');
  const e = err as FerryError;
  // No `cause`: Temporal keeps a pending activity's last failure only up to 4 KiB (with stacks), and
  // the original message is part of this one.
  return new FerryError(e.category, `${e.message} Server: ${note}.`, e.details ? { details: e.details } : {});
}
