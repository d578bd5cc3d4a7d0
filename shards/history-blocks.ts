// Where a shard's accounts keep their history codes: power-of-two ranges of shared Int32Array
// blocks, handed out and taken back by a buddy allocator. Pure memory bookkeeping: what the
// codes mean is account.ts's business.

/*
 * Why not an Int32Array per account. Each one is three heap objects (the typed array, its
 * ArrayBuffer and the buffer's backing-store record), about 220 bytes of a live-built
 * account's 380 and most of what a full garbage collection has to mark and sweep: a shard of
 * a million accounts built by live payments had 380 MB of heap and took ~300 ms per full
 * GC, against 173 MB and ~100 ms for the same state decoded from a snapshot, whose accounts
 * share one array (node --expose-gc, 1M accounts and 1M transfers). On two cores, V8's
 * marking threads take that time from the actor.
 *
 * Ranges of 2^k ints (k >= 2) live in blocks of 2^BLOCK_LEVEL. A freed range merges with its
 * buddy (the other half of the range of twice its size) when that one is free too, so
 * accounts that grow in step (all of them doubling from 64 to 128 codes, say) leave no growing
 * pile of small free ranges behind. Blocks are kept once made (a shard's history only grows).
 * Histories longer than POOLED_MAX_ROOM get an array of their own: few accounts, and a range
 * that large would pin a block's worth of buddies.
 */

/** log2 of the ints in a block: 65,536 ints, 256 KiB. */
const BLOCK_LEVEL = 16;
const BLOCK_INTS = 1 << BLOCK_LEVEL;
const MIN_LEVEL = 2;
/** Largest range taken from the blocks, in ints; longer histories get their own array. */
export const POOLED_MAX_ROOM = 1 << 12;
/** Blocks per shard at most (4 GiB of codes): positions stay small integers (below 2^30). */
const MAX_BLOCKS = 1 << 14;

export class HistoryBlocks {
  private readonly blocks: Int32Array[] = [];
  /** each block's index in `blocks`: an account knows its range by block and offset */
  private readonly indexes = new Map<Int32Array, number>();
  /** free[k]: positions (block << BLOCK_LEVEL | offset) of free ranges of 2^k ints */
  private readonly free: Array<Set<number>> = [];

  /** `maxBlocks`: blocks it may make (default and most: MAX_BLOCKS; fewer in tests) */
  constructor(private readonly maxBlocks = MAX_BLOCKS) {
    if (!(Number.isInteger(maxBlocks) && maxBlocks >= 1 && maxBlocks <= MAX_BLOCKS)) {
      throw new RangeError(`history blocks: maxBlocks must be in [1, ${MAX_BLOCKS}]`);
    }
    for (let k = 0; k <= BLOCK_LEVEL; k++) this.free.push(new Set());
  }

  /**
   * Position of a free range of `room` ints (a power of two in [4, POOLED_MAX_ROOM]), now
   * the caller's; -1 if this shard has made all the blocks it may (the caller then uses an
   * array of its own).
   */
  take(room: number): number {
    const level = levelOf(room);
    if (level < MIN_LEVEL || level > levelOf(POOLED_MAX_ROOM) || room !== 1 << level) {
      throw new RangeError(`history blocks: ${room} is not a pooled room`);
    }
    return this.takeLevel(level);
  }

  /**
   * Gives back a range of `room` ints that take(room) handed out, named by its block and its
   * offset there (see block(), offsetOf()); codes anywhere else are not this pool's and are
   * left alone (an array of their own, a recovered book's shared column).
   */
  give(codes: Int32Array, offset: number, room: number): void {
    const index = this.indexes.get(codes);
    if (index === undefined) return;
    let level = levelOf(room);
    let at = (index << BLOCK_LEVEL) | offset;
    while (level < BLOCK_LEVEL && (this.free[level] as Set<number>).delete(at ^ (1 << level))) {
      at &= ~(1 << level); // merged with its buddy: the range twice as large, free
      level++;
    }
    (this.free[level] as Set<number>).add(at);
  }

  /** The block holding the range at `pos`. */
  block(pos: number): Int32Array {
    return this.blocks[pos >>> BLOCK_LEVEL] as Int32Array;
  }

  /** Ints held in blocks (free or not). */
  get heldInts(): number {
    return this.blocks.length * BLOCK_INTS;
  }

  /** Ints in free ranges. */
  get freeInts(): number {
    let n = 0;
    for (let k = 0; k <= BLOCK_LEVEL; k++) n += (this.free[k] as Set<number>).size << k;
    return n;
  }

  private takeLevel(level: number): number {
    const free = this.free[level] as Set<number>;
    for (const pos of free) {
      free.delete(pos);
      return pos;
    }
    if (level === BLOCK_LEVEL) {
      if (this.blocks.length === this.maxBlocks) return -1;
      const block = new Int32Array(BLOCK_INTS);
      this.indexes.set(block, this.blocks.length);
      this.blocks.push(block);
      return (this.blocks.length - 1) << BLOCK_LEVEL;
    }
    const pos = this.takeLevel(level + 1); // split one twice as large: its upper half is free
    if (pos >= 0) free.add(pos + (1 << level));
    return pos;
  }
}

/** Where the range at `pos` starts in its block. */
export function offsetOf(pos: number): number {
  return pos & (BLOCK_INTS - 1);
}

function levelOf(room: number): number {
  return 31 - Math.clz32(room);
}
