/**
 * The stunnel transport: mutual TLS between the source's client pod and the destination's server pod.
 * Config files come from src/statetransfer/transport/stunnel/config.ts.
 */
import type { V1Volume, V1VolumeMount } from '@kubernetes/client-node';
import { configMap, deepFreeze } from '../../objects';
import type { PodParts, Transport, TransportClientContext, TransportServerContext } from '../../types';
import { renderStunnelClientConf, renderStunnelServerConf, STUNNEL_PATHS } from './config';

export { renderStunnelClientConf, renderStunnelServerConf, STUNNEL_PATHS } from './config';

/** Options of the stunnel transport (none yet; reserved for an HTTP CONNECT proxy). */
export interface StunnelTransportOptions {
  /** Container command for stunnel (default ['stunnel']; Debian names the binary stunnel4 too). */
  binary?: string;
}

const CONFIG_VOLUME = 'ferry-stunnel-config';
const TLS_VOLUME = 'ferry-tls';

function parts(name: string, ctxNs: string, labels: Readonly<Record<string, string>>, conf: string, tlsSecretName: string, binary: string, readyPort: number): PodParts {
  const volumes: V1Volume[] = [
    { name: CONFIG_VOLUME, configMap: { name, defaultMode: 0o444 } },
    // 0444: the transport may run as any non-root UID without an fsGroup (restricted mode); the key
    // is copied at start to a 0400 file of the container's own UID (STUNNEL_PATHS.key).
    { name: TLS_VOLUME, secret: { secretName: tlsSecretName, defaultMode: 0o444 } },
  ];
  const volumeMounts: V1VolumeMount[] = [
    { name: CONFIG_VOLUME, mountPath: STUNNEL_PATHS.configDir, readOnly: true },
    { name: TLS_VOLUME, mountPath: STUNNEL_PATHS.tlsDir, readOnly: true },
  ];
  return {
    processes: [
      {
        name: 'stunnel',
        command: [binary, STUNNEL_PATHS.configFile],
        volumeMounts,
        readyPort,
        prepare: `install -m 0400 ${STUNNEL_PATHS.mountedKey} ${STUNNEL_PATHS.key}`,
      },
    ],
    volumes,
    objects: [configMap(name, ctxNs, labels, { 'stunnel.conf': conf })],
  };
}

/** Builds the stunnel transport. Immutable. */
export function createStunnelTransport(options: StunnelTransportOptions = {}): Transport {
  const binary = options.binary ?? 'stunnel';
  const transport: Transport = {
    type: 'stunnel',
    direct: false,
    server(ctx: TransportServerContext): PodParts {
      const conf = renderStunnelServerConf(ctx.listenPort, ctx.transferPort);
      return parts(ctx.objectName('stunnel'), ctx.namespace, ctx.labels, conf, ctx.tlsSecretName, binary, ctx.listenPort);
    },
    client(ctx: TransportClientContext): PodParts {
      const conf = renderStunnelClientConf(ctx.localPort, ctx.connect);
      return parts(ctx.objectName('stunnel'), ctx.namespace, ctx.labels, conf, ctx.tlsSecretName, binary, ctx.localPort);
    },
  };
  return deepFreeze(transport);
}
