/**
 * The null transport: adds nothing between the transfer client and the endpoint. Only for transfer
 * engines that authenticate and encrypt themselves (Transfer.selfEncrypting, e.g. rclone serving
 * SFTP over SSH); the namespace builder refuses it for rsync unless insecure transfers are
 * explicitly allowed.
 */
import { deepFreeze } from '../../objects';
import type { PodParts, Transport } from '../../types';

/** Builds the null transport. Immutable. */
export function createNullTransport(): Transport {
  return deepFreeze<Transport>({
    type: 'null',
    direct: true,
    server: (): PodParts => ({ processes: [], volumes: [], objects: [] }),
    client: (): PodParts => ({ processes: [], volumes: [], objects: [] }),
  });
}
