import { X509Certificate, createPrivateKey, createPublicKey } from 'node:crypto';
import forge from 'node-forge';
import { clientSecretData, createMigrationCertificates, generateKeyPairs, KeyPairPool, serverSecretData } from '../../src/statetransfer/tls/certificates';

describe('migration certificates', () => {
  const certs = createMigrationCertificates({ migrationId: 'mig-1', serverNames: ['10.0.0.7', 'ferry.example.com'], validityDays: 7 });
  const ca = new X509Certificate(certs.ca.certPem);
  const server = new X509Certificate(certs.server.certPem);
  const client = new X509Certificate(certs.client.certPem);

  it('makes a CA that signs distinct server and client certificates', () => {
    expect(ca.ca).toBe(true);
    expect(server.ca).toBe(false);
    expect(server.verify(ca.publicKey)).toBe(true);
    expect(client.verify(ca.publicKey)).toBe(true);
    expect(server.checkIssued(ca)).toBe(true);
    expect(new Set([ca.serialNumber, server.serialNumber, client.serialNumber]).size).toBe(3);
    expect(server.fingerprint256).not.toBe(client.fingerprint256);
  });

  it('gives the server certificate SANs for the endpoint names and IPs', () => {
    expect(server.checkIP('10.0.0.7')).toBe('10.0.0.7');
    expect(server.checkHost('ferry.example.com')).toBe('ferry.example.com');
    expect(server.checkHost('other.example.com')).toBeUndefined();
    expect(server.keyUsage).toContain('1.3.6.1.5.5.7.3.1'); // serverAuth
    expect(client.keyUsage).toContain('1.3.6.1.5.5.7.3.2'); // clientAuth
  });

  it('is valid for days, not years', () => {
    const days = (Date.parse(server.validTo) - Date.now()) / 86400000;
    expect(days).toBeGreaterThan(6.9);
    expect(days).toBeLessThan(7.1);
  });

  it('makes a fresh CA every time', () => {
    const other = createMigrationCertificates({ migrationId: 'mig-1', serverNames: ['10.0.0.7'] });
    expect(new X509Certificate(other.ca.certPem).fingerprint256).not.toBe(ca.fingerprint256);
    expect(new X509Certificate(other.server.certPem).verify(ca.publicKey)).toBe(false);
  });

  it('never puts the CA key in a Secret, and gives each side only its own key', () => {
    const srv = serverSecretData(certs);
    const cli = clientSecretData(certs);
    const all = JSON.stringify([srv, cli]);
    expect(all).not.toContain(certs.ca.keyPem);
    expect(JSON.stringify(cli)).not.toContain(certs.server.keyPem);
    expect(JSON.stringify(srv)).not.toContain(certs.client.keyPem);
    // The key in each Secret matches that Secret's certificate.
    const pubOf = (pem: string) => createPrivateKey(pem).export({ type: 'pkcs1', format: 'pem' });
    expect(pubOf(srv['tls.key']!)).toBe(pubOf(certs.server.keyPem));
    expect(new X509Certificate(srv['tls.crt']!).checkPrivateKey(createPrivateKey(srv['tls.key']!))).toBe(true);
    expect(new X509Certificate(cli['tls.crt']!).checkPrivateKey(createPrivateKey(cli['tls.key']!))).toBe(true);
  });

  it('rejects bad options with every problem named', () => {
    expect(() => createMigrationCertificates({ migrationId: '', serverNames: [], validityDays: 400 })).toThrow(
      /migrationId must not be empty.*validityDays must be 1\.\.90.*serverNames/,
    );
    expect(() => createMigrationCertificates({ migrationId: 'm', serverNames: ['bad name!'] })).toThrow(/bad name!/);
  });
});

describe('generateKeyPairs: fresh keys off the main thread for createMigrationCertificates', () => {
  it('makes distinct 2048-bit keys that the certificates then carry (CA, server, client in that order)', async () => {
    const keys = await generateKeyPairs(3);
    const pems = keys.map((k) => forge.pki.publicKeyToPem(k.publicKey));
    expect(new Set(pems).size).toBe(3);
    expect(keys.every((k) => (k.publicKey as forge.pki.rsa.PublicKey).n.bitLength() === 2048)).toBe(true);
    const certs = createMigrationCertificates({ migrationId: 'm1', serverNames: ['10.0.0.1'], keys });
    const spki = (pem: string) => createPublicKey(pem).export({ type: 'spki', format: 'der' }).toString('base64');
    expect([certs.ca, certs.server, certs.client].map((c) => spki(new X509Certificate(c.certPem).publicKey.export({ type: 'spki', format: 'pem' }) as string))).toEqual(pems.map(spki));
    // the leaves are signed by the CA made with the first key
    const ca = new X509Certificate(certs.ca.certPem);
    expect(new X509Certificate(certs.server.certPem).verify(ca.publicKey)).toBe(true);
    expect(new X509Certificate(certs.client.certPem).verify(ca.publicKey)).toBe(true);
  });

  it('refuses a number of key pairs other than three', async () => {
    const keys = await generateKeyPairs(2);
    expect(() => createMigrationCertificates({ migrationId: 'm1', serverNames: ['10.0.0.1'], keys })).toThrow(/keys must be 3 key pairs/);
  });
});

describe('KeyPairPool (transfer keys made ahead of need: issue 9, first byte)', () => {
  const modulus = (p: forge.pki.rsa.KeyPair) => (p.publicKey as forge.pki.rsa.PublicKey).n.toString(16);

  it('hands out the pairs it made, each once; makes a shortfall at once; refills after the delay', async () => {
    const pool = new KeyPairPool(2, 1024, 20);
    try {
      pool.fill();
      expect(pool.held).toBe(2);
      const first = await pool.take(3); // two from the pool, one made now
      expect(first).toHaveLength(3);
      expect(pool.held).toBe(0);
      const second = await pool.take(1); // nothing held: made now, not one of the first
      const all = [...first, ...second].map(modulus);
      expect(new Set(all).size).toBe(4);
      await new Promise((r) => setTimeout(r, 60));
      expect(pool.held).toBe(2); // refilled once, 20 ms after the takes
      const third = await pool.take(2);
      expect(third.map(modulus).some((m) => all.includes(m))).toBe(false);
    } finally {
      pool.stop();
    }
  });

  it('pairs made ahead are usable keys (the certificates verify with them)', async () => {
    const pool = new KeyPairPool(3, 2048, 60_000);
    try {
      pool.fill();
      const certs = createMigrationCertificates({ migrationId: 'm1', serverNames: ['ferry.example'], keys: await pool.take(3) });
      const ca = new X509Certificate(certs.ca.certPem);
      expect(new X509Certificate(certs.server.certPem).verify(ca.publicKey)).toBe(true);
      expect(new X509Certificate(certs.client.certPem).verify(ca.publicKey)).toBe(true);
    } finally {
      pool.stop();
    }
  });
});
