import { isDNSLabel, isLabelValue, labelValue, migrationKey, migrationSelector, objectLabels, objectName } from '../../src/statetransfer/names';

describe('object names', () => {
  it('are valid DNS labels for ordinary PVC names and keep them readable', () => {
    const n = objectName('mig-1', 'client', 'data-postgres-0');
    expect(isDNSLabel(n)).toBe(true);
    expect(n).toBe(`ferry-${migrationKey('mig-1')}-client-data-postgres-0`);
  });

  it('stay within 63 characters at and beyond the edge, and stay distinct', () => {
    const base = `ferry-${migrationKey('m')}-client-`; // 24 characters
    const room = 63 - base.length;
    const exact = 'a'.repeat(room);
    expect(objectName('m', 'client', exact)).toBe(base + exact); // exactly 63: kept as is
    expect(objectName('m', 'client', exact).length).toBe(63);
    const over = 'a'.repeat(room + 1);
    const overName = objectName('m', 'client', over);
    expect(overName.length).toBeLessThanOrEqual(63);
    expect(isDNSLabel(overName)).toBe(true);
    // Two long names sharing a 60-character prefix must not collide.
    const a = objectName('m', 'client', `${'x'.repeat(60)}-a`);
    const b = objectName('m', 'client', `${'x'.repeat(60)}-b`);
    expect(a).not.toBe(b);
    for (const len of [1, 38, 39, 40, 62, 63, 64, 200, 253]) {
      const name = objectName('m', 'client', 'p'.repeat(len));
      expect(isDNSLabel(name)).toBe(true);
    }
  });

  it('hash PVC names that are not DNS labels (dots, upper case) without colliding with the cleaned form', () => {
    const dotted = objectName('m', 'client', 'data.v1');
    const dashed = objectName('m', 'client', 'data-v1');
    expect(isDNSLabel(dotted)).toBe(true);
    expect(dotted).not.toBe(dashed);
  });

  it('never collide between two migrations in one namespace', () => {
    expect(objectName('migration-a', 'server')).not.toBe(objectName('migration-b', 'server'));
    expect(objectName('migration-a', 'client', 'pvc')).not.toBe(objectName('migration-b', 'client', 'pvc'));
  });

  it('reject invalid roles and empty migration ids', () => {
    expect(() => objectName('m', 'Bad Role')).toThrow(/invalid object role/);
    expect(() => objectName('', 'server')).toThrow(/must not be empty/);
  });
});

describe('labels', () => {
  it('select every object of one migration', () => {
    const sel = migrationSelector('mig');
    const l = objectLabels('mig', 'client', 'pvc-a');
    for (const [k, v] of Object.entries(sel)) expect(l[k]).toBe(v);
    expect(l['ferry.dev/role']).toBe('client');
  });

  it('hash values that are not valid label values', () => {
    const long = 'x'.repeat(64);
    expect(isLabelValue(labelValue(long))).toBe(true);
    expect(labelValue(long)).not.toBe(labelValue(`${long}y`));
    expect(labelValue('ok-value')).toBe('ok-value');
  });
});
