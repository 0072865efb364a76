/**
 * The transfer's credentials in the clusters. They live only in Secrets, never in workflow state:
 * - destination: the server TLS Secret `ferry-<key>-srv-tls` (server certificate + key, CA
 *   certificate), made by namespace-transfer.ts `destinationObjects`;
 * - source: the credentials Secret `ferry-<key>-credentials` (client certificate + key, CA
 *   certificate, transfer password), made here; client pods and agents get their Secrets from it.
 * The CA private key is discarded right after signing. On a retry both Secrets are read back; when
 * either is missing, they disagree (different CA), the server certificate no longer names the
 * endpoint address, or it expires within a day, every credential Secret of both sides, the server
 * pod and any client or probe pod are deleted and everything is made afresh (a client certificate
 * cannot be re-issued without the discarded CA key). Before every sync, server-sync.ts renews
 * credentials that expire within a week (both sides, same password).
 */
import { probePodName } from '../statetransfer/probe';
import { migrationSelector } from '../statetransfer/names';
import { serverTLSSecretName } from '../statetransfer/namespace-transfer';

import { X509Certificate } from 'node:crypto';
import { isIP } from 'node:net';
import type { V1Secret } from '@kubernetes/client-node';
import type { EndpointAddress } from '../core/types';
import { createTransferCredentials, type NamespaceTransfer, type TransferCredentials } from '../statetransfer/namespace-transfer';
import { LABELS, objectLabels, objectName } from '../statetransfer/names';
import { secret, secretValues } from '../statetransfer/objects';
import { KeyPairPool, TLS_KEYS } from '../statetransfer/tls/certificates';
import { selectorString, waitFor, type KubeClient } from '../k8s/client';
import { FerryError, errorMessage } from '../core/errors';
import { silentLogger, type Logger } from '../core/log';

/** Object role of the source credentials Secret. */
export const CREDENTIALS_ROLE = 'credentials';
/** Key of the transfer password in the credentials Secret. */
export const PASSWORD_KEY = 'password';
/** Credentials expiring sooner than this are replaced by createServer (seconds). */
export const CREDENTIALS_MIN_REMAINING_SECONDS = 24 * 3600;
/** Validity of fresh credentials in days (long enough for a warm migration with manual cutover). */
export const CREDENTIALS_VALIDITY_DAYS = 30;
/** The key pairs of new transfer credentials (a CA, the server, the client), made ahead of need: the
 * worker fills it when it starts (src/worker.ts), and each ensureCredentials that makes credentials
 * takes three. */
export const TRANSFER_KEY_POOL = new KeyPairPool(3);

/** Name of the source's credentials Secret. */
export function credentialsSecretName(migrationId: string): string {
  return objectName(migrationId, CREDENTIALS_ROLE);
}

function secretRef(namespace: string, name: string) {
  return { apiVersion: 'v1', kind: 'Secret', namespace, name };
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
  const credentials = createTransferCredentials(mid, nt.endpoint, address, CREDENTIALS_VALIDITY_DAYS, await TRANSFER_KEY_POOL.take(3));
  await source.createOrAdopt(credentialsSecret(mid, nt.sourceNamespace, credentials));
  log.info({ namespace: nt.destinationNamespace, notAfter: credentials.certificates.notAfter }, 'new transfer credentials created');
  return { credentials, created: true };
}

function podRef(namespace: string, name: string) {
  return { apiVersion: 'v1', kind: 'Pod', namespace, name };
}
