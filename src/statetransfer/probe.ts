/**
 * The connectivity probe: a script that reads the transfer server's greeting through the transport,
 * what its exit codes mean, and the probe pod, built for its purpose (the transport client and the
 * script; no PVC, no node pinning) by NamespaceTransfer.probeObjects. Pure.
 */
import { FerryError } from '../core/errors';
import type { EndpointAddress } from '../core/types';
import { objectName } from './names';
import { transferEngine } from './registry';
import type { TransferType } from './types';

/** Name of the connectivity probe pod. */
export function probePodName(migrationId: string): string {
  return objectName(migrationId, 'probe');
}

/** Name of the probe pod's container that runs the probe script. */
export const PROBE_CONTAINER = 'probe';

/** The probe pod's limit on its own run (activeDeadlineSeconds). */
export const PROBE_POD_DEADLINE_SECONDS = 300;

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
 * Pure: whether a failed probe's transport log says the endpoint refused the connection, which right
 * after the server became Ready is a Service's forwarding (kube-proxy's rules, a load balancer's
 * health check) that has not caught up yet: worth probing again a moment later. A connect that times
 * out (a firewall that drops) or a TLS refusal is not.
 */
export function refusedByEndpoint(transportLog: string): boolean {
  return /Connection refused/i.test(transportLog);
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
  if (refusedByEndpoint(t)) return new FerryError('transient', `the endpoint ${at} refused the TCP connection: nothing listens there (server pod not running, wrong port, or NodePort/LoadBalancer not forwarding)`);
  // stunnel 5.68 reports a connect that got no answer (a firewall that drops) as "s_poll_wait
  // <host:port>: TIMEOUTconnect exceeded" only, without "timed out"
  if (/No route to host|Network is unreachable|timed out|Connection timed out|TIMEOUTconnect exceeded/i.test(t)) {
    return new FerryError('transient', `no route from the source cluster to the endpoint ${at} (${firstMatch(t, /.*(No route|unreachable|timed out|TIMEOUTconnect exceeded).*/i)}): a firewall, a network policy or an address that is not routable from the source (e.g. a node InternalIP); check endpoint.type`);
  }
  if (/Name or service not known|Temporary failure in name resolution|getaddrinfo|Name does not resolve/i.test(t)) {
    return new FerryError('transient', `the source cluster cannot resolve the endpoint host ${address.host}: add a DNS record or use an endpoint that publishes an IP`);
  }
  if (/Connection reset by peer/i.test(t)) return new FerryError('transient', `the connection to ${at} was reset: something between the clusters (proxy, router without TLS passthrough) drops it`);
  if (exitCode === PROBE_EXIT.noLocalPort) return new FerryError('config', `the probe's transport (stunnel) never listened locally: check the stunnel container of the probe pod or transfer agent (${firstLine(t)})`);
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
