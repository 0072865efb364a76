/**
 * The stunnel server as Ferry configures it, for real: a stunnel process with the generated server
 * config and the migration's certificates, probed by `openssl s_client` holding a valid client
 * certificate. TLS 1.2 must only be negotiated with ECDHE key exchange and an AEAD cipher (forward
 * secrecy); a client offering only a static-RSA suite (AES128-SHA) is refused at the handshake.
 * Ferry's own client stunnel and this server negotiate TLS 1.3 with AES-128-GCM.
 * Needs stunnel4 and openssl (hack/setup.sh).
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createMigrationCertificates } from '../../src/statetransfer/tls/certificates';
import { renderStunnelClientConf, renderStunnelServerConf } from '../../src/statetransfer/transport/stunnel/config';

async function freePort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const port = (s.address() as { port: number }).port;
  await new Promise((r) => s.close(r));
  return port;
}

async function waitForPort(port: number): Promise<void> {
  for (let i = 0; i < 100; i++) {
    if (spawnSync('bash', ['-c', `exec 3<>/dev/tcp/127.0.0.1/${port}`]).status === 0) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`stunnel does not listen on ${port}`);
}

describe('stunnel server TLS policy (real stunnel, real openssl client)', () => {
  let dir: string;
  let stunnel: ChildProcess;
  let backend: Server;
  let port: number;
  let log = '';

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'ferry-stunnel-tls-'));
    const certs = createMigrationCertificates({ migrationId: 'd-tls', serverNames: ['127.0.0.1'] });
    const paths = { cert: join(dir, 'tls.crt'), key: join(dir, 'tls.key'), ca: join(dir, 'ca.crt') };
    writeFileSync(paths.cert, certs.server.certPem);
    writeFileSync(paths.key, certs.server.keyPem, { mode: 0o400 });
    writeFileSync(paths.ca, certs.ca.certPem);
    writeFileSync(join(dir, 'client.crt'), certs.client.certPem);
    writeFileSync(join(dir, 'client.key'), certs.client.keyPem, { mode: 0o400 });
    // The backend (the rsync daemon's place): accepts and says hello (the handshake is what is tested).
    backend = createServer((c) => c.end('@RSYNCD: 32.0\n'));
    await new Promise<void>((r) => backend.listen(0, '127.0.0.1', r));
    const backendPort = (backend.address() as { port: number }).port;
    port = await freePort();
    writeFileSync(join(dir, 'stunnel.conf'), renderStunnelServerConf(port, backendPort, { paths }));
    stunnel = spawn('stunnel', [join(dir, 'stunnel.conf')], { stdio: ['ignore', 'pipe', 'pipe'] });
    stunnel.stdout!.on('data', (d) => (log += d));
    stunnel.stderr!.on('data', (d) => (log += d));
    await waitForPort(port);
  });

  afterAll(async () => {
    stunnel?.kill('SIGTERM');
    await new Promise((r) => backend?.close(r));
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  function sClient(args: string[]): { status: number | null; out: string } {
    const r = spawnSync(
      'openssl',
      ['s_client', '-connect', `127.0.0.1:${port}`, '-cert', join(dir, 'client.crt'), '-key', join(dir, 'client.key'), '-CAfile', join(dir, 'ca.crt'), '-verify_return_error', ...args],
      { input: '', encoding: 'utf8', timeout: 15_000 },
    );
    return { status: r.status, out: `${r.stdout}\n${r.stderr}` };
  }

  it('refuses a TLS 1.2 client that offers only AES128-SHA (no forward secrecy)', () => {
    const r = sClient(['-tls1_2', '-cipher', 'AES128-SHA']);
    expect(r.out).not.toMatch(/Cipher is AES128-SHA/);
    expect(r.out).toMatch(/handshake failure|no shared cipher|alert/i);
    expect(r.status).not.toBe(0);
  });

  it('refuses other TLS 1.2 suites without ECDHE or AEAD (DHE, CBC)', () => {
    for (const cipher of ['AES256-GCM-SHA384', 'ECDHE-RSA-AES128-SHA', 'DHE-RSA-AES128-GCM-SHA256']) {
      const r = sClient(['-tls1_2', '-cipher', cipher]);
      expect(r.out).not.toMatch(new RegExp(`Cipher is ${cipher}`));
      expect(r.status).not.toBe(0);
    }
  });

  it('accepts an ECDHE-RSA-AES128-GCM-SHA256 client over TLS 1.2, and TLS 1.3 with its defaults', () => {
    const r12 = sClient(['-tls1_2', '-cipher', 'ECDHE-RSA-AES128-GCM-SHA256']);
    expect(r12.out).toMatch(/Cipher is ECDHE-RSA-AES128-GCM-SHA256/);
    const r13 = sClient(['-tls1_3']);
    expect(r13.out).toMatch(/New, TLSv1\.3/);
    expect(r13.out).toMatch(/Verify return code: 0 \(ok\)/);
  });

  it("TLS 1.3: Ferry's two ends negotiate AES-128-GCM; a peer with AES-256-GCM only still connects; CCM is refused", async () => {
    // Ferry's client stunnel, rendered, in front of the server above; debug = info logs the suite.
    const localPort = await freePort();
    const clientPaths = { cert: join(dir, 'client.crt'), key: join(dir, 'client.key'), ca: join(dir, 'ca.crt') };
    const conf = renderStunnelClientConf(localPort, { host: '127.0.0.1', port }, { paths: clientPaths }).replace('debug = notice', 'debug = info');
    writeFileSync(join(dir, 'client.conf'), conf);
    const client = spawn('stunnel', [join(dir, 'client.conf')], { stdio: ['ignore', 'pipe', 'pipe'] });
    let clientLog = '';
    client.stderr!.on('data', (d) => (clientLog += d));
    try {
      await waitForPort(localPort);
      // Async: the backend runs in this process's event loop, which spawnSync would block.
      const hello = await new Promise<string>((resolve) => {
        const p = spawn('bash', ['-c', `exec 3<>/dev/tcp/127.0.0.1/${localPort}; timeout 10 head -c 14 <&3`], { stdio: ['ignore', 'pipe', 'ignore'] });
        let out = '';
        p.stdout!.on('data', (d) => (out += d));
        p.on('close', () => resolve(out));
      });
      expect(hello).toBe('@RSYNCD: 32.0\n');
      expect(clientLog).toMatch(/TLSv1\.3 ciphersuite: TLS_AES_128_GCM_SHA256/);
    } finally {
      client.kill('SIGTERM');
    }
    expect(sClient(['-tls1_3', '-ciphersuites', 'TLS_AES_256_GCM_SHA384']).out).toMatch(/New, TLSv1\.3, Cipher is TLS_AES_256_GCM_SHA384/);
    const ccm = sClient(['-tls1_3', '-ciphersuites', 'TLS_AES_128_CCM_SHA256']);
    expect(ccm.out).not.toMatch(/Cipher is TLS_AES_128_CCM_SHA256/);
    expect(ccm.status).not.toBe(0);
  });
});
