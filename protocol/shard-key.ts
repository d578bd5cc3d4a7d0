// Which logical shard a tenant lives in: FNV-1a 32-bit over the UTF-8 bytes of the tenant
// id, modulo the shard count. Stable forever: changing it moves every tenant's data.

/** FNV-1a 32-bit parameters (http://www.isthe.com/chongo/tech/comp/fnv/). */
const FNV_OFFSET_BASIS = 0x811c9dc5;
const FNV_PRIME = 0x01000193;
export const SHARD_COUNT_MAX = 65536;

function mix(hash: number, byte: number): number {
  return Math.imul(hash ^ byte, FNV_PRIME) >>> 0;
}

/**
 * FNV-1a 32-bit of the string's UTF-8 encoding, as an unsigned integer. Encodes inline
 * (no allocation) exactly as TextEncoder does, including U+FFFD for a lone surrogate.
 */
export function fnv1a32(text: string): number {
  let hash = FNV_OFFSET_BASIS;
  for (let i = 0; i < text.length; i++) {
    let cp = text.charCodeAt(i);
    if (cp >= 0xd800 && cp <= 0xdfff) {
      const next = i + 1 < text.length ? text.charCodeAt(i + 1) : 0;
      if (cp <= 0xdbff && next >= 0xdc00 && next <= 0xdfff) {
        cp = 0x10000 + ((cp - 0xd800) << 10) + (next - 0xdc00);
        i++;
      } else {
        cp = 0xfffd;
      }
    }
    if (cp < 0x80) {
      hash = mix(hash, cp);
    } else if (cp < 0x800) {
      hash = mix(mix(hash, 0xc0 | (cp >> 6)), 0x80 | (cp & 0x3f));
    } else if (cp < 0x10000) {
      hash = mix(mix(mix(hash, 0xe0 | (cp >> 12)), 0x80 | ((cp >> 6) & 0x3f)), 0x80 | (cp & 0x3f));
    } else {
      hash = mix(hash, 0xf0 | (cp >> 18));
      hash = mix(mix(hash, 0x80 | ((cp >> 12) & 0x3f)), 0x80 | ((cp >> 6) & 0x3f));
      hash = mix(hash, 0x80 | (cp & 0x3f));
    }
  }
  return hash;
}

/**
 * The shard of a tenant: fnv1a32(tenantId) % shardCount. Throws RangeError for a shard
 * count that is not an integer in 1..SHARD_COUNT_MAX (a configuration bug, not input).
 */
export function shardOf(tenantId: string, shardCount: number): number {
  if (!Number.isInteger(shardCount) || shardCount < 1 || shardCount > SHARD_COUNT_MAX) {
    const range = `1..${SHARD_COUNT_MAX}`;
    throw new RangeError(`shardCount must be an integer in ${range}, got ${shardCount}`);
  }
  return fnv1a32(tenantId) % shardCount;
}
