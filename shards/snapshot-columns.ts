// Column formats of the shard snapshot: writers that append values as they come (one pass over
// a book fills every column) and readers that rebuild them in bulk, checking what they read.
// Pure byte work: no I/O, no knowledge of what the columns mean.

import type { StringIndex } from './id-table.js';
import {
  ByteSink, ByteSource, GrowBytes, SnapshotError, utf8, type ByteWriter,
} from './snapshot-bytes.js';

/** Strings decoded per native call: bounds the temporary string, not the column. */
const WINDOW_BYTES = 4 * 1024 * 1024;

/*
 * Formats. The writers append values as they come; a snapshotter keeps them from one snapshot
 * to the next (a book's ids and amounts never change), and emit() adds what they hold to a
 * snapshot by reference. adopt() starts a writer with a column read back from a snapshot,
 * its bytes by reference (a recovered shard's next snapshot need not encode them again).
 * The readers below rebuild the columns:
 *   strings  varint byte length of each string, then all their UTF-8 bytes
 *   dict     u32 count d, strings of the d distinct values (first-use order), a varint code each
 *   rising   varint differences from the value before (the first from 0): never decreasing
 *   values   varint of value + 1, for values in [-1 (WIDE), 2^53 - 1]
 *   list     u32 count, then the items (any layout)
 */

export class StringColumn {
  private readonly lengths = new GrowBytes();
  private readonly bytes = new GrowBytes();

  add(value: string): void {
    this.lengths.uv(this.bytes.utf8(value));
  }

  /** add(ids.keyAt(i)), the same bytes, without the string for an ASCII id. */
  addId(ids: StringIndex, i: number): void {
    this.lengths.uv(this.bytes.indexedId(ids, i));
  }

  /** Takes a column read back from a snapshot as the first strings (see BookColumns). */
  adopt(column: StringColumnBytes): void {
    this.lengths.adopt(column.lengthBytes);
    this.bytes.adopt(column.bytes);
  }

  emit(out: ByteSink): void {
    this.lengths.emit(out);
    this.bytes.emit(out);
  }
}

export class DictColumn {
  private readonly known = new Map<string, number>();
  private readonly strings = new StringColumn();
  private readonly codes = new GrowBytes();

  add(value: string): void {
    let code = this.known.get(value);
    if (code === undefined) {
      this.known.set(value, (code = this.known.size));
      this.strings.add(value);
    }
    this.codes.uv(code);
  }

  /**
   * Takes a column read back from a snapshot as the first values; false (and nothing taken)
   * if its dictionary repeats a value, which no writer here makes: codes would be ambiguous.
   */
  adopt(column: DictColumnValues): boolean {
    const known = new Map<string, number>();
    for (const value of column.values) known.set(value, known.size);
    if (known.size !== column.values.length) return false;
    for (const [value, code] of known) this.known.set(value, code);
    this.strings.adopt(column.strings);
    this.codes.adopt(column.codeBytes);
    return true;
  }

  emit(out: ByteSink): void {
    out.u32(this.known.size);
    this.strings.emit(out);
    this.codes.emit(out);
  }
}

export class RisingColumn {
  private readonly out = new GrowBytes();
  private last = 0;

  constructor(private readonly what: string) {}

  add(value: number): void {
    if (!(value >= this.last)) throw new Error(`snapshot: ${this.what} goes down at ${value}`);
    this.out.uv(value - this.last);
    this.last = value;
  }

  /** Takes a column read back from a snapshot, whose values end at `last`. */
  adopt(bytes: Uint8Array, last: number): void {
    this.out.adopt(bytes);
    this.last = last;
  }

  emit(out: ByteSink): void {
    this.out.emit(out);
  }
}

export class ValueColumn {
  private readonly out = new GrowBytes();

  add(value: number): void {
    this.out.uv(value + 1);
  }

  adopt(bytes: Uint8Array): void {
    this.out.adopt(bytes);
  }

  emit(out: ByteSink): void {
    this.out.emit(out);
  }
}

/** u8 values (flags). */
export class ByteColumn {
  private readonly out = new GrowBytes();

  add(value: number): void {
    this.out.u8(value);
  }

  adopt(bytes: Uint8Array): void {
    this.out.adopt(bytes);
  }

  emit(out: ByteSink): void {
    this.out.emit(out);
  }
}

/** A list kept between snapshots: its items only ever grow. */
export class ItemList {
  private readonly items = new GrowBytes();
  private n = 0;

  /** The writer of one more item. */
  add(): ByteWriter {
    this.n++;
    return this.items;
  }

  /** Takes `count` items read back from a snapshot, their bytes back to back. */
  adopt(count: number, items: Uint8Array): void {
    this.items.adopt(items);
    this.n = count;
  }

  emit(out: ByteSink): void {
    out.u32(this.n);
    this.items.emit(out);
  }
}

/** A list made for one snapshot, in its own sections (its count is known at the end). */
export class SinkList {
  private readonly count: ByteSink;
  private readonly items: ByteSink;
  private n = 0;

  constructor(out: ByteSink) {
    this.count = out.child();
    this.items = out.child();
  }

  add(): ByteWriter {
    this.n++;
    return this.items;
  }

  finish(): void {
    this.count.u32(this.n);
  }
}

/**
 * A temporary column shared by the reads of one decode, each done with it before the next
 * takes it: a fresh array per read costs a page fault per 4 KiB on its first touch (about
 * 2 us on a VM), which is most of what such a temporary costs.
 */
export class ScratchColumn {
  private values = new Float64Array(0);

  /** At least `n` values, contents undefined, valid until the next take. */
  take(n: number): Float64Array {
    if (this.values.length < n) this.values = new Float64Array(n);
    return this.values;
  }
}

/** A string column read back: lengths (UTF-8 bytes) and the bytes back to back, undecoded. */
export interface StringColumnBytes {
  lengths: Float64Array;
  bytes: Uint8Array;
  /** the lengths as they were in the snapshot (varints) */
  lengthBytes: Uint8Array;
}

/** The lengths go in `scratch` if given: the result is then valid until its next take. */
export function readStringColumn(src: ByteSource, n: number, what: string,
  scratch?: ScratchColumn): StringColumnBytes {
  const lengths = scratch === undefined ? new Float64Array(n) : scratch.take(n);
  const at = src.offset;
  src.varints(lengths, n, `${what} lengths`);
  const lengthBytes = src.since(at);
  let total = 0;
  for (let k = 0; k < n; k++) total += lengths[k] ?? 0;
  return { lengths, bytes: src.bytes(total, `${what} bytes`), lengthBytes };
}

export function eachString(column: StringColumnBytes, n: number, what: string,
  each: (k: number, value: string) => void): void {
  const { lengths, bytes } = column;
  let k = 0;
  let base = 0;
  while (k < n) {
    let k1 = k;
    let end = base;
    for (; k1 < n && (k1 === k || end + (lengths[k1] ?? 0) - base <= WINDOW_BYTES); k1++) {
      end += lengths[k1] ?? 0;
    }
    const text = utf8(bytes.subarray(base, end), what);
    // ASCII (one char per byte) in the common case: byte offsets are char offsets.
    const ascii = text.length === end - base;
    let from = base;
    for (let j = k; j < k1; j++) {
      const to = from + (lengths[j] ?? 0);
      each(j, ascii ? text.substring(from - base, to - base)
        : utf8(bytes.subarray(from, to), `${what}[${j}]`));
      from = to;
    }
    base = end;
    k = k1;
  }
}

/** A dict column read back: value k is values[codes[k]], every code checked in range. */
export interface DictColumnValues {
  values: string[];
  codes: Float64Array;
  /** the values and codes as they were in the snapshot */
  strings: StringColumnBytes;
  codeBytes: Uint8Array;
}

/** dict(n): the n values, each one of a list of distinct strings (see dictValue). */
export function readDict(src: ByteSource, n: number, what: string): DictColumnValues {
  const values: string[] = [];
  const count = src.u32(`${what} values`);
  const strings = readStringColumn(src, count, what);
  eachString(strings, count, what, (_k, value) => values.push(value));
  const codes = new Float64Array(n);
  const at = src.offset;
  src.varints(codes, n, `${what} codes`);
  for (let k = 0; k < n; k++) {
    if (!((codes[k] ?? -1) < values.length)) {
      throw new SnapshotError(`${what}[${k}] is not in its dictionary`);
    }
  }
  return { values, codes, strings, codeBytes: src.since(at) };
}

/** Value k of a dict column read back. */
export function dictValue(dict: DictColumnValues, k: number): string {
  return dict.values[dict.codes[k] ?? 0] as string;
}

/** rising(n): the running sums of n varints, in an array of `capacity` (>= n). */
export function rising(src: ByteSource, n: number, what: string,
  capacity = n): Float64Array<ArrayBuffer> {
  const out = new Float64Array(capacity);
  src.varints(out, n, what);
  let value = 0;
  for (let i = 0; i < n; i++) out[i] = value += out[i] ?? 0;
  if (!Number.isSafeInteger(value)) throw new SnapshotError(`${what} passes 2^53`);
  return out;
}

/** values(n): n varints of value + 1, in an array of `capacity` (>= n). */
export function values(src: ByteSource, n: number, what: string,
  capacity = n): Float64Array<ArrayBuffer> {
  const out = new Float64Array(capacity);
  src.varints(out, n, what);
  for (let i = 0; i < n; i++) out[i] = (out[i] ?? 0) - 1;
  return out;
}

/** values(n) that must fit 32 bits (account indexes, or WIDE); read through `scratch`. */
export function int32Values(src: ByteSource, n: number, what: string, capacity: number,
  scratch: ScratchColumn): Int32Array<ArrayBuffer> {
  const raw = scratch.take(n);
  src.varints(raw, n, what);
  const out = new Int32Array(capacity);
  for (let i = 0; i < n; i++) {
    const v = (raw[i] ?? 0) - 1;
    if (v > 0x7fff_ffff) throw new SnapshotError(`${what}[${i}] is not an account index`);
    out[i] = v;
  }
  return out;
}

/** Copies a byte column into its own array of at least `capacity` values. */
export function byteColumn(src: ByteSource, n: number, what: string,
  capacity = n): Uint8Array<ArrayBuffer> {
  const out = new Uint8Array(Math.max(n, capacity));
  out.set(src.bytes(n, what));
  return out;
}
