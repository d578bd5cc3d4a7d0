// The tenant registry of multi-pod mode: tenants and token hashes in PostgreSQL (database 0 of
// LEDGER_PG_URLS), every pod answering `authenticate` from an in-memory map kept fresh. Never
// queries the database while a request waits, and never once per unknown token.

import type { Logger } from 'pino';
import { errorRecord } from '../protocol/errors.js';
import { PgTenantStore, type TenantChange, type TenantRows } from '../persistence/tenant-store.js';
import {
  hashToken,
  isBearerLength,
  isTenantId,
  looksLikeToken,
  newToken,
  readTenantFile,
  TOKENS_PER_TENANT_MAX,
  type CreateTenantResult,
  type TenantRegistry,
} from './tenants.js';

/*
 * Propagation: how soon a token created (or retired) on pod B works (or stops working) on A.
 *
 *   1. NOTIFY (normal case): the trigger announces each change at commit; A applies the payload
 *      to its map without a query. Milliseconds (measured in tenants-pg.test.ts and the
 *      cluster tests).
 *   2. Unknown token (A's LISTEN connection is down, or the notification is still in flight):
 *      A answers 401 and schedules a full reload, at most one per `missReloadGapMs` (250 ms)
 *      however many unknown tokens arrive, coalesced while one runs. A retry a moment later
 *      succeeds: worst case gap + one reload, well under a second. Only strings shaped like our
 *      tokens ('sl_' + 43 chars) count, so garbage credentials cost nothing beyond the hash.
 *   3. Periodic full reload every `reloadMs` (10 s): the safety net for everything else
 *      (retirements or rows changed by hand while LISTEN was down).
 * A reload replaces the map; changes notified while it ran are applied again on top of its
 * result, so a reload that started before a change can never undo it.
 */

export interface PgTenantRegistryOptions {
  /** database 0 of LEDGER_PG_URLS */
  url: string;
  podId: string;
  log: Logger;
  /** import `${dataDir}/tenants.json` (embedded mode's file) for ids PostgreSQL lacks */
  dataDir?: string;
  /** period of the full reload; default 10 s */
  reloadMs?: number;
  /** least time between two reloads asked for by unknown tokens; default 250 ms */
  missReloadGapMs?: number;
  /** false: no LISTEN (tests of the unknown-token path); default true */
  listen?: boolean;
}

const RELOAD_MS = 10_000;
const MISS_RELOAD_GAP_MS = 250;
/** Changes remembered while a reload runs; past this, one more reload is queued instead. */
const PENDING_CHANGES_MAX = 10_000;

export class PgTenantRegistry implements TenantRegistry {
  /** token hash (hex) → tenant id */
  private byHash = new Map<string, string>();
  private tenants = new Set<string>();
  private readonly gapMs: number;
  private reloading: Promise<void> | null = null;
  /** changes notified while a reload runs (null: none running); re-applied on its result */
  private pending: TenantChange[] | null = null;
  private reloadQueued = false;
  private reloadTimer: NodeJS.Timeout | null = null;
  private lastReloadAt = 0;
  private reloadFailing = false;
  private listening = false;
  private closed = false;
  private readonly periodic: NodeJS.Timeout;

  private constructor(
    private readonly store: PgTenantStore,
    private readonly opts: PgTenantRegistryOptions,
  ) {
    this.gapMs = opts.missReloadGapMs ?? MISS_RELOAD_GAP_MS;
    this.periodic = setInterval(() => this.requestReload(), opts.reloadMs ?? RELOAD_MS);
    this.periodic.unref();
  }

  /**
   * Migrates database 0, starts listening, then loads every tenant (in that order, so no change
   * falls between the load and the first notification), and imports a leftover tenants.json.
   */
  static async open(opts: PgTenantRegistryOptions): Promise<PgTenantRegistry> {
    const store = new PgTenantStore(opts.url, { podId: opts.podId });
    const reg = new PgTenantRegistry(store, opts);
    try {
      await store.init();
      if (opts.listen !== false) {
        await store.listen((c) => reg.onChange(c), () => reg.onListening(),
          (err) => reg.onListenLost(err));
      }
      await reg.reloadNow(true);
      if (opts.dataDir !== undefined) await reg.importFile(opts.dataDir);
    } catch (err) {
      await reg.close();
      throw err;
    }
    return reg;
  }

  has(id: string): boolean {
    return this.tenants.has(id);
  }

  ids(): string[] {
    return [...this.tenants];
  }

  authenticate(token: string): string | null {
    if (!isBearerLength(token)) return null;
    const tenant = this.byHash.get(hashToken(token));
    if (tenant !== undefined) return tenant;
    // Perhaps created on another pod a moment ago: 401 now, a bounded reload for the retry.
    if (looksLikeToken(token)) this.requestReload();
    return null;
  }

  async createTenant(id: string): Promise<CreateTenantResult> {
    if (!isTenantId(id)) return { ok: false, error: errorRecord('invalid_id') };
    if (this.tenants.has(id)) return { ok: false, error: errorRecord('tenant_exists') };
    this.assertOpen();
    const token = newToken();
    const hash = hashToken(token);
    if (!(await this.store.createTenant(id, hash))) {
      this.tenants.add(id); // created by another pod; its notification may still be on the way
      return { ok: false, error: errorRecord('tenant_exists') };
    }
    this.apply({ kind: 'tenant', tenant: id });
    this.apply({ kind: 'token', tenant: id, hash });
    return { ok: true, id, token };
  }

  /** Asks PostgreSQL, not the map: the tenant may have been created on another pod just now. */
  async issueToken(id: string): Promise<string | null> {
    if (!isTenantId(id)) return null;
    this.assertOpen();
    const token = newToken();
    const hash = hashToken(token);
    const retired = await this.store.addToken(id, hash, TOKENS_PER_TENANT_MAX);
    if (retired === null) return null;
    this.apply({ kind: 'tenant', tenant: id });
    this.apply({ kind: 'token', tenant: id, hash });
    for (const h of retired) this.apply({ kind: 'removed', tenant: id, hash: h });
    return token;
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    clearInterval(this.periodic);
    if (this.reloadTimer !== null) clearTimeout(this.reloadTimer);
    this.reloadTimer = null;
    await this.reloading?.catch(() => undefined); // open() reports a failed first load
    await this.store.close();
  }

  private assertOpen(): void {
    if (this.closed) throw new Error('tenant registry is closed');
  }

  private onChange(change: TenantChange): void {
    this.apply(change);
  }

  private onListening(): void {
    // The first LISTEN precedes open()'s own load; a re-LISTEN follows a gap that may have
    // hidden changes.
    if (this.listening) this.requestReload();
    this.listening = true;
    this.opts.log.debug('tenant registry: listening for changes');
  }

  private onListenLost(err: unknown): void {
    this.opts.log.warn({ err }, 'tenant registry: change notifications lost; re-listening');
  }

  /** Applies one change to the map; remembered if a reload is running (see above). */
  private apply(change: TenantChange): void {
    if (change.kind === 'removed') {
      if (this.byHash.get(change.hash) === change.tenant) this.byHash.delete(change.hash);
    } else {
      this.tenants.add(change.tenant);
      if (change.kind === 'token') this.byHash.set(change.hash, change.tenant);
    }
    if (this.pending === null) return;
    if (this.pending.length < PENDING_CHANGES_MAX) this.pending.push(change);
    else this.reloadQueued = true;
  }

  /** A reload soon, but never sooner than `gapMs` after the last one started. */
  private requestReload(): void {
    if (this.closed || this.reloadTimer !== null) return;
    if (this.reloading !== null) {
      this.reloadQueued = true;
      return;
    }
    const wait = Math.max(0, this.lastReloadAt + this.gapMs - Date.now());
    this.reloadTimer = setTimeout(() => {
      this.reloadTimer = null;
      void this.reloadNow(false);
    }, wait);
    this.reloadTimer.unref();
  }

  /** Loads every row and replaces the map. `strict`: a failure rejects (start), else logs. */
  private reloadNow(strict: boolean): Promise<void> {
    if (this.reloading !== null) {
      this.reloadQueued = true;
      return this.reloading;
    }
    this.lastReloadAt = Date.now();
    this.pending = [];
    const run = this.store.loadAll().then(
      (rows) => this.replace(rows),
      (err: unknown) => {
        if (strict) throw err;
        if (!this.reloadFailing) {
          this.opts.log.warn({ err }, 'tenant registry: reload failed; serving the known tokens');
        }
        this.reloadFailing = true;
      },
    );
    this.reloading = run.finally(() => {
      this.reloading = null;
      this.pending = null;
      if (this.reloadQueued) {
        this.reloadQueued = false;
        this.requestReload();
      }
    });
    return this.reloading;
  }

  private replace(rows: TenantRows): void {
    if (this.reloadFailing) this.opts.log.info('tenant registry: reload works again');
    this.reloadFailing = false;
    const changes = this.pending ?? [];
    this.pending = null; // apply() below must not record them again
    this.tenants = new Set(rows.tenants);
    this.byHash = new Map(rows.tokens.map((t) => [t.hash, t.tenant]));
    for (const c of changes) this.apply(c);
  }

  /** One-time move of an embedded pod's tenants.json into PostgreSQL; ids taken are skipped. */
  private async importFile(dataDir: string): Promise<void> {
    const file = await readTenantFile(dataDir);
    if (file === null) return;
    let imported = 0;
    for (const t of file) {
      if (!this.tenants.has(t.id) && (await this.store.importTenant(t.id, t.tokenHashes))) {
        imported++;
      }
    }
    if (imported === 0) return;
    this.opts.log.info({ imported, skipped: file.length - imported }, 'tenants.json imported');
    await this.reloadNow(true); // what was written, not what the file says (hash collisions)
  }
}
