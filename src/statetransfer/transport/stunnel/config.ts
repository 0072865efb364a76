/**
 * stunnel configuration files for Ferry's mutual-TLS transport.
 *
 * Both sides verify the peer against the migration's CA: `verify = 2` (stunnel(8): "verify the peer
 * certificate", requires a certificate and a CAfile). The client additionally checks that the server
 * certificate names the endpoint it dialled (`checkHost` / `checkIP`, stunnel 5.x) and sends SNI,
 * which OpenShift passthrough Routes and ingress-nginx ssl-passthrough route on. TLS 1.2 is the
 * minimum; OpenSSL negotiates 1.3 whenever both ends offer it. TLS 1.2 is restricted to ECDHE key
 * exchange with AEAD ciphers (`TLS12_CIPHERS`); TLS 1.3 offers OpenSSL's three default suites (all AEAD
 * with forward secrecy) with AES-128-GCM first (`TLS13_CIPHERSUITES`). Run in the foreground with no pid file,
 * so it works on a read-only root filesystem; logs go to stderr.
 */
import { isIP } from 'node:net';
import type { EndpointAddress } from '../../../core/types';

/** Where the stunnel config and the TLS Secret are mounted in the transport container. */
export const STUNNEL_PATHS = {
  configDir: '/etc/ferry/stunnel',
  configFile: '/etc/ferry/stunnel/stunnel.conf',
  tlsDir: '/etc/ferry/tls',
  cert: '/etc/ferry/tls/tls.crt',
  /** The key as mounted from the Secret (0444, so any pod UID can read it without an fsGroup)… */
  mountedKey: '/etc/ferry/tls/tls.key',
  /** …and the private 0400 copy, owned by the container's UID, that stunnel reads. */
  key: '/run/ferry/stunnel-tls.key',
  ca: '/etc/ferry/tls/ca.crt',
} as const;

/**
 * The TLS 1.2 cipher list (OpenSSL names; stunnel's `ciphers`, which does not touch TLS 1.3 suites):
 * ECDHE only (forward secrecy) with AES-GCM or ChaCha20-Poly1305 (AEAD), for ECDSA and RSA keys (the
 * migration CA issues RSA). Everything else — static-RSA suites such as AES128-SHA, CBC modes,
 * finite-field DHE — is refused at the handshake. Same set as Mozilla's "intermediate" TLS 1.2 list
 * minus DHE.
 */
export const TLS12_CIPHERS = [
  'ECDHE-ECDSA-AES128-GCM-SHA256',
  'ECDHE-RSA-AES128-GCM-SHA256',
  'ECDHE-ECDSA-AES256-GCM-SHA384',
  'ECDHE-RSA-AES256-GCM-SHA384',
  'ECDHE-ECDSA-CHACHA20-POLY1305',
  'ECDHE-RSA-CHACHA20-POLY1305',
].join(':');

/**
 * The TLS 1.3 suites (stunnel's `ciphersuites`, "in order of preference", stunnel(8)): OpenSSL 3.0's
 * default three, every one AEAD with (EC)DHE key exchange as TLS 1.3 always has, reordered so that
 * AES-128-GCM comes first (OpenSSL's default order puts AES-256-GCM first, which both Ferry ends then
 * negotiated). Both ends render the same list, so AES-128-GCM is what they use; the others stay for a
 * peer without it. Why: on the transfer's bulk data AES-128-GCM is the cheapest of the three on x86
 * with AES-NI (`openssl speed -evp` at 16 KiB records, OpenSSL 3.0.19 on this project's 2-vCPU Xeon
 * with VAES: AES-128-GCM 6.6 GB/s, AES-256-GCM 5.6 GB/s, ChaCha20-Poly1305 4.1 GB/s). Measured with
 * bench/stunnel-variants.ts, the pair alone (--pair, 1 GiB, two runs of 10 and 8 rounds): 1.53 and
 * 1.60 CPU s/GiB with AES-128-GCM first, 1.69 and 1.65 with AES-256-GCM first, 2.15 and 2.11 with
 * ChaCha20 first; with rsync on the same 2 CPUs the saving is at the noise level (pair 1.69 vs 1.69,
 * 1.71 vs 1.73–1.77, 1.77 vs 1.85 CPU s in runs of 9, 11 and 7 rounds).
 * Security: AES-128-GCM is TLS 1.3's mandatory-to-implement suite (RFC 8446 §9.1) and first in
 * Mozilla's "modern" configuration; every TLS 1.3 suite has forward secrecy ((EC)DHE key exchange).
 */
export const TLS13_CIPHERSUITES = ['TLS_AES_128_GCM_SHA256', 'TLS_AES_256_GCM_SHA384', 'TLS_CHACHA20_POLY1305_SHA256'].join(':');

const COMMON = [
  'foreground = yes',
  'pid =',
  'syslog = no',
  'debug = notice',
  // Latency matters for rsync's many small protocol messages (crane-lib sets the same).
  // Measured with bench/stunnel-variants.ts (1 GiB, rsync 3.5.0, stunnel 5.68, OpenSSL 3.0, AES-NI,
  // 2 vCPU): the pair costs ≈ 1.7 CPU s per GiB on top of plain rsync's 2.0; perf puts ≈ 60 % of it in
  // the kernel's TCP send/receive and copies (stunnel moves one ≤ 16 KiB TLS record per read/write
  // and poll, ≈ 66,000 of each per GiB and side), ≈ 25 % in AES-GCM. Neither 4 MiB SO_SNDBUF/SO_RCVBUF
  // on both sockets nor dropping TCP_NODELAY moved it beyond the noise (±0.1 CPU s), so none is set.
  'socket = l:TCP_NODELAY=1',
  'socket = r:TCP_NODELAY=1',
];

function tlsLines(paths: { cert: string; key: string; ca: string }): string[] {
  return [
    `cert = ${paths.cert}`,
    `key = ${paths.key}`,
    `CAfile = ${paths.ca}`,
    'verify = 2',
    'sslVersionMin = TLSv1.2',
    'sslVersionMax = TLSv1.3',
    `ciphers = ${TLS12_CIPHERS}`,
    `ciphersuites = ${TLS13_CIPHERSUITES}`,
  ];
}

function checkPort(name: string, port: number): void {
  if (!Number.isInteger(port) || port < 1 || port > 65535) throw new Error(`${name} must be a TCP port 1..65535, got ${port}`);
}

/** Options shared by both renderers: where the TLS files are (defaults: STUNNEL_PATHS). */
export interface StunnelFileOptions {
  paths?: { cert: string; key: string; ca: string };
}

/**
 * The destination side: accept TLS on `listenPort` (all IPv4 addresses of the pod) and forward to the
 * transfer server on 127.0.0.1:`transferPort`.
 * @throws Error on an invalid port.
 */
export function renderStunnelServerConf(listenPort: number, transferPort: number, opts: StunnelFileOptions = {}): string {
  checkPort('listenPort', listenPort);
  checkPort('transferPort', transferPort);
  return [
    '; Ferry stunnel server (destination side): mutual TLS in front of the transfer server.',
    ...COMMON,
    '',
    '[ferry-transfer]',
    `accept = ${listenPort}`,
    `connect = 127.0.0.1:${transferPort}`,
    ...tlsLines(opts.paths ?? STUNNEL_PATHS),
    '',
  ].join('\n');
}

/**
 * The source side: accept plain TCP on 127.0.0.1:`localPort` (only the transfer client in the same pod
 * reaches it) and connect with TLS to the endpoint, verifying the server's certificate and name.
 * @throws Error on an invalid port or an empty host.
 */
export function renderStunnelClientConf(localPort: number, connect: EndpointAddress, opts: StunnelFileOptions = {}): string {
  checkPort('localPort', localPort);
  checkPort('connect.port', connect.port);
  if (!connect.host || /[\s;]/.test(connect.host)) throw new Error(`invalid endpoint host ${JSON.stringify(connect.host)}`);
  const host = connect.host.includes(':') && isIP(connect.host) === 6 ? `[${connect.host}]` : connect.host;
  // The name the server certificate must carry: the SNI name when routing needs one, else the host.
  const expected = connect.sni ?? connect.host;
  const identity = isIP(expected) ? `checkIP = ${expected}` : `checkHost = ${expected}`;
  const lines = [
    '; Ferry stunnel client (source side): carries the transfer to the destination endpoint.',
    ...COMMON,
    '',
    '[ferry-transfer]',
    'client = yes',
    `accept = 127.0.0.1:${localPort}`,
    `connect = ${host}:${connect.port}`,
    ...tlsLines(opts.paths ?? STUNNEL_PATHS),
    identity,
  ];
  if (connect.sni) lines.push(`sni = ${connect.sni}`);
  lines.push('');
  return lines.join('\n');
}
