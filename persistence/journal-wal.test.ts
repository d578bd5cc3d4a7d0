import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import {
  cp, mkdtemp, open, readdir, readFile, rm, stat, truncate, writeFile,
} from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { FileJournal, segmentName, settleFileJournal, shardDirName } from './journal-file.js';
import { WAL_DIR, decodeWalHeader } from './journal-wal.js';
import { ZERO_HASH, type JournalEntry } from '../protocol/journal-entry.js';

// A crash of the machine (not of the process) can leave a shard file without pages written
// after its last sync, or with stale ones. Simulated here: the journal is copied while open
// (as the crash found it), then the copy's shard files lose what came after the checkpoint.

let dir = '';
let copy = '';
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'journal-wal-'));
  copy = `${dir}-crashed`;
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
  await rm(copy, { recursive: true, force: true });
});

const EPOCH = 2;
function entry(shard: number, sequence: number): JournalEntry {
  return {
    shard, sequence, epoch: EPOCH, kind: 'post', tenant: `t${shard}`, id: `tx-${sequence}`,
    debitAccountId: 'a', creditAccountId: 'b', amountMinor: BigInt(sequence),
    currencyCode: 'USD', time: 1_700_000_000_000 + sequence, detail: 'x'.repeat(sequence % 50),
  };
}
function group(shard: number, from: number, n: number): JournalEntry[] {
  return Array.from({ length: n }, (_, i) => entry(shard, from + i));
}

/** Commits groups first..first+groups-1, each touching every shard with 7 entries. */
async function commitGroups(j: FileJournal, shards: number[], groups: number, first = 0):
  Promise<void> {
  for (let g = first; g < first + groups; g++) {
    await j.commit(shards.flatMap((s) => group(s, g * 7 + 1, 7)));
  }
}

async function replayAll(j: FileJournal, shard: number): Promise<JournalEntry[]> {
  const got: JournalEntry[] = [];
  await j.replay(shard, { sequence: 0, hash: ZERO_HASH }, (e) => got.push(e));
  return got;
}

async function segmentFiles(root: string, shard: number): Promise<string[]> {
  const d = join(root, shardDirName(shard));
  return (await readdir(d)).filter((n) => n.endsWith('.seg')).map((n) => join(d, n));
}

async function walFiles(root: string): Promise<string[]> {
  return (await readdir(join(root, WAL_DIR))).map((n) => join(root, WAL_DIR, n));
}

async function expectJournal(root: string, shards: number[], entries: number,
  opts = {}): Promise<void> {
  const k = new FileJournal(root, opts);
  await k.open(shards, EPOCH);
  for (const s of shards) {
    expect(k.head(s).sequence).toBe(entries);
    expect(await replayAll(k, s)).toEqual(group(s, 1, entries));
  }
  await k.commit(shards.map((s) => entry(s, entries + 1))); // the chain goes on
  await k.close();
}

describe('FileJournal write-ahead log', () => {
  it('restores every shard from the log when the shard files lost all unsynced writes',
    async () => {
      const shards = [0, 3, 5];
      const opts = { segmentBytes: 4096, checkpointMs: 3_600_000 };
      const j = new FileJournal(dir, opts);
      await j.open(shards, EPOCH);
      await commitGroups(j, shards, 12); // ~10 KiB per shard: segments roll over
      await cp(dir, copy, { recursive: true });
      await j.close();
      // The only checkpoint was the first commit's, before any write: nothing of the shard
      // files is synced.
      expect((await segmentFiles(copy, 3)).length).toBeGreaterThan(1);
      for (const s of shards) for (const f of await segmentFiles(copy, s)) await rm(f);
      // a crash between a checkpoint's temp file and its rename leaves the temp file: ignored
      const [log] = await walFiles(copy);
      await writeFile(`${log as string}.tmp`, 'half a header');
      await expectJournal(copy, shards, 84, opts);
      expect((await walFiles(copy)).filter((f) => f.endsWith('.log'))).toEqual([]);
    });

  it('rewrites stale pages after the checkpoint and keeps what was synced before it',
    async () => {
      const shards = [1, 2];
      const opts = { segmentBytes: 4096, walBytes: 3000 }; // a checkpoint every few groups
      const j = new FileJournal(dir, opts);
      await j.open(shards, EPOCH);
      await commitGroups(j, shards, 15);
      await cp(dir, copy, { recursive: true });
      await j.close();
      const [wal] = await walFiles(copy);
      const header = decodeWalHeader(await readFile(wal as string));
      expect(header).not.toBeNull();
      for (const h of header?.shards ?? []) {
        expect(h.sequence).toBeGreaterThan(0); // a checkpoint after writes happened
        const seg = join(copy, shardDirName(h.shard), segmentName(h.segment));
        const bytes = await readFile(seg);
        // zeros where the crash lost the pages written after the checkpoint
        await writeFile(seg, Buffer.concat([bytes.subarray(0, h.size),
          Buffer.alloc(bytes.length - h.size + 100)]));
      }
      await expectJournal(copy, shards, 105, opts);
    });

  it('leaves out a group whose log entry is torn (never acknowledged)', async () => {
    const shards = [0, 1];
    const opts = { checkpointMs: 3_600_000 };
    const j = new FileJournal(dir, opts);
    await j.open(shards, EPOCH);
    await commitGroups(j, shards, 2);
    const before = (await readFile((await walFiles(dir))[0] as string)).length;
    await commitGroups(j, shards, 3, 2);
    const crashed = `${copy}-src`;
    await cp(dir, crashed, { recursive: true });
    await j.close();
    try {
      const walName = (await readdir(join(crashed, WAL_DIR)))[0] as string;
      const full = await readFile(join(crashed, WAL_DIR, walName));
      const step = Math.max(1, Math.floor((full.length - before) / 40));
      for (let cut = before; cut < full.length; cut += step) {
        await rm(copy, { recursive: true, force: true });
        await cp(crashed, copy, { recursive: true });
        await writeFile(join(copy, WAL_DIR, walName), full.subarray(0, cut));
        for (const s of shards) for (const f of await segmentFiles(copy, s)) await truncate(f, 0);
        const k = new FileJournal(copy, opts);
        await k.open(shards, EPOCH);
        // 7 entries per shard and group: a shard has a group whole from the log, or not at all
        // (shard 0's entry of the cut group can be whole while shard 1's is not).
        for (const s of shards) {
          expect([14, 21, 28, 35]).toContain(k.head(s).sequence);
          expect(await replayAll(k, s)).toEqual(group(s, 1, k.head(s).sequence));
        }
        expect(k.head(1).sequence).toBeLessThan(35);
        await k.close();
      }
    } finally {
      await rm(crashed, { recursive: true, force: true });
    }
  });

  it('refuses a log damaged before its last group, and leaves the files as they were',
    async () => {
      const j = new FileJournal(dir, { checkpointMs: 3_600_000 });
      await j.open([0, 1], EPOCH);
      await commitGroups(j, [0, 1], 4);
      await cp(dir, copy, { recursive: true });
      await j.close();
      const wal = (await walFiles(copy))[0] as string;
      const bytes = await readFile(wal);
      const header = decodeWalHeader(bytes);
      const at = (header?.end ?? 0) + 200; // inside the first group's first frame
      bytes[at] = (bytes[at] ?? 0) ^ 1;
      await writeFile(wal, bytes);
      const seg = (await segmentFiles(copy, 1))[0] as string;
      const before = await readFile(seg);
      await expect(new FileJournal(copy).open([0, 1], EPOCH)).rejects.toThrow(/damaged/);
      expect(await readFile(seg)).toEqual(before);
    });

  it('fails closed when a background sync of the shard files failed, never retrying it',
    async () => {
      const j = new FileJournal(dir, { walBytes: 6000, checkpointMs: 3_600_000 });
      await j.open([0, 1], EPOCH);
      await commitGroups(j, [0, 1], 1);
      // Shard 1's handle closed under the journal: the background sync of it fails. Then a
      // good handle again: a retried sync would pass, so only a kept failure fails the group.
      type Handle = { close(): Promise<void> };
      type Inner = { flushFailure: unknown; shards: Map<number, { handle: Handle | null }> };
      const inner = j as unknown as Inner;
      const files1 = inner.shards.get(1);
      await files1?.handle?.close();
      let seq = 8;
      for (; seq < 400 && inner.flushFailure === null; seq += 7) {
        await j.commit(group(0, seq, 7));
        await new Promise((r) => setTimeout(r, 5)); // the background sync settles
      }
      expect(String(inner.flushFailure)).toMatch(/file closed|EBADF/i);
      if (files1) files1.handle = await open(join(dir, shardDirName(1), segmentName(1)), 'r+');
      let acked = seq - 1;
      let failure: unknown = null;
      for (; seq < 800 && failure === null; seq += 7) {
        try {
          await j.commit(group(0, seq, 7));
          acked = seq + 6;
        } catch (err) {
          failure = err;
        }
      }
      expect(String(failure)).toMatch(/file closed|EBADF/i);
      await expect(j.commit(group(0, acked + 1, 1))).rejects.toThrow(/failed earlier/);
      await j.close();
      expect((await walFiles(dir)).length).toBe(1); // unsynced files keep their log
      const k = new FileJournal(dir);
      await k.open([0, 1], EPOCH);
      expect(k.head(0).sequence).toBe(acked);
      expect(await replayAll(k, 0)).toEqual(group(0, 1, acked));
      expect(await replayAll(k, 1)).toEqual(group(1, 1, 7));
      await k.close();
    });

  it('rejects a group whose log append failed; reopened, it is gone though a shard file took it',
    async () => {
      const j = new FileJournal(dir, { checkpointMs: 3_600_000 });
      await j.open([0, 1], EPOCH);
      await commitGroups(j, [0, 1], 2);
      const sizes = async (): Promise<number> => {
        let n = 0;
        for (const s of [0, 1]) {
          for (const f of await segmentFiles(dir, s)) n += (await stat(f)).size;
        }
        return n;
      };
      const acked = await sizes();
      // The log's handle closed under the journal: the shard files take the group's frames,
      // the log append fails, so the group is rejected (never acknowledged).
      type Inner = { wal: { handle: { close(): Promise<void> } | null } };
      await (j as unknown as Inner).wal.handle?.close();
      await expect(j.commit([...group(0, 15, 7), ...group(1, 15, 7)])).rejects.toThrow();
      expect(await sizes()).toBeGreaterThan(acked);
      await expect(j.commit(group(0, 15, 1))).rejects.toThrow(/failed earlier/);
      await j.close();
      await expectJournal(dir, [0, 1], 14);
    });

  it('refuses a log that also covers shards it does not open; a pod settles it', async () => {
    const j = new FileJournal(dir, { checkpointMs: 3_600_000 });
    await j.open([0, 1], EPOCH);
    await commitGroups(j, [0, 1], 2);
    await cp(dir, copy, { recursive: true });
    await j.close();
    expect(await walFiles(dir)).toEqual([]); // closed cleanly: the shard files alone
    for (const s of [0, 1]) for (const f of await segmentFiles(copy, s)) await truncate(f, 0);
    await expect(new FileJournal(copy).open([0], EPOCH)).rejects.toThrow(/also covers shards/);
    expect(await settleFileJournal(copy)).toEqual([0, 1]);
    expect(await walFiles(copy)).toEqual([]);
    await expectJournal(copy, [0], 14);
    await expectJournal(copy, [1], 14);
  });
});
