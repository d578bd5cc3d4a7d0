import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { FileJournal, segmentName, shardDirName } from './journal-file.js';
import { entryHash, hashKey } from '../protocol/journal-codec.js';
import { ZERO_HASH, type JournalEntry } from '../protocol/journal-entry.js';
import type { ChainHead } from './journal.js';

let dir = '';
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'journal-file-'));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

const EPOCH = 3;
function entry(shard: number, sequence: number, extra = ''): JournalEntry {
  return {
    shard, sequence, epoch: EPOCH, kind: 'post', tenant: `tenant-${shard}`, id: `tx-${sequence}`,
    debitAccountId: 'acct-a', creditAccountId: 'acct-b', amountMinor: BigInt(sequence * 100),
    currencyCode: 'EUR', time: 1_700_000_000_000 + sequence, detail: extra,
  };
}
function group(shard: number, from: number, n: number): JournalEntry[] {
  return Array.from({ length: n }, (_, i) => entry(shard, from + i));
}
const START: ChainHead = { sequence: 0, hash: ZERO_HASH };

async function replayAll(j: FileJournal, shard: number, head = START) {
  const got: JournalEntry[] = [];
  const end = await j.replay(shard, head, (e) => got.push(e));
  return { got, end };
}
const segPath = (shard: number, first: number) =>
  join(dir, shardDirName(shard), segmentName(first));

describe('FileJournal', () => {
  it('commits, closes, reopens and replays identical entries across shards', async () => {
    const j = new FileJournal(dir, { segmentBytes: 4096 });
    await j.open([0, 1, 7], EPOCH);
    const all = [...group(0, 1, 40), ...group(7, 1, 3)];
    await j.commit(all);
    await j.commit([...group(1, 1, 2), ...group(0, 41, 30)]);
    const head0 = j.head(0);
    await j.close();
    expect((await readdir(join(dir, shardDirName(0)))).length).toBeGreaterThan(1); // rolled
    const k = new FileJournal(dir, { segmentBytes: 4096 });
    await k.open([0, 1, 7], EPOCH);
    expect(k.head(0)).toEqual({ sequence: 70, hash: head0.hash });
    const r0 = await replayAll(k, 0);
    expect(r0.got).toEqual(group(0, 1, 70));
    expect(hashKey(r0.end.hash)).toBe(hashKey(head0.hash));
    expect((await replayAll(k, 7)).got).toEqual(group(7, 1, 3));
    expect((await replayAll(k, 1)).got).toEqual(group(1, 1, 2));
    expect((await replayAll(k, 1)).end.sequence).toBe(2);
    // replay from a mid-chain head (as after a snapshot), across a segment boundary
    const from25 = await headAfter(k, 0, 25);
    const tail = await replayAll(k, 0, from25);
    expect(tail.got.map((e) => e.sequence)).toEqual(range(26, 70));
    await expect(k.replay(0, { sequence: 25, hash: ZERO_HASH.map(() => 1) }, () => undefined))
      .rejects.toThrow(/does not follow the replay head/);
    await k.close();
  });

  it('keeps concurrent commits in order and rejects a gap synchronously', async () => {
    const j = new FileJournal(dir);
    await j.open([0, 1], EPOCH);
    const pending = [];
    for (let g = 0; g < 20; g++) pending.push(j.commit([entry(0, g + 1), entry(1, g + 1)]));
    expect(() => j.commit([entry(0, 99)])).toThrow(/does not follow 20/);
    expect(() => j.commit([{ ...entry(0, 21), epoch: 9 }])).toThrow(/epoch/);
    await Promise.all(pending);
    expect(j.head(0).sequence).toBe(20);
    expect((await replayAll(j, 1)).got).toEqual(group(1, 1, 20));
    await j.close();
  });

  it('cuts a torn tail at every byte of the last group and continues the chain', async () => {
    const j = new FileJournal(dir);
    await j.open([4], EPOCH);
    await j.commit(group(4, 1, 3));
    await j.commit(group(4, 4, 2));
    const before = (await stat(segPath(4, 1))).size;
    await j.commit([entry(4, 6, '{"x":"ü"}'), entry(4, 7)]);
    await j.close();
    const full = await readFile(segPath(4, 1));
    for (let cut = before; cut < full.length; cut++) {
      await writeFile(segPath(4, 1), full.subarray(0, cut));
      const logs: string[] = [];
      const k = new FileJournal(dir, { log: (ev) => logs.push(ev) });
      await k.open([4], EPOCH);
      expect(k.head(4).sequence).toBe(5);
      expect(logs).toEqual(cut === before ? [] : ['journal_torn_tail_cut']);
      expect((await stat(segPath(4, 1))).size).toBe(before);
      expect((await replayAll(k, 4)).got).toEqual(group(4, 1, 5));
      await k.commit([entry(4, 6)]);
      await k.close();
      const again = new FileJournal(dir);
      await again.open([4], EPOCH);
      expect((await replayAll(again, 4)).got).toEqual(group(4, 1, 6));
      await again.close();
    }
  }, 180_000); // hundreds of opens and closes, each with its syncs: slow on a shared disk

  it('reports corruption in an earlier group with shard, file and offset', async () => {
    const j = new FileJournal(dir);
    await j.open([2], EPOCH);
    await j.commit(group(2, 1, 2));
    const second = (await stat(segPath(2, 1))).size;
    await j.commit(group(2, 3, 2));
    await j.commit(group(2, 5, 2));
    await j.close();
    const bytes = await readFile(segPath(2, 1));
    bytes[second + 100] = (bytes[second + 100] ?? 0) ^ 0x10;
    await writeFile(segPath(2, 1), bytes);
    const k = new FileJournal(dir);
    await expect(k.open([2], EPOCH)).rejects.toThrow(
      new RegExp(`shard 2, .*journal-000000000001\\.seg, byte offset ${second}`),
    );
  });

  it('detects an edited amount, swapped entries and a deleted entry', async () => {
    const j = new FileJournal(dir);
    await j.open([0], EPOCH);
    for (let g = 0; g < 4; g++) await j.commit(group(0, g * 3 + 1, 3));
    await j.close();
    const good = await readFile(segPath(0, 1));
    const frames = splitFrames(good);
    const f1 = frames[1] ?? Buffer.alloc(0);
    const recs = splitRecords(f1);
    const tamper = async (mid: Buffer) => {
      await writeFile(segPath(0, 1), Buffer.concat([frames[0] ?? Buffer.alloc(0), mid,
        ...frames.slice(2)]));
      await expect(new FileJournal(dir).open([0], EPOCH)).rejects.toThrow(/journal corrupt/);
    };
    // edited amount: rewrite the i64 at body offset 26 of record 0 of frame 1
    const edited = Buffer.from(f1);
    edited.writeBigInt64LE(999n, 12 + 32 + 26);
    await tamper(edited);
    // swapped entries inside the frame
    const [a, b, c] = recs;
    if (a === undefined || b === undefined || c === undefined) throw new Error('3 records');
    await tamper(Buffer.concat([f1.subarray(0, 12), b, a, c]));
    // deleted entry (frame header fixed up so only the chain can tell)
    const del = Buffer.concat([f1.subarray(0, 12), a, c]);
    del.writeUInt32LE(del.length, 4);
    del.writeUInt32LE(2, 8);
    await tamper(del);
  });

  it('fails closed after a failed write', async () => {
    const j = new FileJournal(dir);
    await j.open([0], EPOCH);
    await j.commit(group(0, 1, 2));
    // Close the file handle under the journal so its next write fails (EBADF).
    type Inner = { closeHandles(): Promise<void>; shards: Map<number, { handle: Closable }> };
    type Closable = { close(): Promise<void> } | null;
    const inner = j as unknown as Inner;
    await inner.shards.get(0)?.handle?.close();
    await expect(j.commit([entry(0, 3)])).rejects.toThrow();
    await expect(j.commit([entry(0, 4)])).rejects.toThrow(/failed earlier/);
    await inner.closeHandles().catch(() => undefined);
    const k = new FileJournal(dir);
    await k.open([0], EPOCH);
    expect(k.head(0).sequence).toBe(2);
    await k.close();
  });

  it('refuses to open a journal written at a newer epoch', async () => {
    const j = new FileJournal(dir);
    await j.open([0], EPOCH);
    await j.commit([entry(0, 1)]);
    await j.close();
    await expect(new FileJournal(dir).open([0], EPOCH - 1)).rejects.toThrow(/newer than ours/);
  });

  it('treats a missing middle segment as corruption', async () => {
    const j = new FileJournal(dir, { segmentBytes: 4096 });
    await j.open([0], EPOCH);
    for (let g = 0; g < 6; g++) await j.commit(group(0, g * 10 + 1, 10));
    await j.close();
    const names = (await readdir(join(dir, shardDirName(0)))).sort();
    expect(names.length).toBeGreaterThan(2);
    await rm(join(dir, shardDirName(0), names[1] ?? ''));
    await expect(new FileJournal(dir).open([0], EPOCH)).rejects.toThrow(/segment starts at/);
  });

  it('replays from a snapshot head by skipping whole frames, checking the link to it', async () => {
    const j = new FileJournal(dir, { segmentBytes: 4096 });
    await j.open([0], EPOCH);
    for (let g = 0; g < 12; g++) await j.commit(group(0, g * 5 + 1, 5)); // frames of 5
    await j.close();
    const k = new FileJournal(dir, { segmentBytes: 4096 });
    await k.open([0], EPOCH);
    for (const at of [1, 5, 6, 23, 30, 41, 59, 60]) {
      const head = await headAfter(k, 0, at);
      const tail = await replayAll(k, 0, head);
      expect(tail.got.map((e) => e.sequence)).toEqual(range(at + 1, 60));
      expect(hashKey(tail.end.hash)).toBe(hashKey(k.head(0).hash));
      const forged = { sequence: at, hash: new Uint8Array(32).fill(7) };
      await expect(k.replay(0, forged, () => undefined)).rejects.toThrow(
        at === 60 ? /head hash differs/ : /does not follow the replay head/);
    }
    // A damaged record before the head is skipped, never applied; one after it is refused.
    const first = await readFile(segPath(0, 1));
    first[100] = (first[100] ?? 0) ^ 0x10; // inside frame 1 (sequences 1-5)
    await writeFile(segPath(0, 1), first);
    expect((await replayAll(k, 0, headAt(0, 5))).got.length).toBe(55);
    await expect(replayAll(k, 0)).rejects.toThrow(/journal corrupt/);
    await expect(replayAll(k, 0, headAt(0, 3))).rejects.toThrow(/journal corrupt/);
    await k.close();
  });

  it('seeks past frames beyond its 8 MiB read window by their headers alone', async () => {
    const detail = `{"pad":"${'x'.repeat(1000)}"}`;
    const big = (from: number, n: number) =>
      Array.from({ length: n }, (_, i) => entry(0, from + i, detail));
    const j = new FileJournal(dir, { segmentBytes: 64 * 1024 * 1024 });
    await j.open([0], EPOCH);
    for (let g = 0; g < 5; g++) await j.commit(big(g * 2800 + 1, 2800)); // ~3 MiB frames
    await j.close();
    expect((await stat(segPath(0, 1))).size).toBeGreaterThan(12 * 1024 * 1024);
    const k = new FileJournal(dir);
    await k.open([0], EPOCH);
    let hash: Uint8Array = ZERO_HASH;
    const heads = new Map<number, ChainHead>();
    for (const e of big(1, 14_000)) {
      hash = entryHash(hash, e);
      if ([8_410, 11_200, 13_999].includes(e.sequence)) {
        heads.set(e.sequence, { sequence: e.sequence, hash });
      }
    }
    for (const [at, head] of heads) {
      const tail = await replayAll(k, 0, head);
      expect(tail.got.map((e) => e.sequence)).toEqual(range(at + 1, 14_000));
      const forged = { sequence: at, hash: new Uint8Array(32).fill(7) };
      await expect(k.replay(0, forged, () => undefined)).rejects.toThrow(
        /does not follow the replay head/);
    }
    await k.close();
  });

  it('opens a long journal by its newest segment; older records checked on replay', async () => {
    const j = new FileJournal(dir, { segmentBytes: 4096 });
    await j.open([0], EPOCH);
    for (let g = 0; g < 20; g++) await j.commit(group(0, g * 5 + 1, 5));
    const head = j.head(0);
    await j.close();
    const first = await readFile(segPath(0, 1));
    first[first.length - 200] = (first[first.length - 200] ?? 0) ^ 0x10; // not at its edges
    await writeFile(segPath(0, 1), first);
    const k = new FileJournal(dir, { segmentBytes: 4096 });
    await k.open([0], EPOCH);
    expect(k.head(0)).toEqual({ sequence: 100, hash: head.hash });
    await expect(replayAll(k, 0)).rejects.toThrow(/journal corrupt: shard 0, .*0001\.seg/);
    await k.close();
    first[first.length - 1] = (first[first.length - 1] ?? 0) ^ 0x10; // its last hash byte
    await writeFile(segPath(0, 1), first);
    await expect(new FileJournal(dir).open([0], EPOCH)).rejects.toThrow(/does not continue/);
  });

  it('takes the head from the segment before a newest one that lost its only frame', async () => {
    const j = new FileJournal(dir, { segmentBytes: 4096 });
    await j.open([0], EPOCH);
    let g = 0;
    while ((await readdir(join(dir, shardDirName(0)))).length < 2) {
      await j.commit(group(0, g++ * 5 + 1, 5));
    }
    const newestFirst = (g - 1) * 5 + 1;
    await j.close();
    const newest = segPath(0, newestFirst);
    await writeFile(newest, (await readFile(newest)).subarray(0, 30)); // torn first frame
    const k = new FileJournal(dir, { segmentBytes: 4096 });
    await k.open([0], EPOCH);
    expect(k.head(0).sequence).toBe(newestFirst - 1);
    expect((await stat(newest)).size).toBe(0);
    await k.commit(group(0, newestFirst, 5));
    await k.close();
    const again = new FileJournal(dir, { segmentBytes: 4096 });
    await again.open([0], EPOCH);
    expect((await replayAll(again, 0)).got).toEqual(group(0, 1, newestFirst + 4));
    await again.close();
  });
});

/** The chain head at `seq`, computed from the entries themselves (not from the files). */
function headAt(shard: number, seq: number): ChainHead {
  let hash: Uint8Array = ZERO_HASH;
  for (let s = 1; s <= seq; s++) hash = entryHash(hash, entry(shard, s));
  return { sequence: seq, hash };
}

function range(a: number, b: number): number[] {
  return Array.from({ length: b - a + 1 }, (_, i) => a + i);
}

async function headAfter(j: FileJournal, shard: number, seq: number): Promise<ChainHead> {
  let head: ChainHead = START;
  let hashAt: Uint8Array = ZERO_HASH;
  await j.replay(shard, START, (e) => {
    hashAt = entryHash(hashAt, e);
    if (e.sequence === seq) head = { sequence: seq, hash: hashAt };
  });
  return head;
}

function splitFrames(buf: Buffer): Buffer[] {
  const out: Buffer[] = [];
  for (let off = 0; off < buf.length; ) {
    const len = buf.readUInt32LE(off + 4);
    out.push(buf.subarray(off, off + len));
    off += len;
  }
  return out;
}

function splitRecords(frame: Buffer): Buffer[] {
  const out: Buffer[] = [];
  for (let off = 12; off < frame.length; ) {
    let p = off + 32 + 34;
    for (let s = 0; s < 5; s++) p += 2 + frame.readUInt16LE(p);
    p += 4 + frame.readUInt32LE(p) + 32;
    out.push(frame.subarray(off, p));
    off = p;
  }
  return out;
}
