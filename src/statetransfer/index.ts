/**
 * Ferry's state-transfer library: everything needed to move one namespace's PVC data between two
 * clusters, usable without Temporal. See types.ts for the layer contracts and namespace-transfer.ts
 * for how they compose.
 */
export * from './types';
export * from './names';
export { createNamespaceTransfer, createTransferCredentials, SOURCE_PATH, DESTINATION_ROOT } from './namespace-transfer';
export type { NamespaceTransfer, NamespaceTransferOptions, SyncOptions, TransferCredentials, VolumePair } from './namespace-transfer';
export { createMigrationCertificates, clientSecretData, serverSecretData, TLS_KEYS } from './tls/certificates';
export type { MigrationCertificates, PEMCertificate, CertificateOptions } from './tls/certificates';
export { createEndpoint } from './endpoint';
export type { EndpointOptions } from './endpoint';
export { createStunnelTransport } from './transport/stunnel';
export { createNullTransport } from './transport/null';
export { createRsyncTransfer } from './transfer/rsync';
export { createRcloneTransfer } from './transfer/rclone';
export { validateRsyncOptions, rsyncClientArgs, RsyncOptionsError } from './transfer/rsync/options';
export { RsyncOutputParser, parseProgress2Line, parseRsyncOutput } from './transfer/rsync/parser';
export { classifyRsyncExit, RSYNC_EXIT_MEANINGS } from './transfer/rsync/exit-codes';
export { buildClientPod, buildServerPod } from './pods/pods';
export type { ClientLifecycle } from './pods/pods';
export { parseTerminationMessage } from './pods/lifecycle';
export { podSecurityContext, containerSecurityContext, PRESERVE_OWNERSHIP_CAPABILITIES } from './pods/security';
