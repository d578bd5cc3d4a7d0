import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createHash } from 'node:crypto';
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { FileSnapshotStore, encodeSnapshot, snapshotName } from './snapshot-file.js';
import { shardDirName } from './journal-file.js';
import type { Snapshot } from './journal.js';

let dir = '';
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'snapshot-file-'));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

function snap(sequence: number, shard = 3): Snapshot {
  return {
    shard, epoch: 2, head: { sequence, hash: new Uint8Array(32).fill(sequence & 0xff) },
    state: Buffer.from(`state at ${sequence} `.repeat(50)),
  };
}
const file = (seq: number, shard = 3) => join(dir, shardDirName(shard), snapshotName(seq));

describe('FileSnapshotStore', () => {
  it('returns null when there is none, and the newest valid one otherwise', async () => {
    const store = new FileSnapshotStore(dir);
    expect(await store.loadNewest(3)).toBeNull();
    for (const seq of [10, 20, 30]) await store.save(snap(seq));
    const got = await store.loadNewest(3);
    expect(got?.head.sequence).toBe(30);
    expect(Buffer.from(got?.state ?? []).equals(Buffer.from(snap(30).state))).toBe(true);
    expect(got?.head.hash).toEqual(Buffer.from(snap(30).head.hash));
    expect((await readdir(join(dir, shardDirName(3)))).sort())
      .toEqual([snapshotName(20), snapshotName(30)]);
    expect(await store.loadNewest(4)).toBeNull();
    await store.close();
  });

  it('falls back to the older snapshot when the newest is corrupt or truncated', async () => {
    const skipped: unknown[] = [];
    const store = new FileSnapshotStore(dir, { log: (_e, f) => skipped.push(f.reason) });
    await store.save(snap(10));
    await store.save(snap(20));
    const bytes = await readFile(file(20));
    bytes[bytes.length - 5] = (bytes[bytes.length - 5] ?? 0) ^ 1;
    await writeFile(file(20), bytes);
    expect((await store.loadNewest(3))?.head.sequence).toBe(10);
    await writeFile(file(20), bytes.subarray(0, 200));
    expect((await store.loadNewest(3))?.head.sequence).toBe(10);
    const header = Buffer.from(encodeSnapshot(snap(20)));
    header[16] = 99; // sequence field: caught by the header checksum
    await writeFile(file(20), header);
    expect((await store.loadNewest(3))?.head.sequence).toBe(10);
    expect(skipped).toEqual(['bad payload checksum', 'payload length mismatch',
      'bad header checksum']);
  });

  it('ignores a truncated temp file left by a crash', async () => {
    const store = new FileSnapshotStore(dir);
    await store.save(snap(10));
    const partial = encodeSnapshot(snap(50)).subarray(0, 100);
    await writeFile(join(dir, shardDirName(3), '.tmp-1-1.snap'), partial);
    expect((await store.loadNewest(3))?.head.sequence).toBe(10);
  });

  it('checks loads against the sha256 a snapshot comes with, not hashing it again', async () => {
    const store = new FileSnapshotStore(dir);
    const s10 = snap(10);
    await store.save({ ...s10, sha256: createHash('sha256').update(s10.state).digest() });
    await store.save({ ...snap(20), sha256: new Uint8Array(32) }); // not the bytes' hash
    expect((await store.loadNewest(3))?.head.sequence).toBe(10); // 20 fails its check
    await expect(store.save({ ...snap(30), sha256: new Uint8Array(31) }))
      .rejects.toThrow(/32 bytes/);
  });
});
