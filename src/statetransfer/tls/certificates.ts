/**
 * Certificates for the transport's mutual TLS, made with node-forge.
 *
 * Per migration Ferry makes a fresh CA and two leaf certificates signed by it: one for the server
 * (destination, extendedKeyUsage serverAuth, SANs = the endpoint's host names and IPs) and one for
 * the client (source, extendedKeyUsage clientAuth). Serials are 16 random bytes. Validity is days,
 * not years (default 7). The CA private key is returned to the caller only so it can be discarded:
 * it is never placed in any Kubernetes object (see `serverSecretData` / `clientSecretData`).
 *
 * Defects of the peers this avoids (konveyor/crane-lib, pvc-transfer): crane-lib uses one self-signed certificate as CA,
 * server and client certificate; pvc-transfer gives both leaves the same serial, no SANs, and copies the
 * CA key to the source cluster.
 */
import { generateKeyPair, randomBytes } from 'node:crypto';
import { isIP } from 'node:net';
import forge from 'node-forge';

/** PEM-encoded key pair and certificate. */
export interface PEMCertificate {
  certPem: string;
  keyPem: string;
}

/** All TLS material of one migration. */
export interface MigrationCertificates {
  ca: PEMCertificate;
  server: PEMCertificate;
  client: PEMCertificate;
  /** Expiry of all three certificates (ISO 8601). */
  notAfter: string;
}

/** Options of `createMigrationCertificates`. */
export interface CertificateOptions {
  /** Migration id, written into the subjects' organizational unit. */
  migrationId: string;
  /** Host names and IP addresses the server certificate must be valid for (endpoint addresses). */
  serverNames: string[];
  /** Validity in days, 1..90 (default 7). */
  validityDays?: number;
  /** RSA modulus length in bits, 2048..4096 (default 2048). */
  keyBits?: number;
  /** Clock for tests; default Date.now. */
  now?: () => number;
  /**
   * The three key pairs to use, in the order CA, server, client (`generateKeyPairs(3)`: made off the
   * main thread, at once); each must be fresh and is used for this migration only. Absent: made here,
   * one after another, blocking the event loop meanwhile. `keyBits` is not checked against them.
   */
  keys?: readonly forge.pki.rsa.KeyPair[];
}

/**
 * Makes `count` fresh RSA key pairs of `bits` bits with Node's native crypto on libuv's thread pool,
 * all at once: on a 2-core worker three 2048-bit keys take about half as long as one after another,
 * and the event loop (heartbeats, other activities) is never blocked by the search for primes
 * (node-forge's synchronous generation, through the same native code, blocks it for 0.3-0.8 s).
 * @throws Error from crypto.generateKeyPair (e.g. bits out of range).
 */
export async function generateKeyPairs(count: number, bits = 2048): Promise<forge.pki.rsa.KeyPair[]> {
  const one = () =>
    new Promise<forge.pki.rsa.KeyPair>((resolve, reject) =>
      generateKeyPair(
        'rsa',
        { modulusLength: bits, publicExponent: 0x10001, publicKeyEncoding: { type: 'spki', format: 'pem' }, privateKeyEncoding: { type: 'pkcs1', format: 'pem' } },
        (err, publicKey, privateKey) => {
          if (err) return reject(err);
          resolve({ publicKey: forge.pki.publicKeyFromPem(publicKey), privateKey: forge.pki.privateKeyFromPem(privateKey) });
        },
      ),
    );
  return Promise.all(Array.from({ length: count }, one));
}

/**
 * Fresh RSA key pairs made ahead of need. `take(n)` hands out pairs generated earlier, each pair once
 * and never again, and the pool makes replacements `refillDelayMs` later (default 5 s, off the
 * moment the taker's pods start: the lab's two cores are busy then). A migration's credentials then do
 * not wait for the search for primes: three 2048-bit keys took 0.3-0.5 s on the lab's worker, all of
 * it before the transfer server pod could be created (the first byte's critical path). Pairs still
 * being made are waited for; a shortfall is made at once. The keys live in this process's memory only,
 * as the credentials made from them do until they are written to Secrets.
 */
export class KeyPairPool {
  private readonly pending: Promise<forge.pki.rsa.KeyPair>[] = [];
  private refill: NodeJS.Timeout | undefined;

  /**
   * @param size how many pairs the pool holds (e.g. 3: one namespace's CA, server and client)
   * @param bits RSA modulus length of each pair
   * @param refillDelayMs how long after a take the pool starts making its replacements
   */
  constructor(
    readonly size: number,
    readonly bits = 2048,
    readonly refillDelayMs = 5000,
  ) {}

  /** Starts making pairs until the pool holds `size` (made or being made). Returns at once. */
  fill(): void {
    while (this.pending.length < this.size) {
      const pair = this.one();
      pair.catch(() => undefined); // a failure is the taker's error, not an unhandled rejection
      this.pending.push(pair);
    }
  }

  /** One pair of `bits`, made off the event loop (generateKeyPairs). */
  private one(): Promise<forge.pki.rsa.KeyPair> {
    return generateKeyPairs(1, this.bits).then(([p]) => p!);
  }

  /** Pairs the pool holds or is making (each is handed out once). */
  get held(): number {
    return this.pending.length;
  }

  /**
   * Takes `count` pairs: the pool's first (waiting for those still being made), the rest made now;
   * schedules the refill.
   * @throws Error from crypto.generateKeyPair
   */
  async take(count: number): Promise<forge.pki.rsa.KeyPair[]> {
    const taken = this.pending.splice(0, count);
    while (taken.length < count) taken.push(this.one());
    if (!this.refill) {
      this.refill = setTimeout(() => {
        this.refill = undefined;
        this.fill();
      }, this.refillDelayMs);
      this.refill.unref();
    }
    return Promise.all(taken);
  }

  /** Stops a scheduled refill (tests; a process that exits need not call it: the timer is unref'd). */
  stop(): void {
    if (this.refill) clearTimeout(this.refill);
    this.refill = undefined;
  }
}

const DNS_NAME_RE = /^(?=.{1,253}$)([A-Za-z0-9*]([-A-Za-z0-9]{0,61}[A-Za-z0-9])?)(\.[A-Za-z0-9]([-A-Za-z0-9]{0,61}[A-Za-z0-9])?)*\.?$/;

/** A positive random 128-bit serial number as hex (RFC 5280 §4.1.2.2: at most 20 octets, positive). */
export function randomSerial(): string {
  const bytes = randomBytes(16);
  bytes[0] = bytes[0]! & 0x7f;
  if (bytes[0] === 0) bytes[0] = 0x01;
  return bytes.toString('hex');
}

function subject(cn: string, migrationId: string): forge.pki.CertificateField[] {
  return [
    { name: 'organizationName', value: 'Ferry' },
    { shortName: 'OU', value: `migration ${migrationId}`.slice(0, 64) },
    { name: 'commonName', value: cn.slice(0, 64) },
  ];
}

function newCert(
  keys: forge.pki.rsa.KeyPair,
  notBefore: Date,
  notAfter: Date,
): forge.pki.Certificate {
  const cert = forge.pki.createCertificate();
  cert.publicKey = keys.publicKey;
  cert.serialNumber = randomSerial();
  cert.validity.notBefore = notBefore;
  cert.validity.notAfter = notAfter;
  return cert;
}

function toPem(cert: forge.pki.Certificate, keys: forge.pki.rsa.KeyPair): PEMCertificate {
  return { certPem: forge.pki.certificateToPem(cert), keyPem: forge.pki.privateKeyToPem(keys.privateKey) };
}

/**
 * Builds the subjectAltName entries for a list of host names and IPs.
 * @throws Error naming each entry that is neither an IP address nor a DNS name.
 */
export function subjectAltNames(names: string[]): { type: number; value?: string; ip?: string }[] {
  const bad = names.filter((n) => !isIP(n) && !DNS_NAME_RE.test(n));
  if (bad.length) throw new Error(`invalid server certificate names (not a DNS name or IP): ${bad.join(', ')}`);
  const unique = [...new Set(names)];
  // GeneralName types (RFC 5280 §4.2.1.6): 2 = dNSName, 7 = iPAddress.
  return unique.map((n) => (isIP(n) ? { type: 7, ip: n } : { type: 2, value: n }));
}

/**
 * Creates a fresh CA and server/client leaf certificates for one migration.
 *
 * Without `options.keys`, key generation uses Node's native RSA through node-forge, synchronously:
 * 0.3-0.8 s for the three 2048-bit keys on the 2-core lab machine (the search for primes varies).
 * @throws Error on invalid options (no server names, validity outside 1..90 days, bad names, not
 *   three key pairs).
 */
export function createMigrationCertificates(options: CertificateOptions): MigrationCertificates {
  const days = options.validityDays ?? 7;
  const bits = options.keyBits ?? 2048;
  const problems: string[] = [];
  if (!options.migrationId) problems.push('migrationId must not be empty');
  if (!Number.isInteger(days) || days < 1 || days > 90) problems.push(`validityDays must be 1..90, got ${days}`);
  if (!Number.isInteger(bits) || bits < 2048 || bits > 4096) problems.push(`keyBits must be 2048..4096, got ${bits}`);
  if (!options.serverNames.length) problems.push('serverNames must list at least one host name or IP of the endpoint');
  if (options.keys && options.keys.length !== 3) problems.push(`keys must be 3 key pairs (CA, server, client), got ${options.keys.length}`);
  if (problems.length) throw new Error(`cannot create certificates: ${problems.join('; ')}`);
  const altNames = subjectAltNames(options.serverNames);

  const now = options.now ? options.now() : Date.now();
  // Back-date a few minutes so small clock skew between clusters does not fail the handshake.
  const notBefore = new Date(now - 5 * 60 * 1000);
  const notAfter = new Date(now + days * 24 * 3600 * 1000);
  const given = options.keys ? [...options.keys] : undefined;
  const gen = () => given?.shift() ?? forge.pki.rsa.generateKeyPair({ bits, e: 0x10001 });

  const caKeys = gen();
  const ca = newCert(caKeys, notBefore, notAfter);
  const caSubject = subject(`Ferry migration CA ${options.migrationId}`, options.migrationId);
  ca.setSubject(caSubject);
  ca.setIssuer(caSubject);
  ca.setExtensions([
    { name: 'basicConstraints', cA: true, pathLenConstraint: 0, critical: true },
    { name: 'keyUsage', keyCertSign: true, cRLSign: true, critical: true },
    { name: 'subjectKeyIdentifier' },
  ]);
  ca.sign(caKeys.privateKey, forge.md.sha256.create());

  const leaf = (cn: string, usage: 'server' | 'client'): PEMCertificate => {
    const keys = gen();
    const cert = newCert(keys, notBefore, notAfter);
    cert.setSubject(subject(cn, options.migrationId));
    cert.setIssuer(ca.subject.attributes);
    const extensions: object[] = [
      { name: 'basicConstraints', cA: false, critical: true },
      { name: 'keyUsage', digitalSignature: true, keyEncipherment: true, critical: true },
      { name: 'extKeyUsage', serverAuth: usage === 'server', clientAuth: usage === 'client' },
      { name: 'subjectKeyIdentifier' },
      { name: 'authorityKeyIdentifier', keyIdentifier: ca.generateSubjectKeyIdentifier().getBytes() },
    ];
    if (usage === 'server') extensions.push({ name: 'subjectAltName', altNames });
    cert.setExtensions(extensions);
    cert.sign(caKeys.privateKey, forge.md.sha256.create());
    return toPem(cert, keys);
  };

  const firstName = options.serverNames[0]!;
  return {
    ca: toPem(ca, caKeys),
    server: leaf(firstName, 'server'),
    client: leaf(`ferry-client ${options.migrationId}`, 'client'),
    notAfter: notAfter.toISOString(),
  };
}

/** Key names inside the TLS Secrets (the kubernetes.io/tls convention plus ca.crt). */
export const TLS_KEYS = { cert: 'tls.crt', key: 'tls.key', ca: 'ca.crt' } as const;

/** Data of the destination's server TLS Secret: server certificate and key plus the CA certificate
 * (never the CA key). Values are PEM strings; callers base64 them into Secret.data. */
export function serverSecretData(certs: MigrationCertificates): Record<string, string> {
  return { [TLS_KEYS.cert]: certs.server.certPem, [TLS_KEYS.key]: certs.server.keyPem, [TLS_KEYS.ca]: certs.ca.certPem };
}

/** Data of the source's client TLS Secret: client certificate and key plus the CA certificate
 * (never the CA key, never the server key). */
export function clientSecretData(certs: MigrationCertificates): Record<string, string> {
  return { [TLS_KEYS.cert]: certs.client.certPem, [TLS_KEYS.key]: certs.client.keyPem, [TLS_KEYS.ca]: certs.ca.certPem };
}
