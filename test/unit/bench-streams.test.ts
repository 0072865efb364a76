import { anchoredPattern, partitionEntries, rootPassArgs, streamFilterArgs } from '../../bench/support/streams';

describe('parallel streams partition (bench/support/streams.ts)', () => {
  it('deals entries largest first into the lightest group', () => {
    const groups = partitionEntries(
      [
        { name: 'a', bytes: 10 },
        { name: 'b', bytes: 40 },
        { name: 'c', bytes: 30 },
        { name: 'd', bytes: 20 },
      ],
      2,
    );
    expect(groups).toEqual([
      { entries: ['b', 'a'], bytes: 50 },
      { entries: ['c', 'd'], bytes: 50 },
    ]);
  });

  it('does not depend on listing order and drops empty groups', () => {
    const es = [
      { name: 'x', bytes: 5 },
      { name: 'y', bytes: 5 },
    ];
    expect(partitionEntries(es, 4)).toEqual(partitionEntries([...es].reverse(), 4));
    expect(partitionEntries(es, 4)).toHaveLength(2);
    expect(partitionEntries([], 3)).toEqual([]);
    expect(() => partitionEntries(es, 0)).toThrow(RangeError);
  });

  it('cannot split one entry that holds most bytes', () => {
    const groups = partitionEntries(
      [
        { name: 'big', bytes: 900 },
        { name: 's1', bytes: 50 },
        { name: 's2', bytes: 50 },
      ],
      4,
    );
    expect(Math.max(...groups.map((g) => g.bytes))).toBe(900);
  });

  it('anchors names and escapes wildcards only where rsync reads them', () => {
    expect(anchoredPattern('data')).toBe('/data');
    expect(anchoredPattern('sp ace')).toBe('/sp ace');
    expect(anchoredPattern('back\\slash')).toBe('/back\\slash');
    expect(anchoredPattern('br[a]ck')).toBe('/br\\[a]ck');
    expect(anchoredPattern('st*r\\?')).toBe('/st\\*r\\\\\\?');
    for (const bad of ['', 'a/b', 'new\nline']) expect(() => anchoredPattern(bad)).toThrow();
    expect(streamFilterArgs(['a', 'b'])).toEqual(['--filter=+ /a', '--filter=+ /b', '--filter=- /*']);
  });

  it('turns Ferry flags into a root pass that only deletes', () => {
    expect(rootPassArgs(['--recursive', '--links', '--no-inc-recursive', '--delete-during'])).toEqual(['--links', '--delete-during', '--dirs', '--existing', '--ignore-existing']);
  });
});
