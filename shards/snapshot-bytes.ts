// Byte plumbing of the shard snapshot codec: a chunked writer whose sections can be filled out
// of order (so one pass over a book writes many columns), and a bounds-checked reader that
// throws SnapshotError instead of reading past its input. Pure: no I/O, no clock.

import type { StringIndex } from './id-table.js';

/** What the snapshot decoder throws; the message names what is wrong. */
export class SnapshotError extends Error {
  constructor(readonly why: string) {
    super(`snapshot: ${why}`);
    this.name = 'SnapshotError';
  }
}

const CHUNK_BYTES = 64 * 1024;
const BLOCK_BYTES = 1024 * 1024;
/** nullable string marker in place of a length */
export const NULL_LENGTH = 0xffff_ffff;

/**
 * Reusable memory for the parts of a snapshot being written: bump allocation from blocks that
 * stay allocated between snapshots. Why: allocating hundreds of MiB of buffers per snapshot
 * made V8 run full collections whose steps landed in the actor's slices, and doubled the
 * encoding's CPU time. What reset() frees must no longer be in use (it is reused as is).
 */
export class ByteArena {
  private readonly blocks: Buffer[] = [];
  private block = 0;
  private used = 0;

  /** `n` bytes, valid until reset(); contents undefined. */
  take(n: number): Buffer {
    for (;;) {
      const current = this.blocks[this.block];
      if (current === undefined) {
        this.blocks.push(Buffer.allocUnsafeSlow(Math.max(BLOCK_BYTES, n)));
        continue;
      }
      if (this.used + n <= current.length) {
        const out = current.subarray(this.used, this.used + n);
        this.used = (this.used + n + 7) & ~7; // keep parts 8-byte aligned
        return out;
      }
      if (this.used === 0 && n > current.length) {
        this.blocks[this.block] = Buffer.allocUnsafeSlow(n); // too small for this part: grow
        continue;
      }
      this.block++;
      this.used = 0;
    }
  }

  /** Everything taken so far is free again. */
  reset(): void {
    this.block = 0;
    this.used = 0;
  }

  /** Bytes held between snapshots. */
  get retained(): number {
    let n = 0;
    for (const b of this.blocks) n += b.length;
    return n;
  }
}

/** The primitive writes shared by ByteSink and GrowBytes; subclasses say where bytes go. */
export abstract class ByteWriter {
  protected buf: Buffer = Buffer.alloc(0);
  protected used = 0;

  /** Makes room for `n` more bytes at buf[used]. */
  protected abstract ensure(n: number): void;

  u8(value: number): this {
    this.ensure(1);
    this.buf[this.used++] = value;
    return this;
  }

  u32(value: number): this {
    this.ensure(4);
    this.buf.writeUInt32LE(value, this.used);
    this.used += 4;
    return this;
  }

  f64(value: number): this {
    this.ensure(8);
    this.buf.writeDoubleLE(value, this.used);
    this.used += 8;
    return this;
  }

  i64(value: bigint): this {
    this.ensure(8);
    this.buf.writeBigInt64LE(value, this.used);
    this.used += 8;
    return this;
  }

  /** An unsigned LEB128 varint of a safe integer >= 0 (1 byte below 128, at most 8). */
  uv(value: number): this {
    this.ensure(8);
    const buf = this.buf;
    let v = value;
    while (v >= 0x80) {
      buf[this.used++] = (v % 0x80) | 0x80;
      v = Math.floor(v / 0x80);
    }
    buf[this.used++] = v;
    return this;
  }

  /** A length-prefixed UTF-8 string (null: the NULL_LENGTH marker, no bytes). */
  str(value: string | null): this {
    if (value === null) return this.u32(NULL_LENGTH);
    this.ensure(4 + 3 * value.length);
    const at = this.used;
    this.used += 4;
    const n = this.utf8(value);
    this.buf.writeUInt32LE(n, at);
    return this;
  }

  /** The UTF-8 bytes of id `i` of `ids`, without making its string when it is ASCII. */
  indexedId(ids: StringIndex, i: number): number {
    this.ensure(ids.lengthAt(i));
    const n = ids.writeAscii(i, this.buf, this.used);
    if (n < 0) return this.utf8(ids.keyAt(i));
    this.used += n;
    return n;
  }

  /** The UTF-8 bytes of `value` without a prefix; returns their count. */
  utf8(value: string): number {
    const len = value.length;
    this.ensure(3 * len);
    const buf = this.buf;
    const at = this.used;
    let n = 0;
    // Ids are short ASCII in the common case: a JS loop beats a native call for them.
    for (; n < len; n++) {
      const c = value.charCodeAt(n);
      if (c >= 0x80) break;
      buf[at + n] = c;
    }
    if (n < len) n = buf.write(value, at, 'utf8');
    this.used = at + n;
    return n;
  }
}

/**
 * Bytes appended to a buffer that doubles when full, after bytes held elsewhere (adopt(): a
 * recovered snapshot's column, taken by reference): the columns a snapshotter keeps between
 * snapshots. What emit() adds is valid until the next append.
 */
export class GrowBytes extends ByteWriter {
  private held: Uint8Array | null = null;

  get length(): number {
    return (this.held?.length ?? 0) + this.used;
  }

  /** Takes `bytes` (which must not change) as the first bytes, once, before any append. */
  adopt(bytes: Uint8Array): void {
    if (this.held !== null || this.used > 0) {
      throw new Error('GrowBytes: adopt() after bytes were added');
    }
    this.held = bytes;
  }

  /** Adds all the bytes to `out`, by reference. */
  emit(out: ByteSink): void {
    if (this.held !== null) out.ref(this.held);
    out.ref(this.buf.subarray(0, this.used));
  }

  protected ensure(n: number): void {
    if (this.used + n <= this.buf.length) return;
    const next = Buffer.allocUnsafeSlow(Math.max(2 * this.buf.length, this.used + n, 256));
    this.buf.copy(next, 0, 0, this.used);
    this.buf = next;
  }
}

/**
 * An append-only byte sequence kept as parts: filled chunks, caller-filled columns of a fixed
 * size, bytes held elsewhere (by reference), and child sinks standing in for sections written
 * later (a count known only at the end, a string blob filled in the same pass as the columns
 * before it). Reading order is the order the parts were made in, whatever order they were
 * filled in.
 */
export class ByteSink extends ByteWriter {
  private readonly parts: Array<Uint8Array | ByteSink> = [];
  private start = 0;

  constructor(private readonly arena: ByteArena) {
    super();
  }

  /** A part of exactly `bytes` bytes for the caller to fill (a column). */
  column(bytes: number): Buffer {
    this.flushPart();
    const part = this.arena.take(bytes);
    this.parts.push(part);
    return part;
  }

  /** Bytes held elsewhere, as the next part: they must not change until pieces() is copied. */
  ref(bytes: Uint8Array): this {
    this.flushPart();
    this.parts.push(bytes);
    return this;
  }

  /** A section at this position, to be written through the returned sink (now or later). */
  child(): ByteSink {
    this.flushPart();
    const sink = new ByteSink(this.arena);
    this.parts.push(sink);
    return sink;
  }

  /** Total bytes written so far, children included. */
  get length(): number {
    let n = this.used - this.start;
    for (const part of this.parts) n += part.length;
    return n;
  }

  /** Every part in reading order, children flattened (this sink is finished). */
  pieces(out: Uint8Array[] = []): Uint8Array[] {
    this.flushPart();
    for (const part of this.parts) {
      if (part instanceof ByteSink) part.pieces(out);
      else if (part.length > 0) out.push(part);
    }
    return out;
  }

  private flushPart(): void {
    if (this.used > this.start) this.parts.push(this.buf.subarray(this.start, this.used));
    this.start = this.used;
  }

  protected ensure(n: number): void {
    if (this.used + n <= this.buf.length) return;
    this.flushPart();
    this.buf = this.arena.take(Math.max(CHUNK_BYTES, n));
    this.start = 0;
    this.used = 0;
  }
}

/** Reads what ByteSink wrote; every read is bounds-checked and names what it reads. */
export class ByteSource {
  private pos = 0;

  constructor(private readonly buf: Buffer) {}

  get remaining(): number {
    return this.buf.length - this.pos;
  }

  /** Where the next read starts. */
  get offset(): number {
    return this.pos;
  }

  /** The bytes read since `from` (an earlier offset), by reference. */
  since(from: number): Buffer {
    return this.buf.subarray(from, this.pos);
  }

  /** Where the next `n` bytes start; moves past them. */
  private take(n: number, what: string): number {
    if (!(n >= 0) || n > this.buf.length - this.pos) {
      throw new SnapshotError(`${what}: truncated (${n} bytes wanted)`);
    }
    const at = this.pos;
    this.pos += n;
    return at;
  }

  bytes(n: number, what: string): Buffer {
    const at = this.take(n, what);
    return this.buf.subarray(at, at + n);
  }

  // Numbers are read in place: no view per value (a decode reads millions of them).
  u8(what: string): number {
    return this.buf[this.take(1, what)] ?? 0;
  }

  u32(what: string): number {
    return this.buf.readUInt32LE(this.take(4, what));
  }

  f64(what: string): number {
    return this.buf.readDoubleLE(this.take(8, what));
  }

  i64(what: string): bigint {
    return this.buf.readBigInt64LE(this.take(8, what));
  }

  /** `n` unsigned varints into out[0, n). */
  varints(out: Float64Array, n: number, what: string): void {
    const buf = this.buf;
    const end = buf.length;
    let p = this.pos;
    for (let i = 0; i < n; i++) {
      let b = p < end ? (buf[p++] as number) : -1;
      let value = b & 0x7f;
      for (let scale = 0x80; b >= 0x80; scale *= 0x80) {
        if (p >= end || scale > 2 ** 49) throw new SnapshotError(`${what}: bad varint at ${i}`);
        b = buf[p++] as number;
        value += (b & 0x7f) * scale;
      }
      if (b < 0) throw new SnapshotError(`${what}: truncated at ${i}`);
      out[i] = value;
    }
    this.pos = p;
  }

  /** A length-prefixed UTF-8 string; null only where `nullable`. */
  str(what: string, nullable = false): string | null {
    // The length's own label is made only when it is missing.
    const n = this.remaining >= 4 ? this.u32(what) : this.u32(`${what} length`);
    if (n === NULL_LENGTH) {
      if (!nullable) throw new SnapshotError(`${what} is null`);
      return null;
    }
    return utf8(this.bytes(n, what), what);
  }

  text(what: string): string {
    return this.str(what) as string;
  }
}

const decoder = new TextDecoder('utf-8', { fatal: true });

/** The UTF-8 bytes as a string; malformed UTF-8 is an error, never a replacement char. */
export function utf8(bytes: Uint8Array, what: string): string {
  try {
    return decoder.decode(bytes);
  } catch {
    throw new SnapshotError(`${what} is not UTF-8`);
  }
}
