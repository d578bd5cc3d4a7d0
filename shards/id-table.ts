// Insert-only index of records by string id (open addressing, linear probing) plus their list in
// insertion order. Built because a V8 Map of millions of string keys costs ~1 µs per insert here;
// this one keeps hashes in an Int32Array so probes and growth never touch the key strings.
// Hashes only affect speed, never order or results: iteration always follows insertion order.

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
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h === 0 ? 1 : h;
}

export class IdTable<T extends Identified> {
  /** records in insertion order (for a book of transfers: sequence order) */
  readonly list: T[] = [];
  private hashes = new Int32Array(MIN_CAPACITY);
  private slots: (T | undefined)[] = new Array<T | undefined>(MIN_CAPACITY).fill(undefined);
  private mask = MIN_CAPACITY - 1;

  get size(): number {
    return this.list.length;
  }

  get(id: string): T | undefined {
    const hash = hashId(id);
    const { hashes, slots, mask } = this;
    // Load stays at most 1/2, so an empty slot is always reached.
    for (let i = hash & mask; ; i = (i + 1) & mask) {
      const stored = hashes[i];
      if (stored === 0) return undefined;
      if (stored === hash) {
        const record = slots[i];
        if (record !== undefined && record.id === id) return record;
      }
    }
  }

  /** Adds a record whose id is not in the table (the caller looked it up first). */
  add(record: T): void {
    if ((this.list.length + 1) * 2 > this.hashes.length) this.grow();
    this.place(record, hashId(record.id));
    this.list.push(record);
  }

  /** Removes the newest record (rollback of an atomic batch); anything else is a bug. */
  removeNewest(record: T): void {
    if (this.list[this.list.length - 1] !== record) {
      throw new Error(`id table: ${record.id} is not the newest record`);
    }
    this.list.pop();
    const { hashes, slots, mask } = this;
    let hole = this.indexOf(record);
    // Backward-shift deletion: pull later members of the probe run into the hole, so lookups
    // never need tombstones.
    for (let i = (hole + 1) & mask; hashes[i] !== 0; i = (i + 1) & mask) {
      const home = (hashes[i] ?? 0) & mask;
      const distanceToHole = (hole - home) & mask;
      const distanceToSlot = (i - home) & mask;
      if (distanceToHole <= distanceToSlot) {
        hashes[hole] = hashes[i] ?? 0;
        slots[hole] = slots[i];
        hole = i;
      }
    }
    hashes[hole] = 0;
    slots[hole] = undefined;
  }

  private indexOf(record: T): number {
    const hash = hashId(record.id);
    const { hashes, slots, mask } = this;
    for (let i = hash & mask; hashes[i] !== 0; i = (i + 1) & mask) {
      if (slots[i] === record) return i;
    }
    throw new Error(`id table: ${record.id} is listed but not indexed`);
  }

  private place(record: T, hash: number): void {
    const { hashes, mask } = this;
    let i = hash & mask;
    while (hashes[i] !== 0) i = (i + 1) & mask;
    hashes[i] = hash;
    this.slots[i] = record;
  }

  private grow(): void {
    const oldHashes = this.hashes;
    const oldSlots = this.slots;
    const capacity = oldHashes.length * 2;
    this.hashes = new Int32Array(capacity);
    this.slots = new Array<T | undefined>(capacity).fill(undefined);
    this.mask = capacity - 1;
    for (let i = 0; i < oldHashes.length; i++) {
      const record = oldSlots[i];
      if (record !== undefined) this.place(record, oldHashes[i] ?? 0);
    }
  }
}
