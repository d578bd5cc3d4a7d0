// Test helper: several HTTP clients paying continuously against a set of pods, retrying
// retryable failures with the SAME id (the idempotency key), and the checks afterwards:
// every acknowledged payment exactly once, replays give the original, balances sum to zero.

export const USERS = 6;
const SEED_MINOR = 1_000_000n;
const RETRYABLE_STATUS = new Set([429, 500, 502, 503]);

export interface Attempt {
  tenant: string;
  id: string;
  from: string;
  to: string;
  amount: string;
  /** the acknowledged reply (2xx, or a non-retryable error), if one came */
  ack: { status: number; body: Record<string, unknown> } | null;
  /** pod URL that gave the acknowledgement */
  via: string | null;
}

export interface LoadStats {
  attempts: Attempt[];
  retries: number;
  /** replies that are errors and not retryable, other than insufficient funds */
  nonRetryable: string[];
  /** client-observed latency of each acknowledged request (ms), with its start time */
  latencies: Array<{ start: number; ms: number; tenant: string }>;
}

type Json = Record<string, unknown>;

async function request(
  url: string,
  token: string,
  method: string,
  route: string,
  body?: unknown,
): Promise<{ status: number; body: Json }> {
  const res = await fetch(url + route, {
    method,
    headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
    signal: AbortSignal.timeout(20_000),
  });
  const text = await res.text();
  return { status: res.status, body: text === '' ? {} : (JSON.parse(text) as Json) };
}

/**
 * Sends until an acknowledgement (2xx or a non-retryable error), rotating pods on retryable
 * failures and connection errors. Null when `stop()` says give up (never acknowledged).
 */
export async function untilAcked(
  urls: () => string[],
  token: string,
  method: string,
  route: string,
  body: unknown,
  stop: () => boolean,
  onRetry: () => void = () => undefined,
): Promise<{ status: number; body: Json; via: string } | null> {
  for (let attempt = 0; ; attempt++) {
    const list = urls();
    const url = list[attempt % list.length] as string;
    try {
      const r = await request(url, token, method, route, body);
      if (!RETRYABLE_STATUS.has(r.status)) return { ...r, via: url };
    } catch {
      // connection refused or reset: the pod is gone; the outcome is unknown, so retry
    }
    if (stop() && attempt > 50) return null;
    onRetry();
    await new Promise((r) => setTimeout(r, Math.min(200, 10 * (attempt + 1))));
  }
}

export async function setupTenants(
  urls: () => string[],
  tokens: Map<string, string>,
): Promise<void> {
  await Promise.all([...tokens].map(async ([tenant, token]) => {
    const accounts = ['fund', ...Array.from({ length: USERS }, (_, i) => `u${i}`)];
    for (const id of accounts) {
      const body = { id, currencyCode: 'EUR', allowNegative: id === 'fund' };
      const r = await untilAcked(urls, token, 'POST', '/api/v1/accounts', body, () => false);
      if (r === null || r.status >= 300) throw new Error(`${tenant}/${id}: ${JSON.stringify(r)}`);
    }
    for (let i = 0; i < USERS; i++) {
      const body = { id: `seed-${i}`, fromAccountId: 'fund', toAccountId: `u${i}`,
        amountMinor: String(SEED_MINOR), currencyCode: 'EUR' };
      const r = await untilAcked(urls, token, 'POST', '/api/v1/transactions', body, () => false);
      if (r === null || r.status >= 300) throw new Error(`seed ${tenant}: ${JSON.stringify(r)}`);
    }
  }));
}

/** `clients` loops of payments until `running()` turns false. */
export async function runLoad(opts: {
  clients: number;
  urls: () => string[];
  tokens: Map<string, string>;
  running: () => boolean;
  tag: string;
}): Promise<LoadStats> {
  const stats: LoadStats = { attempts: [], retries: 0, nonRetryable: [], latencies: [] };
  const tenants = [...opts.tokens.keys()];
  const client = async (c: number): Promise<void> => {
    for (let n = 0; opts.running(); n++) {
      const tenant = tenants[(c + n) % tenants.length] as string;
      const token = opts.tokens.get(tenant) as string;
      const from = (c * 7 + n) % USERS;
      const to = (from + 1 + (n % (USERS - 1))) % USERS;
      const a: Attempt = { tenant, id: `${opts.tag}-${c}-${n}`, from: `u${from}`, to: `u${to}`,
        amount: String(1 + ((c * 31 + n * 17) % 900)), ack: null, via: null };
      stats.attempts.push(a);
      const body = { id: a.id, fromAccountId: a.from, toAccountId: a.to, amountMinor: a.amount,
        currencyCode: 'EUR' };
      const start = performance.now();
      const urls = (): string[] => rotate(opts.urls(), c + n);
      const r = await untilAcked(urls, token, 'POST', '/api/v1/transactions', body,
        () => !opts.running(), () => stats.retries++);
      if (r === null) continue;
      a.ack = { status: r.status, body: r.body };
      a.via = r.via;
      stats.latencies.push({ start, ms: performance.now() - start, tenant });
      const code = (r.body.error as { code?: string } | undefined)?.code;
      if (r.status >= 300 && code !== 'insufficient_funds') {
        stats.nonRetryable.push(`${a.tenant}/${a.id}: ${r.status} ${code}`);
      }
    }
  };
  await Promise.all(Array.from({ length: opts.clients }, (_, c) => client(c)));
  return stats;
}

function rotate<T>(list: T[], by: number): T[] {
  if (list.length === 0) return list;
  const k = by % list.length;
  return list.slice(k).concat(list.slice(0, k));
}

/** Every check of the tests; returns the problems found (empty: all good). */
export async function verifyLedger(
  url: string,
  tokens: Map<string, string>,
  attempts: Attempt[],
): Promise<string[]> {
  const problems: string[] = [];
  const expected = new Map<string, bigint>();
  const add = (key: string, v: bigint): void => {
    expected.set(key, (expected.get(key) ?? 0n) + v);
  };
  for (const tenant of tokens.keys()) {
    add(`${tenant}/fund`, -SEED_MINOR * BigInt(USERS));
    for (let i = 0; i < USERS; i++) add(`${tenant}/u${i}`, SEED_MINOR);
  }
  const urls = (): string[] => [url];
  await inChunks(attempts, 64, async (a) => {
    const token = tokens.get(a.tenant) as string;
    const r = await untilAcked(urls, token, 'GET', `/api/v1/transactions/${a.id}`, undefined,
      () => false);
    if (r === null) return;
    const acked = a.ack !== null && a.ack.status < 300;
    if (r.status === 404) {
      if (acked) problems.push(`acknowledged ${a.tenant}/${a.id} is missing`);
      return;
    }
    if (r.status !== 200 || r.body.amountMinor !== a.amount || r.body.fromAccountId !== a.from) {
      problems.push(`${a.tenant}/${a.id}: ${r.status} ${JSON.stringify(r.body)}`);
      return;
    }
    add(`${a.tenant}/${a.from}`, -BigInt(a.amount));
    add(`${a.tenant}/${a.to}`, BigInt(a.amount));
  });
  await checkBalances(url, tokens, expected, problems);
  await checkReplays(url, tokens, attempts, problems);
  return problems.slice(0, 50);
}

async function checkBalances(
  url: string,
  tokens: Map<string, string>,
  expected: Map<string, bigint>,
  problems: string[],
): Promise<void> {
  for (const [tenant, token] of tokens) {
    let sum = 0n;
    for (const id of ['fund', ...Array.from({ length: USERS }, (_, i) => `u${i}`)]) {
      const r = await untilAcked(() => [url], token, 'GET', `/api/v1/accounts/${id}`, undefined,
        () => false);
      const balance = BigInt(String(r?.body.balanceMinor ?? 'NaN'));
      const want = expected.get(`${tenant}/${id}`) ?? 0n;
      if (balance !== want) problems.push(`${tenant}/${id}: balance ${balance}, expected ${want}`);
      sum += balance;
    }
    if (sum !== 0n) problems.push(`tenant ${tenant}: balances sum to ${sum}`);
  }
}

/** Acknowledged payments replayed with the same id and body give the original result. */
async function checkReplays(
  url: string,
  tokens: Map<string, string>,
  attempts: Attempt[],
  problems: string[],
): Promise<void> {
  const acked = attempts.filter((a) => a.ack !== null);
  await inChunks(acked, 64, async (a) => {
    const token = tokens.get(a.tenant) as string;
    const body = { id: a.id, fromAccountId: a.from, toAccountId: a.to, amountMinor: a.amount,
      currencyCode: 'EUR' };
    const r = await untilAcked(() => [url], token, 'POST', '/api/v1/transactions', body,
      () => false);
    const ack = a.ack as { status: number; body: Json };
    const same = r !== null && JSON.stringify(r.body) === JSON.stringify(ack.body);
    const status = ack.status === 201 ? 200 : ack.status;
    if (!same || r.status !== status) {
      problems.push(`replay ${a.tenant}/${a.id}: ${r?.status} ${JSON.stringify(r?.body)} ` +
        `vs original ${ack.status} ${JSON.stringify(ack.body)}`);
    }
  });
}

async function inChunks<T>(items: T[], size: number, fn: (item: T) => Promise<void>) {
  for (let i = 0; i < items.length; i += size) {
    await Promise.all(items.slice(i, i + size).map(fn));
  }
}
