/**
 * The connectivity probe of a namespace's endpoint, from the source namespace, in a probe pod (the
 * per-sync mode; warm agents probe through an exec instead, agent.ts `probeThroughAgent`). The pod and
 * the script are built by statetransfer/probe.ts.
 */
import { explainProbeFailure, probeScript } from '../statetransfer/probe';
import { deletePodAndWait } from './client-run';
import { ensureOwned } from './server';

import type { V1Pod } from '@kubernetes/client-node';
import type { EndpointAddress } from '../core/types';
import { type NamespaceTransfer, type TransferCredentials } from '../statetransfer/namespace-transfer';
import { waitFor, type KubeClient } from '../k8s/client';
import { FerryError } from '../core/errors';
import { silentLogger, type Logger } from '../core/log';
import { describePodState, diagnosePod, readLogTail, transferContainerName, transferContainerState, type PendingLimits } from './follow';

function podRef(namespace: string, name: string) {
  return { apiVersion: 'v1', kind: 'Pod', namespace, name };
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
  // The probe reads the greeting at the transport's local port, or (null transport) opens TCP to the
  // endpoint itself.
  const direct = nt.transport.direct;
  const target = direct ? { host: address.host, port: address.port } : { host: '127.0.0.1', port: nt.transfer.port };
  const all = nt.probeObjects(address, credentials, probeScript(nt.transfer.type, target.host, target.port, direct));
  const pod = all.at(-1) as V1Pod;
  const objects = all.slice(0, -1);
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
    const probeContainer = transferContainerName(done.pod);
    const transport = [...(done.pod.spec?.initContainers ?? []), ...(done.pod.spec?.containers ?? [])].find((c) => c.name !== probeContainer)?.name;
    const transportLog = transport ? await readLogTail(source, ns, name, transport, 100, 32 * 1024).catch(() => '') : '';
    if (done.exitCode !== 0) throw explainProbeFailure(done.exitCode, probeLog, transportLog, address);
    const message = (/ferry-probe: OK.*/.exec(probeLog)?.[0] ?? 'ferry-probe: OK') + (nt.transport.direct ? ' (TCP only: the null transport leaves TLS to the engine)' : '');
    log.info({ namespace: ns, address, message }, 'connectivity probe succeeded');
    return { message };
  } finally {
    await source.delete(podRef(ns, name), 0).catch(() => undefined);
  }
}
