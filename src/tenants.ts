// Tenant registry and credentials: opaque random bearer tokens, kept only as SHA-256 hashes.
// Embedded mode: `${dataDir}/tenants.json` (temp + fsync + rename); PostgreSQL: tenants-pg.ts.
// Never stores or logs a raw token.

import * as crypto from 'node:crypto';
import { createHash, randomBytes } from 'node:crypto';
import { mkdir, open, readFile, rename } from 'node:fs/promises';
import path from 'node:path';
import { errorRecord, type ErrorRecord } from '../protocol/errors.js';

const FILE_NAME = 'tenants.json';
const FILE_VERSION = 1;
const ID_RE = /^[A-Za-z0-9._:-]{1,64}$/;
/** Tokens kept per tenant; issuing one more retires the oldest (rotation, not growth). */
export const TOKENS_PER_TENANT_MAX = 64;
/** Longer bearer strings are rejected before hashing. */
const TOKEN_CHARS_MAX = 256;
const TOKEN_PREFIX = 'sl_';
/** The shape newToken() produces: 'sl_' + 32 random bytes in base64url. */
const TOKEN_RE = /^sl_[A-Za-z0-9_-]{43}$/;

interface TenantRecord {
  createdAt: string;
  /** hex SHA-256 of each live token, oldest first */
  tokenHashes: string[];
}

interface TenantFile {
  version: number;
  tenants: Record<string, TenantRecord>;
}

export type CreateTenantResult =
  | { ok: true; id: string; token: string }
  | { ok: false; error: ErrorRecord };

/**
 * What the gateway needs of a tenant registry (file-backed here, PostgreSQL-backed in
 * tenants-pg.ts). `authenticate` is on the hot path of every request: synchronous, in memory.
 */
export interface TenantRegistry {
  has(id: string): boolean;
  ids(): string[];
  /** The tenant a bearer token belongs to, or null. Never does I/O while the caller waits. */
  authenticate(token: string): string | null;
  /** Registers a tenant and returns its first token; durable when the promise resolves. */
  createTenant(id: string): Promise<CreateTenantResult>;
  /** A further token for an existing tenant (null when unknown); durable on resolve. */
  issueToken(id: string): Promise<string | null>;
  close(): Promise<void>;
}

/**
 * hex SHA-256: the only form in which a token is ever stored. Runs on every request: the
 * one-shot crypto.hash (Node >= 20.12) costs a third of createHash's object and two calls.
 */
export function hashToken(token: string): string {
  return typeof crypto.hash === 'function'
    ? crypto.hash('sha256', token, 'hex')
    : createHash('sha256').update(token).digest('hex');
}

export function newToken(): string {
  return TOKEN_PREFIX + randomBytes(32).toString('base64url');
}

/** Bounded before hashing: a longer bearer string can never be a token. */
export function isBearerLength(token: string): boolean {
  return token.length > 0 && token.length <= TOKEN_CHARS_MAX;
}

/** Has the shape of a token this code issues (a miss worth a registry refresh). */
export function looksLikeToken(token: string): boolean {
  return TOKEN_RE.test(token);
}

export function isTenantId(id: unknown): id is string {
  return typeof id === 'string' && ID_RE.test(id);
}

function parseFile(text: string, file: string): TenantFile {
  const parsed: unknown = JSON.parse(text);
  if (typeof parsed !== 'object' || parsed === null) throw new Error(`${file}: not an object`);
  const { version, tenants } = parsed as Partial<TenantFile>;
  if (version !== FILE_VERSION || typeof tenants !== 'object' || tenants === null) {
    throw new Error(`${file}: unsupported version or missing tenants`);
  }
  for (const [id, rec] of Object.entries(tenants)) {
    if (!isTenantId(id) || !Array.isArray(rec.tokenHashes)) {
      throw new Error(`${file}: bad tenant record ${JSON.stringify(id)}`);
    }
  }
  return { version, tenants };
}

/** A tenant of a tenants.json file (for the one-time import into PostgreSQL). */
export interface FileTenant {
  id: string;
  /** hex SHA-256 of each live token, oldest first */
  tokenHashes: string[];
}

/** The tenants of `${dataDir}/tenants.json`, or null when there is no such file. */
export async function readTenantFile(dataDir: string): Promise<FileTenant[] | null> {
  const file = path.join(dataDir, FILE_NAME);
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw err;
  }
  const data = parseFile(text, file);
  return Object.entries(data.tenants).map(([id, rec]) => ({ id, tokenHashes: rec.tokenHashes }));
}

/** Embedded mode: one pod, its tenants in `${dataDir}/tenants.json`. */
export class FileTenantRegistry implements TenantRegistry {
  /** token hash → tenant id */
  private readonly byHash = new Map<string, string>();
  /** serialises file writes so a later write never lands before an earlier one */
  private writing: Promise<void> = Promise.resolve();

  private constructor(
    private readonly file: string,
    private readonly data: TenantFile,
  ) {
    for (const [id, rec] of Object.entries(data.tenants)) {
      for (const h of rec.tokenHashes) this.byHash.set(h, id);
    }
  }

  /** Loads (or starts) the registry of a data directory. */
  static async open(dataDir: string): Promise<FileTenantRegistry> {
    await mkdir(dataDir, { recursive: true });
    const file = path.join(dataDir, FILE_NAME);
    let data: TenantFile = { version: FILE_VERSION, tenants: {} };
    try {
      data = parseFile(await readFile(file, 'utf8'), file);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    }
    return new FileTenantRegistry(file, data);
  }

  has(id: string): boolean {
    return Object.prototype.hasOwnProperty.call(this.data.tenants, id);
  }

  ids(): string[] {
    return Object.keys(this.data.tenants);
  }

  authenticate(token: string): string | null {
    if (!isBearerLength(token)) return null;
    return this.byHash.get(hashToken(token)) ?? null;
  }

  async createTenant(id: string): Promise<CreateTenantResult> {
    if (!isTenantId(id)) return { ok: false, error: errorRecord('invalid_id') };
    if (this.has(id)) return { ok: false, error: errorRecord('tenant_exists') };
    this.data.tenants[id] = { createdAt: new Date().toISOString(), tokenHashes: [] };
    const token = this.addToken(id);
    try {
      await this.persist();
    } catch (err) {
      this.byHash.delete(hashToken(token));
      delete this.data.tenants[id];
      throw err;
    }
    return { ok: true, id, token };
  }

  async issueToken(id: string): Promise<string | null> {
    if (!this.has(id)) return null;
    const token = this.addToken(id);
    try {
      await this.persist();
    } catch (err) {
      this.revoke(id, hashToken(token));
      throw err;
    }
    return token;
  }

  /** Waits for the last write; nothing is left to close. */
  async close(): Promise<void> {
    await this.writing;
  }

  private addToken(id: string): string {
    const rec = this.data.tenants[id];
    if (rec === undefined) throw new Error(`tenant ${id} vanished`);
    const token = newToken();
    const hash = hashToken(token);
    rec.tokenHashes.push(hash);
    this.byHash.set(hash, id);
    while (rec.tokenHashes.length > TOKENS_PER_TENANT_MAX) {
      const retired = rec.tokenHashes.shift();
      if (retired !== undefined) this.byHash.delete(retired);
    }
    return token;
  }

  private revoke(id: string, hash: string): void {
    this.byHash.delete(hash);
    const rec = this.data.tenants[id];
    if (rec !== undefined) rec.tokenHashes = rec.tokenHashes.filter((h) => h !== hash);
  }

  private persist(): Promise<void> {
    const text = JSON.stringify(this.data, null, 2) + '\n';
    const next = this.writing.then(() => writeDurably(this.file, text));
    // a failed write must not wedge later writes; the caller of this one sees the error
    this.writing = next.catch(() => undefined);
    return next;
  }
}

/** Write to a temp file, fsync it, rename over the target, fsync the directory. */
async function writeDurably(file: string, text: string): Promise<void> {
  const tmp = `${file}.${process.pid}.tmp`;
  const fh = await open(tmp, 'w', 0o600);
  try {
    await fh.writeFile(text, 'utf8');
    await fh.sync();
  } finally {
    await fh.close();
  }
  await rename(tmp, file);
  const dir = await open(path.dirname(file), 'r');
  try {
    await dir.sync();
  } finally {
    await dir.close();
  }
}
