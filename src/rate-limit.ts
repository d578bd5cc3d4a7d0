// Per-tenant token bucket: `ratePerSecond` refill, one second's worth of burst. The bucket map
// is bounded; it never grows with the number of distinct keys beyond `maxKeys`.

export const RATE_LIMIT_KEYS_MAX = 100_000;

interface Bucket {
  tokens: number;
  /** ms timestamp of the last refill */
  at: number;
}

export class RateLimiter {
  private readonly buckets = new Map<string, Bucket>();
  private readonly burst: number;
  private readonly perMs: number;

  /** `ratePerSecond` 0 disables limiting: every call to `take` succeeds. */
  constructor(
    readonly ratePerSecond: number,
    private readonly maxKeys: number = RATE_LIMIT_KEYS_MAX,
    private readonly now: () => number = () => performance.now(),
  ) {
    if (!Number.isFinite(ratePerSecond) || ratePerSecond < 0) {
      throw new RangeError(`ratePerSecond must be >= 0 (got ${ratePerSecond})`);
    }
    if (!Number.isSafeInteger(maxKeys) || maxKeys < 1) {
      throw new RangeError(`maxKeys must be a positive integer (got ${maxKeys})`);
    }
    this.burst = Math.max(1, ratePerSecond);
    this.perMs = ratePerSecond / 1000;
  }

  get enabled(): boolean {
    return this.ratePerSecond > 0;
  }

  /** Takes `cost` tokens from the key's bucket; false means reply 429 `rate_limited`. */
  take(key: string, cost = 1): boolean {
    if (this.ratePerSecond === 0) return true;
    const now = this.now();
    let bucket = this.buckets.get(key);
    if (bucket === undefined) {
      bucket = { tokens: this.burst, at: now };
      this.insert(key, bucket);
    } else {
      const refill = (now - bucket.at) * this.perMs;
      bucket.tokens = Math.min(this.burst, bucket.tokens + Math.max(0, refill));
      bucket.at = now;
    }
    if (bucket.tokens < cost) return false;
    bucket.tokens -= cost;
    return true;
  }

  get size(): number {
    return this.buckets.size;
  }

  private insert(key: string, bucket: Bucket): void {
    if (this.buckets.size >= this.maxKeys) {
      // Evict the oldest-inserted key. Its next request starts from a full bucket, which is
      // lenient by at most one burst; the alternative is unbounded memory.
      const oldest = this.buckets.keys().next();
      if (oldest.done !== true) this.buckets.delete(oldest.value);
    }
    this.buckets.set(key, bucket);
  }
}
