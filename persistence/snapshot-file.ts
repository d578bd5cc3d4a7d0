// Embedded snapshot store: one checksummed file per snapshot, written to a temp file, fsynced
// and renamed into place. Never deletes a snapshot before a newer one is complete.

import { createHash } from 'node:crypto';
import { mkdir, open, readFile, rename, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import { HASH_BYTES } from '../protocol/journal-entry.js';
import { fsyncDir, shardDirName } from './journal-file.js';
import { readdirIfAny } from './journal-segments.js';
import { stateSha256 } from './stepped-hash.js';
import type { Snapshot, SnapshotStore } from './journal.js';

/*
 * File layout (little-endian), `${dir}/shard-NNN/snapshot-<sequence, 12 digits>.snap`:
 *   0   magic u32 'LSN1'   4 version u32 (1)   8 shard u32   12 epoch u32
 *   16  sequence u32 low, u32 high             24 head hash (32)
 *   56  payload length u32                     60 SHA-256 of payload (32)
 *   92  SHA-256 of bytes 0..92 (32)            124 payload
 * The header has its own checksum so a flipped header bit is caught as well as a payload one.
 */

const MAGIC = 0x314e534c; // "LSN1"
const VERSION = 1;
const HEADER_BYTES = 124;
const KEEP = 2;
const SNAP_RE = /^snapshot-(\d{12})\.snap$/;

export interface FileSnapshotStoreOptions {
  /** told about every snapshot file skipped as corrupt or incomplete */
  log?: (event: string, fields: Record<string, unknown>) => void;
}

function sha256(data: Uint8Array): Buffer {
  return createHash('sha256').update(data).digest();
}

export function snapshotName(sequence: number): string {
  return `snapshot-${String(sequence).padStart(12, '0')}.snap`;
}

/** The file header of `s`, given the SHA-256 of its state. */
function encodeHeader(s: Snapshot, stateSha256: Uint8Array): Buffer {
  if (s.head.hash.length !== HASH_BYTES) throw new RangeError('snapshot head hash: 32 bytes');
  const out = Buffer.alloc(HEADER_BYTES);
  out.writeUInt32LE(MAGIC, 0);
  out.writeUInt32LE(VERSION, 4);
  out.writeUInt32LE(s.shard, 8);
  out.writeUInt32LE(s.epoch, 12);
  out.writeUInt32LE(s.head.sequence % 2 ** 32, 16);
  out.writeUInt32LE(Math.floor(s.head.sequence / 2 ** 32), 20);
  out.set(s.head.hash, 24);
  out.writeUInt32LE(s.state.length, 56);
  out.set(stateSha256, 60);
  out.set(sha256(out.subarray(0, 92)), 92);
  return out;
}

/** The whole file of a snapshot (tests; save() writes header and state without a copy). */
export function encodeSnapshot(s: Snapshot): Buffer {
  return Buffer.concat([encodeHeader(s, sha256(s.state)), s.state]);
}

/** The snapshot in `buf`, or why it is not one (never throws on garbage). */
export function decodeSnapshot(buf: Buffer): Snapshot | string {
  if (buf.length < HEADER_BYTES) return 'truncated header';
  if (buf.readUInt32LE(0) !== MAGIC) return 'bad magic';
  if (buf.readUInt32LE(4) !== VERSION) return 'bad version';
  if (!sha256(buf.subarray(0, 92)).equals(buf.subarray(92, HEADER_BYTES))) {
    return 'bad header checksum';
  }
  const length = buf.readUInt32LE(56);
  if (buf.length !== HEADER_BYTES + length) return 'payload length mismatch';
  const state = buf.subarray(HEADER_BYTES);
  if (!sha256(state).equals(buf.subarray(60, 92))) return 'bad payload checksum';
  return {
    shard: buf.readUInt32LE(8),
    epoch: buf.readUInt32LE(12),
    head: {
      sequence: buf.readUInt32LE(20) * 2 ** 32 + buf.readUInt32LE(16),
      hash: Buffer.from(buf.subarray(24, 56)),
    },
    state,
  };
}

export class FileSnapshotStore implements SnapshotStore {
  private readonly log: NonNullable<FileSnapshotStoreOptions['log']>;
  private tempCounter = 0;

  constructor(
    private readonly dir: string,
    opts: FileSnapshotStoreOptions = {},
  ) {
    this.log = opts.log ?? (() => undefined);
  }

  async save(snapshot: Snapshot): Promise<void> {
    const dir = await this.shardDir(snapshot.shard);
    // Written from the caller's bytes, with the writer's sha256 or one hashed a step per turn:
    // a snapshot of hundreds of MiB is never copied or hashed in one go on the shard's thread.
    const header = encodeHeader(snapshot, await stateSha256(snapshot));
    const temp = join(dir, `.tmp-${process.pid}-${++this.tempCounter}.snap`);
    const handle = await open(temp, 'wx');
    try {
      await handle.writeFile(header);
      await handle.writeFile(snapshot.state);
      await handle.sync();
    } finally {
      await handle.close();
    }
    await rename(temp, join(dir, snapshotName(snapshot.head.sequence)));
    await fsyncDir(dir);
    await this.prune(dir);
  }

  async loadNewest(shard: number): Promise<Snapshot | null> {
    const dir = join(this.dir, shardDirName(shard));
    for (const name of (await listSnapshots(dir)).reverse()) {
      const file = join(dir, name);
      const decoded = decodeSnapshot(await readFile(file));
      const problem =
        typeof decoded === 'string' ? decoded : decoded.shard !== shard ? 'other shard' : null;
      if (problem === null && typeof decoded !== 'string') return decoded;
      this.log('snapshot_skipped', { shard, file, reason: problem });
    }
    return null;
  }

  async close(): Promise<void> {
    // Nothing held open between calls.
  }

  private async shardDir(shard: number): Promise<string> {
    const dir = join(this.dir, shardDirName(shard));
    const created = await mkdir(dir, { recursive: true });
    if (created !== undefined) {
      await fsyncDir(this.dir);
      if (created !== dir) await fsyncDir(join(this.dir, '..'));
    }
    return dir;
  }

  /** Keeps the KEEP newest snapshots and removes leftover temp files of this process. */
  private async prune(dir: string): Promise<void> {
    const names = await listSnapshots(dir);
    const old = names.slice(0, Math.max(0, names.length - KEEP));
    for (const name of old) await unlink(join(dir, name));
    if (old.length > 0) await fsyncDir(dir);
  }
}

async function listSnapshots(dir: string): Promise<string[]> {
  // fixed-width digits sort numerically
  return (await readdirIfAny(dir)).filter((n) => SNAP_RE.test(n)).sort();
}
