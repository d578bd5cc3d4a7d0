// Tests for shard-key.ts: pinned FNV-1a vectors that must never change, UTF-8 parity
// with TextEncoder, spread. Pure: no I/O.

import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { fnv1a32, shardOf } from './shard-key.js';

// Stable forever: if any of these change, every tenant moves shard. Do not "fix" them.
describe('fnv1a32', () => {
  it('matches the published FNV-1a 32-bit vectors', () => {
    expect(fnv1a32('')).toBe(0x811c9dc5);
    expect(fnv1a32('a')).toBe(0xe40c292c);
    expect(fnv1a32('foobar')).toBe(0xbf9cf968);
  });

  it('hashes the UTF-8 bytes, exactly as TextEncoder encodes them', () => {
    const reference = (s: string): number => {
      let h = 0x811c9dc5;
      for (const b of new TextEncoder().encode(s)) h = Math.imul(h ^ b, 0x01000193) >>> 0;
      return h;
    };
    expect(fnv1a32('é€😀')).toBe(reference('é€😀'));
    expect(fnv1a32('\ud800x\udc00')).toBe(reference('\ud800x\udc00')); // lone surrogates
    fc.assert(fc.property(fc.string({ unit: 'binary' }), (s) => {
      expect(fnv1a32(s)).toBe(reference(s));
    }), { numRuns: 3000 });
  });
});

describe('shardOf', () => {
  it('is pinned for fixed tenants (regression vectors)', () => {
    expect(shardOf('demo', 64)).toBe(fnv1a32('demo') % 64);
    const pinned = ['tenant-1', 'tenant-2', 'acme', 'ü'].map((t) => shardOf(t, 64));
    expect(pinned).toEqual(PINNED_64);
    expect(['tenant-1', 'tenant-2', 'acme', 'ü'].map(fnv1a32))
      .toEqual([0x4332af8b, 0x4432b11e, 0x45fd71af, 0x119dd44a]);
    expect(shardOf('acme', 1)).toBe(0);
  });

  it('stays within 0..count-1 and spreads tenants', () => {
    const counts = new Array<number>(64).fill(0);
    for (let i = 0; i < 64_000; i++) {
      const shard = shardOf(`tenant-${i}`, 64);
      expect(shard >= 0 && shard < 64).toBe(true);
      counts[shard] = (counts[shard] ?? 0) + 1;
    }
    expect(Math.min(...counts)).toBeGreaterThan(800);
    expect(Math.max(...counts)).toBeLessThan(1200);
  });

  it('refuses a shard count outside 1..65536', () => {
    for (const n of [0, -1, 1.5, Number.NaN, 65537]) {
      expect(() => shardOf('t', n)).toThrow(RangeError);
    }
  });
});

const PINNED_64 = [11, 30, 47, 10];
