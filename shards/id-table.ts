// Insert-only indexes by string id (open addressing, linear probing, newest-first removal).
// StringIndex maps an id to its dense insertion index and keeps no object per key: ids, hashes
// and slots live in typed arrays, so the garbage collector has nothing to copy or trace.
// IdTable layers a record list on top.
// Hashes only affect speed, never order or results: indexes always follow insertion order.

import { randomBytes } from 'node:crypto';

export interface Identified {
  readonly id: string;
}

/** Per-process seed so clients cannot precompute colliding ids (results never depend on it). */
const SEED = randomBytes(4).readInt32LE(0);
const MIN_CAPACITY = 16;

/** FNV-1a over UTF-16 code units with a murmur3 finaliser; never 0 (0 marks an empty slot). */
export function hashId(id: string): number {
  let h = 0x811c9dc5 ^ SEED;
  for (let i = 0; i < id.length; i++) h = Math.imul(h ^ id.charCodeAt(i), 0x01000193);
  return finish(h);
}

/** The murmur3 finaliser of hashId, never 0. */
function finish(hash: number): number {
  let h = hash;
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h === 0 ? 1 : h;
}

/** Offsets into the id characters are u32: an index holds at most this many. */
const CHARS_MAX = 0xffffffff;

type Chars = Uint8Array | Uint16Array;

/**
 * id -> dense index (0, 1, 2, ... in insertion order). The ids themselves are copied into one
 * typed array of their UTF-16 code units (exact for any string), so a book of millions of
 * transfers holds no string per transfer for the garbage collector to copy and mark. While
 * every code unit fits a byte (API ids are ASCII) that array is a Uint8Array, half the
 * memory to fault in and scan; the first wider id turns it into a Uint16Array.
 */
export class StringIndex {
  private count = 0;
  /** every id's code units, back to back */
  private chars: Chars = new Uint8Array(MIN_CAPACITY * 8);
  /** ends[i]: offset just past id i in `chars` (id i starts at ends[i - 1], or 0) */
  private ends = new Uint32Array(MIN_CAPACITY);
  /**
   * Open-addressing table of (hash, index) pairs side by side, so one probe touches one cache
   * line: table[2 * slot] is the hash (0: empty), table[2 * slot + 1] the index.
   */
  private table = new Int32Array(2 * MIN_CAPACITY);
  private mask = MIN_CAPACITY - 1;
  /** where the last unsuccessful find stopped: `add` of that same id goes straight there */
  private missId: string | null = null;
  private missHash = 0;
  private missSlot = 0;

  get size(): number {
    return this.count;
  }

  /**
   * Fills an empty index with `n` ASCII ids given as their bytes back to back and their
   * lengths (a snapshot's id column): what n add() calls would build, without a string per
   * id. False (and the index left empty) if an id repeats or a byte is not ASCII.
   */
  loadAscii(bytes: Uint8Array, lengths: ArrayLike<number>, n: number): boolean {
    if (this.count !== 0) throw new Error('id index: loadAscii needs an empty index');
    if (bytes.length > CHARS_MAX) return false;
    let slots = MIN_CAPACITY;
    while (overLoaded(n, slots)) slots *= 2;
    const mask = slots - 1;
    const ends = new Uint32Array(Math.max(MIN_CAPACITY, 2 * n));
    const chars = new Uint8Array(Math.max(MIN_CAPACITY * 8, Math.min(CHARS_MAX,
      2 * bytes.length)));
    const { hashes, order } = loadScratch(n);
    let at = 0;
    for (let i = 0; i < n; i++) {
      const len = lengths[i] as number;
      if (!(at + len <= bytes.length)) return false;
      const hash = hashAscii(bytes, at, len, chars);
      if (hash === 0) return false;
      hashes[i] = hash;
      at += len;
      ends[i] = at;
    }
    // Inserted in the order of their home slots (a counting sort on the slot's top bits), so
    // the probes sweep the table once instead of jumping around it: a cache miss per id
    // becomes a sequential pass. Where an id lands in its probe run does not matter to find.
    const table = new Int32Array(2 * slots);
    // Written once in order before the probes: a fresh page first read maps the zero page
    // and faults again on its first write (a fault costs microseconds on a VM).
    table.fill(0);
    sortBySlot(hashes, order, n, mask);
    for (let k = 0; k < n; k++) {
      const i = order[k] as number;
      const hash = hashes[i] as number;
      for (let slot = hash & mask; ; slot = (slot + 1) & mask) {
        const stored = table[2 * slot];
        if (stored === 0) {
          table[2 * slot] = hash;
          table[2 * slot + 1] = i;
          break;
        }
        if (stored === hash && sameChars(chars, ends, table[2 * slot + 1] as number, i)) {
          return false;
        }
      }
    }
    this.chars = chars;
    this.ends = ends;
    this.table = table;
    this.mask = mask;
    this.count = n;
    return true;
  }

  /** The index of `id`, or -1. */
  find(id: string): number {
    const hash = hashId(id);
    const { table, mask } = this;
    // Load stays at most 1/2 (overLoaded), so an empty slot is always reached.
    for (let i = hash & mask; ; i = (i + 1) & mask) {
      const stored = table[2 * i];
      if (stored === 0) {
        this.missId = id;
        this.missHash = hash;
        this.missSlot = i;
        return -1;
      }
      if (stored === hash) {
        const index = table[2 * i + 1] as number;
        if (this.equals(index, id)) return index;
      }
    }
  }

  /** The id of index `i` (a new string: for reads, not for the hot path). */
  keyAt(i: number): string {
    if (!(i >= 0 && i < this.count)) throw new Error(`id index: no id #${i}`);
    const start = i === 0 ? 0 : (this.ends[i - 1] as number);
    const end = this.ends[i] as number;
    let out = '';
    // Chunks keep String.fromCharCode's argument count far below engine limits.
    for (let at = start; at < end; at += 4096) {
      const part = this.chars.subarray(at, Math.min(end, at + 4096));
      out += String.fromCharCode.apply(null, part as unknown as number[]);
    }
    return out;
  }

  /** The length of id `i` in UTF-16 code units. */
  lengthAt(i: number): number {
    if (!(i >= 0 && i < this.count)) throw new Error(`id index: no id #${i}`);
    return (this.ends[i] as number) - (i === 0 ? 0 : (this.ends[i - 1] as number));
  }

  /**
   * Copies id `i` to out[at...] if it is ASCII (then its UTF-8 bytes are its characters) and
   * returns how many bytes; -1 if it is not (out may hold partial bytes). Lets an encoder
   * write a million ids without a string each (see keyAt).
   */
  writeAscii(i: number, out: Uint8Array, at: number): number {
    const start = i === 0 ? 0 : (this.ends[i - 1] as number);
    const len = (this.ends[i] as number) - start;
    const chars = this.chars;
    for (let k = 0; k < len; k++) {
      const c = chars[start + k] as number;
      if (c >= 0x80) return -1;
      out[at + k] = c;
    }
    return len;
  }

  /** Appends an id that is not in the index (the caller looked it up first); its index. */
  add(id: string): number {
    const index = this.count;
    if (overLoaded(index + 1, this.mask + 1)) this.grow();
    if (index === this.ends.length) this.ends = grown(this.ends, new Uint32Array(index * 2));
    const start = index === 0 ? 0 : (this.ends[index - 1] as number);
    const end = start + id.length;
    if (end > CHARS_MAX) throw new RangeError(`id index: more than ${CHARS_MAX} id characters`);
    if (end > this.chars.length) {
      const size = Math.min(CHARS_MAX, Math.max(end, this.chars.length * 2));
      this.chars = grown(this.chars, this.chars instanceof Uint8Array ? new Uint8Array(size)
        : new Uint16Array(size));
    }
    this.copyChars(id, start);
    this.ends[index] = end;
    if (id === this.missId) {
      // The slot find() stopped at is still empty: nothing was added or grown since.
      this.table[2 * this.missSlot] = this.missHash;
      this.table[2 * this.missSlot + 1] = index;
    } else {
      this.place(index, hashId(id));
    }
    this.missId = null;
    this.count = index + 1;
    return index;
  }

  /** Removes the newest id (rollback of an atomic batch). */
  removeLast(): void {
    const index = this.count - 1;
    if (index < 0) throw new Error('id index: nothing to remove');
    const { table, mask } = this;
    let hole = this.slotOf(index, hashId(this.keyAt(index)));
    this.count = index;
    this.missId = null;
    // Backward-shift deletion: pull later members of the probe run into the hole, so lookups
    // never need tombstones.
    for (let i = (hole + 1) & mask; table[2 * i] !== 0; i = (i + 1) & mask) {
      const home = (table[2 * i] ?? 0) & mask;
      const distanceToHole = (hole - home) & mask;
      const distanceToSlot = (i - home) & mask;
      if (distanceToHole <= distanceToSlot) {
        table[2 * hole] = table[2 * i] ?? 0;
        table[2 * hole + 1] = table[2 * i + 1] ?? 0;
        hole = i;
      }
    }
    table[2 * hole] = 0;
  }

  /** Writes id's code units at `start`, widening `chars` first if one does not fit a byte. */
  private copyChars(id: string, start: number): void {
    let chars = this.chars;
    for (let k = 0; k < id.length; k++) {
      const c = id.charCodeAt(k);
      if (c > 0xff && chars instanceof Uint8Array) {
        this.chars = chars = grown(chars, new Uint16Array(chars.length));
      }
      chars[start + k] = c;
    }
  }

  private equals(index: number, id: string): boolean {
    const start = index === 0 ? 0 : (this.ends[index - 1] as number);
    if ((this.ends[index] as number) - start !== id.length) return false;
    const chars = this.chars;
    for (let k = 0; k < id.length; k++) {
      if (chars[start + k] !== id.charCodeAt(k)) return false;
    }
    return true;
  }

  private slotOf(index: number, hash: number): number {
    const { table, mask } = this;
    for (let i = hash & mask; table[2 * i] !== 0; i = (i + 1) & mask) {
      if (table[2 * i] === hash && table[2 * i + 1] === index) return i;
    }
    throw new Error(`id index: #${index} is listed but not indexed`);
  }

  private place(index: number, hash: number): void {
    const { table, mask } = this;
    let i = hash & mask;
    while (table[2 * i] !== 0) i = (i + 1) & mask;
    table[2 * i] = hash;
    table[2 * i + 1] = index;
  }

  private grow(): void {
    const old = this.table;
    const capacity = old.length; // slots double: the new table has 2 * (old.length / 2) slots
    this.table = new Int32Array(2 * capacity);
    this.mask = capacity - 1;
    this.missId = null;
    for (let i = 0; i < old.length; i += 2) {
      const hash = old[i] ?? 0;
      if (hash !== 0) this.place(old[i + 1] ?? 0, hash);
    }
  }
}

/**
 * hashId of the ASCII bytes[at, at + len), copying them to chars[at...] on the way; 0 if a
 * byte is not ASCII (hashId itself never returns 0).
 */
function hashAscii(bytes: Uint8Array, at: number, len: number, chars: Uint8Array): number {
  let h = 0x811c9dc5 ^ SEED;
  for (let k = at; k < at + len; k++) {
    const c = bytes[k] as number;
    if (c >= 0x80) return 0;
    chars[k] = c;
    h = Math.imul(h ^ c, 0x01000193);
  }
  return finish(h);
}

/** Whether ids `j` and `i` (see StringIndex.ends) are the same characters. */
function sameChars(chars: Uint8Array, ends: Uint32Array, j: number, i: number): boolean {
  const start = j === 0 ? 0 : (ends[j - 1] as number);
  const at = i === 0 ? 0 : (ends[i - 1] as number);
  const len = (ends[i] as number) - at;
  if ((ends[j] as number) - start !== len) return false;
  for (let k = 0; k < len; k++) if (chars[start + k] !== chars[at + k]) return false;
  return true;
}

/**
 * Whether `count` ids need more than `slots` slots: at most half full. (At 3/4 a loaded
 * table is half the memory, but in alternating runs of the state machine bench batches of
 * 8190 applied 653-677k transfers/s against 785-823k: every new transfer id is a miss, and
 * a miss probes to the end of its run.)
 */
function overLoaded(count: number, slots: number): boolean {
  return count * 2 > slots;
}

/** Scratch of loadAscii, kept between loads up to this many ids (8 MiB). */
const SCRATCH_KEPT_MAX = 1 << 20;
let scratch = { hashes: new Int32Array(0), order: new Int32Array(0) };

function loadScratch(n: number): { hashes: Int32Array; order: Int32Array } {
  if (n <= scratch.hashes.length) return scratch;
  const made = { hashes: new Int32Array(n), order: new Int32Array(n) };
  if (n <= SCRATCH_KEPT_MAX) scratch = made;
  return made;
}

/** order[0, n): the ids 0..n-1 ordered by the top (up to 12) bits of their home slot. */
function sortBySlot(hashes: Int32Array, order: Int32Array, n: number, mask: number): void {
  const slotBits = 31 - Math.clz32(mask + 1);
  const bits = Math.min(12, slotBits);
  const shift = slotBits - bits;
  const starts = new Int32Array((1 << bits) + 1);
  for (let i = 0; i < n; i++) {
    const b = (((hashes[i] as number) & mask) >>> shift) + 1;
    starts[b] = (starts[b] as number) + 1;
  }
  for (let b = 1; b < starts.length; b++) {
    starts[b] = (starts[b] as number) + (starts[b - 1] as number);
  }
  for (let i = 0; i < n; i++) {
    const b = ((hashes[i] as number) & mask) >>> shift;
    order[starts[b] as number] = i;
    starts[b] = (starts[b] as number) + 1;
  }
}

function grown<A extends Uint8Array | Uint16Array | Uint32Array>(old: Chars | Uint32Array,
  next: A): A {
  next.set(old);
  return next;
}

/**
 * Records by id, in insertion order (a record's index is its position in `list`). A book's
 * accounts live here: a recovered book loads the index from the snapshot's id bytes in one
 * pass (loadIds, then adopt), where a Map took an insert and its rehashes per account.
 */
export class IdTable<T extends Identified> {
  /** records in insertion order */
  readonly list: T[] = [];
  private readonly index = new StringIndex();

  get size(): number {
    return this.list.length;
  }

  get(id: string): T | undefined {
    const index = this.index.find(id);
    return index === -1 ? undefined : this.list[index];
  }

  has(id: string): boolean {
    return this.index.find(id) !== -1;
  }

  /** Adds a record whose id is not in the table (the caller looked it up first). */
  add(record: T): void {
    this.index.add(record.id);
    this.list.push(record);
  }

  /**
   * An empty table's ids from their ASCII bytes back to back (a snapshot's column); false,
   * leaving it empty, if an id repeats or is not ASCII. Then `adopt` their records in order.
   */
  loadIds(bytes: Uint8Array, lengths: ArrayLike<number>, n: number): boolean {
    if (this.list.length !== 0) throw new Error('id table: loadIds needs an empty table');
    return this.index.loadAscii(bytes, lengths, n);
  }

  /** The record of the next id that loadIds loaded. */
  adopt(record: T): void {
    if (this.list.length >= this.index.size) {
      throw new Error(`id table: ${record.id} has no loaded id to adopt`);
    }
    this.list.push(record);
  }

  values(): IterableIterator<T> {
    return this.list.values();
  }

  *keys(): IterableIterator<string> {
    for (const record of this.list) yield record.id;
  }

  /** Removes the newest record (rollback of an atomic batch); anything else is a bug. */
  removeNewest(record: T): void {
    if (this.list[this.list.length - 1] !== record) {
      throw new Error(`id table: ${record.id} is not the newest record`);
    }
    this.list.pop();
    this.index.removeLast();
  }
}
