// Assertions over a whole shard state (double entry balances, holds, timeouts, ordering), for
// tests and the host's verify flag. Read-only: it never repairs or changes the state.

import {
  MAX_MINOR,
  Status,
  type Account,
  type ShardState,
  type TenantBook,
} from './ledger-book.js';
import { expiresAt } from './ledger-views.js';

export interface InvariantOptions {
  /** also recount every pending hold from the transfers (O(transfers); default true) */
  deep?: boolean;
}

/** Throws an Error naming tenant, currency and account of the first violation found. */
export function checkInvariants(state: ShardState, options: InvariantOptions = {}): void {
  const tenants = [...state.tenants.keys()].sort();
  for (const tenant of tenants) {
    const book = state.tenants.get(tenant);
    if (book === undefined) continue;
    checkBalances(book);
    if (options.deep ?? true) checkTransfers(state, book);
  }
  state.timeouts.verify();
  for (const hold of state.timeouts.items) {
    if (hold.book.transfers.status[hold.index] !== Status.pending || hold.expiresAt === null) {
      throw new Error(`invariant: tenant ${hold.tenant}: ${hold.id} queued but not pending`);
    }
  }
}

function where(book: TenantBook, account: Account): string {
  return `tenant ${book.tenant} currency ${account.currencyCode} account ${account.id}`;
}

function checkAccount(book: TenantBook, account: Account): void {
  const totals = [account.postedDebits, account.postedCredits,
    account.pendingDebits, account.pendingCredits];
  for (const total of totals) {
    if (total < 0n || total > MAX_MINOR) {
      throw new Error(`invariant: ${where(book, account)}: a total is out of range`);
    }
  }
  if (account.postedDebits + account.pendingDebits > MAX_MINOR ||
    account.postedCredits + account.pendingCredits > MAX_MINOR) {
    throw new Error(`invariant: ${where(book, account)}: posted + pending exceeds 2^63-1`);
  }
  const available = account.postedCredits - account.postedDebits - account.pendingDebits;
  if (!account.allowNegative && available < 0n) {
    throw new Error(`invariant: ${where(book, account)}: below zero counting pending debits`);
  }
  const t = book.transfers;
  if (account.sequence <= 0) {
    throw new Error(`invariant: ${where(book, account)}: history out of order`);
  }
  let previous = account.sequence;
  for (let k = 0; k < account.codeCount; k++) {
    const code = account.codeAt(k);
    const i = code >> 1;
    const sequence = ((code & 1) === 0 ? t.sequence[i] : t.settleSequence[i]) ?? 0;
    if (sequence <= previous) {
      throw new Error(`invariant: ${where(book, account)}: history out of order`);
    }
    previous = sequence;
  }
}

/** Per currency: balances sum to zero and pending debits equal pending credits. */
function checkBalances(book: TenantBook): void {
  const balance = new Map<string, bigint>();
  const pending = new Map<string, bigint>();
  for (const account of book.accounts.values()) {
    checkAccount(book, account);
    const currency = account.currencyCode;
    balance.set(currency, (balance.get(currency) ?? 0n) +
      account.postedCredits - account.postedDebits);
    pending.set(currency, (pending.get(currency) ?? 0n) +
      account.pendingCredits - account.pendingDebits);
  }
  for (const [currency, sum] of balance) {
    if (sum !== 0n) {
      const label = `invariant: tenant ${book.tenant} currency ${currency}`;
      throw new Error(`${label}: balances sum to ${sum}`);
    }
    if (pending.get(currency) !== 0n) {
      throw new Error(`invariant: tenant ${book.tenant} currency ${currency}: holds do not pair`);
    }
  }
}

/** Every hold is backed by a pending transfer; records are in sequence order. */
/** Built only when a check fails: an id string per transfer would cost more than the check. */
function transferFailure(book: TenantBook, i: number, what: string): Error {
  const t = book.transfers;
  const currency = t.extras.get(i)?.currencyCode ?? book.account(t.from[i] ?? -1).currencyCode;
  return new Error(`invariant: tenant ${book.tenant} currency ${currency} ` +
    `transaction ${t.ids.keyAt(i)}: ${what}`);
}

function checkTransfers(state: ShardState, book: TenantBook): void {
  const debits = new Map<number, bigint>();
  const credits = new Map<number, bigint>();
  const t = book.transfers;
  let previous = 0;
  for (let i = 0; i < t.count; i++) {
    const from = t.from[i] ?? -1;
    const sequence = t.sequence[i] ?? 0;
    if (sequence <= previous) throw transferFailure(book, i, 'out of sequence order');
    previous = sequence;
    if (sequence > state.sequence) throw transferFailure(book, i, 'from the future');
    const hold = book.holds.get(i);
    const queued = hold !== undefined && hold.heapIndex !== -1 &&
      state.timeouts.items[hold.heapIndex] === hold;
    const shouldQueue = t.status[i] === Status.pending && expiresAt(book, i) !== null;
    if (queued !== shouldQueue) throw transferFailure(book, i, 'timeout queue out of step');
    if (t.status[i] !== Status.pending) continue;
    const to = t.to[i] ?? -1;
    const amount = t.amountOf(i);
    debits.set(from, (debits.get(from) ?? 0n) + amount);
    credits.set(to, (credits.get(to) ?? 0n) + amount);
  }
  for (const account of book.accounts.values()) {
    if ((debits.get(account.index) ?? 0n) !== account.pendingDebits ||
      (credits.get(account.index) ?? 0n) !== account.pendingCredits) {
      throw new Error(`invariant: ${where(book, account)}: holds differ from pending transfers`);
    }
  }
}
