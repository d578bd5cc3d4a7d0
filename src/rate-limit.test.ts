import { describe, expect, it } from 'vitest';
import { RateLimiter } from './rate-limit.js';

function clock(): { now: () => number; advance: (ms: number) => void } {
  let t = 1000;
  return { now: () => t, advance: (ms) => void (t += ms) };
}

describe('RateLimiter', () => {
  it('allows everything when the rate is 0', () => {
    const rl = new RateLimiter(0);
    for (let i = 0; i < 10_000; i++) expect(rl.take('a')).toBe(true);
    expect(rl.size).toBe(0);
  });

  it('allows one burst, then refills at the rate', () => {
    const c = clock();
    const rl = new RateLimiter(10, 100, c.now);
    for (let i = 0; i < 10; i++) expect(rl.take('a')).toBe(true);
    expect(rl.take('a')).toBe(false);
    c.advance(100);
    expect(rl.take('a')).toBe(true);
    expect(rl.take('a')).toBe(false);
    c.advance(60_000);
    let granted = 0;
    while (rl.take('a')) granted++;
    expect(granted).toBe(10);
  });

  it('keeps tenants apart', () => {
    const c = clock();
    const rl = new RateLimiter(2, 100, c.now);
    expect(rl.take('a')).toBe(true);
    expect(rl.take('a')).toBe(true);
    expect(rl.take('a')).toBe(false);
    expect(rl.take('b')).toBe(true);
  });

  it('bounds its map, evicting the oldest key', () => {
    const c = clock();
    const rl = new RateLimiter(1, 3, c.now);
    for (const k of ['a', 'b', 'c', 'd', 'e']) rl.take(k);
    expect(rl.size).toBe(3);
    expect(rl.take('e')).toBe(false);
    expect(rl.take('a')).toBe(true);
  });

  it('rejects a bad configuration', () => {
    expect(() => new RateLimiter(-1)).toThrow(RangeError);
    expect(() => new RateLimiter(1, 0)).toThrow(RangeError);
  });
});
