import { renderStunnelClientConf, renderStunnelServerConf, TLS13_CIPHERSUITES } from '../../src/statetransfer/transport/stunnel/config';

function directives(conf: string): Map<string, string[]> {
  const m = new Map<string, string[]>();
  for (const line of conf.split('\n')) {
    const x = /^([A-Za-z]+)\s*=\s*(.*)$/.exec(line);
    if (x) m.set(x[1]!, [...(m.get(x[1]!) ?? []), x[2]!]);
  }
  return m;
}

describe('stunnel configuration', () => {
  it('server: mutual TLS verified against the CA, TLS 1.2 minimum, forwards to loopback', () => {
    const d = directives(renderStunnelServerConf(8443, 2222));
    expect(d.get('verify')).toEqual(['2']);
    expect(d.get('CAfile')).toEqual(['/etc/ferry/tls/ca.crt']);
    expect(d.get('sslVersionMin')).toEqual(['TLSv1.2']);
    expect(d.get('sslVersionMax')).toEqual(['TLSv1.3']);
    // TLS 1.2: ECDHE + AEAD only (forward secrecy).
    const ciphers = d.get('ciphers')![0]!.split(':');
    expect(ciphers.length).toBeGreaterThan(0);
    for (const c of ciphers) expect(c).toMatch(/^ECDHE-(ECDSA|RSA)-(AES(128|256)-GCM-SHA(256|384)|CHACHA20-POLY1305)$/);
    expect(d.get('accept')).toEqual(['8443']);
    expect(d.get('connect')).toEqual(['127.0.0.1:2222']);
    expect(d.get('client')).toBeUndefined();
    expect(d.get('foreground')).toEqual(['yes']);
  });

  it('client: verifies the server certificate and its name, sends SNI when routing needs it', () => {
    const ip = directives(renderStunnelClientConf(2222, { host: '192.0.2.1', port: 31000 }));
    expect(ip.get('client')).toEqual(['yes']);
    expect(ip.get('verify')).toEqual(['2']);
    expect(ip.get('accept')).toEqual(['127.0.0.1:2222']);
    expect(ip.get('connect')).toEqual(['192.0.2.1:31000']);
    expect(ip.get('checkIP')).toEqual(['192.0.2.1']);
    expect(ip.get('sni')).toBeUndefined();
    const route = directives(renderStunnelClientConf(2222, { host: '203.0.113.5', port: 443, sni: 'ferry.apps.example.com' }));
    expect(route.get('checkHost')).toEqual(['ferry.apps.example.com']);
    expect(route.get('sni')).toEqual(['ferry.apps.example.com']);
    const v6 = directives(renderStunnelClientConf(2222, { host: '2001:db8::1', port: 443 }));
    expect(v6.get('connect')).toEqual(['[2001:db8::1]:443']);
  });

  it('TLS 1.3: the three AEAD suites on both ends, AES-128-GCM first (the cheapest with AES-NI)', () => {
    for (const conf of [renderStunnelServerConf(8443, 2222), renderStunnelClientConf(2222, { host: '192.0.2.1', port: 31000 })]) {
      const suites = directives(conf).get('ciphersuites');
      expect(suites).toEqual([TLS13_CIPHERSUITES]);
      expect(suites![0]!.split(':')).toEqual(['TLS_AES_128_GCM_SHA256', 'TLS_AES_256_GCM_SHA384', 'TLS_CHACHA20_POLY1305_SHA256']);
    }
  });

  it('rejects bad ports and hosts', () => {
    expect(() => renderStunnelServerConf(0, 2222)).toThrow(/listenPort/);
    expect(() => renderStunnelClientConf(2222, { host: 'a b', port: 1 })).toThrow(/invalid endpoint host/);
  });
});
