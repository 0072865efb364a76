import { formatBytesQuantity, parseQuantity, QuantityError } from '../../src/k8s/quantity';

describe('parseQuantity', () => {
  it.each([
    ['10Gi', 10 * 2 ** 30],
    ['1Ki', 1024],
    ['1.5Ki', 1536],
    ['512Mi', 512 * 2 ** 20],
    ['2Ti', 2 * 2 ** 40],
    ['1Pi', 2 ** 50],
    ['1k', 1000],
    ['1K', 1000],
    ['500M', 500e6],
    ['1.1G', 1_100_000_000],
    ['3T', 3e12],
    ['1073741824', 1073741824],
    ['0', 0],
    ['1e3', 1000],
    ['5E6', 5e6],
    ['100m', 1],
    ['1500m', 2],
    [' 2Gi ', 2 * 2 ** 30],
    ['+1Gi', 2 ** 30],
    ['.5Gi', 2 ** 29],
  ])('%s = %d bytes', (q, bytes) => {
    expect(parseQuantity(q)).toBe(bytes);
  });

  it.each(['', 'Gi', '10 Gi', '10gi', '10GB', '-1Gi', '1.2.3', 'ten', '10Xi', '0x10'])('rejects %j', (q) => {
    expect(() => parseQuantity(q)).toThrow(QuantityError);
  });

  it('explains the expected format', () => {
    expect(() => parseQuantity('10GB')).toThrow(/"10GB" is not a Kubernetes quantity \(e\.g\. "10Gi"/);
  });
});

describe('formatBytesQuantity', () => {
  it.each([
    [10 * 2 ** 30, '10Gi'],
    [1536, '1536'],
    [2048, '2Ki'],
    [2 ** 40, '1Ti'],
    [0, '0'],
    [1000, '1000'],
  ])('%d → %s', (n, q) => {
    expect(formatBytesQuantity(n)).toBe(q);
    expect(parseQuantity(q)).toBe(n);
  });
});
