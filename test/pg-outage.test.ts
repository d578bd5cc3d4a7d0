// PostgreSQL crash under load (Guarantees 1, 2, 3 and 7; issue 4): one pod process journals to
// two databases of a PRIVATE PostgreSQL instance (the shared server on 5432 serves the other
// test files in parallel and is never touched). Clients pay continuously with client ids; the
// server is killed with `pg_ctl stop -m immediate` mid-load, stays down ~3 s, and is started
// again. While it is down the pod must answer only retryable 503s; afterwards it must become
// ready and acknowledge new payments BY ITSELF (the pod process is never restarted), and every
// payment it ever acknowledged must be there exactly once, with balances that add up.

import { existsSync, readFileSync } from 'node:fs';
import pg from 'pg';
import { afterAll, describe, expect, test } from 'vitest';
import { shardOf } from '../protocol/shard-key.js';
import { runAudit } from '../src/audit/run-audit.js';
import { setupTenants, USERS, verifyLedger, type Attempt } from './support/cluster-load.js';
import {
  clusterFixture,
  removeFixture,
  startPodProcess,
  type ClusterFixture,
  type PodProcess,
} from './support/pod.js';
import { PrivatePostgres } from './support/private-pg.js';

const SHARDS = 4;
const WORKERS = 2;
const CLIENTS = 8;
const OUTAGE_MS = 3000;
/** load before the crash, and after the pod acknowledges new payments again */
const LOAD_BEFORE_MS = 2500;
const LOAD_AFTER_MS = 2500;
/** the pod must be ready within this long after PostgreSQL accepts connections again */
const RECOVERY_BOUND_MS = 25_000;
const REQUEST_TIMEOUT_MS = 10_000;

type Json = Record<string, unknown>;

/** One HTTP exchange of the load (a payment attempt may take several). */
interface Exchange {
  sent: number;
  answered: number;
  /** 0: no HTTP answer (connection error or timeout) */
  status: number;
  code: string | null;
}

interface PaymentAttempt extends Attempt {
  firstSent: number;
  ackAt: number | null;
  exchanges: Exchange[];
}

interface Timeline {
  t0: number;
  stopAt: number;
  stoppedAt: number;
  startAt: number;
  startedAt: number;
  /** first /health/ready 200 after the restart of PostgreSQL */
  readyAt: number;
  /** first 201 for a payment first sent after PostgreSQL accepted connections again */
  firstNewAckAt: number;
}

let pgi: PrivatePostgres | null = null;
let pod: PodProcess | null = null;
let fx: ClusterFixture | null = null;
let failed = true;
/** stops the load's clients (also when the test failed or timed out) */
let stopLoad: () => void = () => undefined;

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

function tail(file: string, lines: number): string {
  if (!existsSync(file)) return '';
  return readFileSync(file, 'utf8').trimEnd().split('\n').slice(-lines).join('\n');
}

async function cleanUp(): Promise<void> {
  stopLoad();
  const podLog = pod?.logFile;
  await pod?.kill9();
  pod = null;
  if (failed && podLog !== undefined) {
    process.stdout.write(`pg-outage: pod log (tail):\n${tail(podLog, 60)}\n`);
  }
  if (failed && pgi !== null) {
    process.stdout.write(`pg-outage: PostgreSQL log (tail):\n${tail(pgi.logFile, 30)}\n`);
  }
  await pgi?.destroy();
  pgi = null;
  // LEDGER_TEST_KEEP=1 keeps the pod's log and data directory for a post-mortem
  const keep = process.env.LEDGER_TEST_KEEP === '1';
  if (fx !== null && keep) process.stdout.write(`pg-outage: pod directory kept in ${fx.root}\n`);
  if (fx !== null) removeFixture(fx, keep);
  fx = null;
}

afterAll(cleanUp);

async function ready(url: string): Promise<boolean> {
  return fetch(`${url}/health/ready`, { signal: AbortSignal.timeout(2000) })
    .then((r) => r.status === 200, () => false);
}

/** When /health/ready first answered 200 (polled every 50 ms). */
async function waitReady(p: PodProcess, ms: number): Promise<number> {
  const deadline = Date.now() + ms;
  while (Date.now() < deadline) {
    if (!p.alive) throw new Error(`the pod process exited; see ${p.logFile}`);
    if (await ready(p.url)) return Date.now();
    await sleep(50);
  }
  throw new Error(`the pod was not ready within ${ms} ms`);
}

/** Tenant ids, one per shard, so every shard, both databases and both workers get traffic. */
function tenantPerShard(): string[] {
  const byShard = new Map<number, string>();
  for (let i = 0; byShard.size < SHARDS; i++) {
    const id = `outage-${i}`;
    const s = shardOf(id, SHARDS);
    if (!byShard.has(s)) byShard.set(s, id);
  }
  return [...byShard.values()];
}

async function post(
  url: string,
  token: string,
  body: Json,
): Promise<{ status: number; body: Json }> {
  const res = await fetch(`${url}/api/v1/transactions`, {
    method: 'POST',
    headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
    body: JSON.stringify(body),
    signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS),
  });
  const text = await res.text();
  return { status: res.status, body: text === '' ? {} : (JSON.parse(text) as Json) };
}

interface Load {
  attempts: PaymentAttempt[];
  /** error code (or 'no answer') → count, of every retryable answer */
  retryable: Map<string, number>;
  nonRetryable: string[];
  done: Promise<void>;
  stop(): void;
}

/**
 * `clients` loops paying continuously. A retryable answer (429/5xx) or no answer at all is
 * retried with the SAME id and body until a definite answer or until the load stops (the
 * payment is then unacknowledged: it may or may not exist, and the checks accept either).
 */
function startLoad(url: string, tokens: Map<string, string>, clients: number): Load {
  const load: Load = {
    attempts: [],
    retryable: new Map(),
    nonRetryable: [],
    done: Promise.resolve(),
    stop: () => undefined,
  };
  let running = true;
  load.stop = () => {
    running = false;
  };
  const count = (code: string): void => {
    load.retryable.set(code, (load.retryable.get(code) ?? 0) + 1);
  };
  const tenants = [...tokens.keys()];
  const client = async (c: number): Promise<void> => {
    for (let n = 0; running; n++) {
      const tenant = tenants[(c + n) % tenants.length] as string;
      const token = tokens.get(tenant) as string;
      const from = (c * 7 + n) % USERS;
      const to = (from + 1 + (n % (USERS - 1))) % USERS;
      const a: PaymentAttempt = { tenant, id: `po-${c}-${n}`, from: `u${from}`, to: `u${to}`,
        amount: String(1 + ((c * 31 + n * 17) % 900)), ack: null, via: null,
        firstSent: Date.now(), ackAt: null, exchanges: [] };
      load.attempts.push(a);
      const body = { id: a.id, fromAccountId: a.from, toAccountId: a.to, amountMinor: a.amount,
        currencyCode: 'EUR' };
      for (let attempt = 0; ; attempt++) {
        const ex: Exchange = { sent: Date.now(), answered: 0, status: 0, code: null };
        a.exchanges.push(ex);
        try {
          const r = await post(url, token, body);
          ex.answered = Date.now();
          ex.status = r.status;
          const error = r.body.error as { code?: string; retryable?: boolean } | undefined;
          ex.code = error?.code ?? null;
          if (r.status < 300) {
            a.ack = { status: r.status, body: r.body };
            a.via = url;
            a.ackAt = ex.answered;
            break;
          }
          const retryableStatus = r.status === 429 || r.status >= 500;
          if (!retryableStatus || error?.retryable !== true) {
            // a definite refusal: also an acknowledgement (of nothing), and never expected here
            a.ack = { status: r.status, body: r.body };
            a.ackAt = ex.answered;
            load.nonRetryable.push(`${tenant}/${a.id}: ${r.status} ${JSON.stringify(r.body)}`);
            break;
          }
          count(`${r.status} ${ex.code ?? '?'}`);
        } catch (err) {
          ex.answered = Date.now();
          count(`no answer (${err instanceof Error ? err.name : 'error'})`);
        }
        if (!running) break; // unacknowledged: outcome unknown, the checks allow both
        await sleep(Math.min(200, 10 * (attempt + 1)));
      }
    }
  };
  load.done = Promise.all(Array.from({ length: clients }, (_, c) => client(c))).then(() => {});
  return load;
}

interface JournalFacts {
  /** 'tenant/id' → number of 'post' rows, for the load's payments */
  posts: Map<string, number>;
  /** shards whose sequences are not exactly 1..max */
  gaps: string[];
  /** per shard: rows and the epochs that wrote them */
  shards: string[];
}

async function readJournal(urls: string[]): Promise<JournalFacts> {
  const facts: JournalFacts = { posts: new Map(), gaps: [], shards: [] };
  for (const url of urls) {
    const client = new pg.Client({ connectionString: url });
    await client.connect();
    try {
      const posts = await client.query<{ tenant: string; id: string; n: number }>(
        `SELECT j.tenant, j.id, count(*)::int AS n FROM journal j
           JOIN journal_kind k ON k.code = j.kind
          WHERE k.name = 'post' AND j.id LIKE 'po-%' GROUP BY 1, 2`);
      for (const r of posts.rows) facts.posts.set(`${r.tenant}/${r.id}`, r.n);
      const shards = await client.query<{ shard: number; n: string; lo: string; hi: string;
        epochs: string[] }>(
        `SELECT shard, count(*) AS n, min(sequence) AS lo, max(sequence) AS hi,
                array_agg(DISTINCT epoch ORDER BY epoch)::text[] AS epochs
           FROM journal GROUP BY shard ORDER BY shard`);
      for (const r of shards.rows) {
        if (r.lo !== '1' || r.hi !== r.n) {
          facts.gaps.push(`shard ${r.shard}: ${r.n} rows, sequences ${r.lo}..${r.hi}`);
        }
        facts.shards.push(`shard ${r.shard}: ${r.n} rows, epochs ${r.epochs.join(',')}`);
      }
    } finally {
      await client.end();
    }
  }
  return facts;
}

/** `ledger audit --pg ...`: replays every shard's hash chain and proves the books balance. */
async function auditJournal(urls: string[]): Promise<{ code: number; output: string }> {
  let output = '';
  const sink = { write: (s: string) => ((output += s), true) };
  const code = await runAudit(['--pg', urls.join(','), '--shard-count', String(SHARDS),
    '--workers', '1', '--quiet'], { stdout: sink, stderr: sink });
  return { code, output };
}

describe('PostgreSQL crash during load (private instance, pod process)', () => {
  test('stop -m immediate and start: nothing acknowledged lost, pod recovers by itself',
    async () => {
      failed = true;
      pgi = await PrivatePostgres.create();
      const pgUrls = await pgi.createDatabases(2, 'ledger_outage');
      // tenants created through the pod's admin API (startPodProcess), one per shard
      fx = await clusterFixture({ pgUrls, tenants: tenantPerShard(), shardCount: SHARDS,
        env: { LEDGER_WORKERS: String(WORKERS) } });
      const p = await startPodProcess(fx, 'pod-outage');
      pod = p;
      let podExit: string | null = null;
      p.proc.once('exit', (code, signal) => {
        podExit = `exit code ${code} signal ${signal}`;
      });
      await waitReady(p, 45_000);
      const tokens = fx.tokens;
      await setupTenants(() => [p.url], tokens);

      // readiness as seen from outside, sampled all along
      const readiness: Array<{ at: number; ready: boolean }> = [];
      let sampling = true;
      const sampler = (async () => {
        while (sampling) {
          const ok = await ready(p.url);
          const last = readiness[readiness.length - 1];
          if (last?.ready !== ok) readiness.push({ at: Date.now(), ready: ok });
          await sleep(50);
        }
      })();

      const t: Partial<Timeline> = { t0: Date.now() };
      const load = startLoad(p.url, tokens, CLIENTS);
      stopLoad = load.stop;
      try {
        await sleep(LOAD_BEFORE_MS);
        t.stopAt = Date.now();
        await pgi.stopImmediate();
        t.stoppedAt = Date.now();
        await sleep(OUTAGE_MS);
        t.startAt = Date.now();
        await pgi.start();
        t.startedAt = Date.now();
        // the pod must come back by itself: ready, and acknowledging payments it had not seen
        t.readyAt = await waitReady(p, RECOVERY_BOUND_MS);
        const bound = Date.now() + 10_000;
        const startedAt = t.startedAt;
        const newAck = (): PaymentAttempt | undefined => load.attempts.find(
          (a) => a.firstSent > startedAt && a.ack !== null && a.ack.status === 201);
        while (newAck() === undefined && Date.now() < bound) await sleep(20);
        t.firstNewAckAt = newAck()?.ackAt ?? Number.NaN;
        await sleep(LOAD_AFTER_MS);
      } finally {
        load.stop();
        await load.done;
        sampling = false;
        await sampler;
      }
      const tl = t as Timeline;
      const rel = (x: number): string => `${((x - tl.t0) / 1000).toFixed(2)} s`;

      // ---- what happened ------------------------------------------------------------------
      const acked = load.attempts.filter((a) => a.ack !== null && a.ack.status < 300);
      const ackedIn = (from: number, to: number): number =>
        acked.filter((a) => (a.ackAt as number) >= from && (a.ackAt as number) < to).length;
      const ackBefore = ackedIn(0, tl.stopAt);
      const ackStopping = ackedIn(tl.stopAt, tl.stoppedAt);
      const ackDown = ackedIn(tl.stoppedAt, tl.startedAt);
      const ackRecovering = ackedIn(tl.startedAt, tl.readyAt);
      const ackAfter = ackedIn(tl.readyAt, Number.POSITIVE_INFINITY);
      const exchanges = load.attempts.flatMap((a) => a.exchanges);
      // 2xx for an exchange sent after the server was gone and answered before it was started:
      // nothing can have been committed then, so such an answer would be a lie
      const downAcks = exchanges.filter((e) => e.status >= 200 && e.status < 300 &&
        e.sent > tl.stoppedAt && e.answered < tl.startAt);
      const unacked = load.attempts.filter((a) => a.ack === null).length;
      const retryable = [...load.retryable].map(([k, v]) => `${k}: ${v}`).join(', ');
      const readyLog = readiness.map((r) => `${r.ready ? 'ready' : 'NOT ready'} at ${rel(r.at)}`);
      process.stdout.write([
        'pg-outage:',
        `  timeline: crash at ${rel(tl.stopAt)} (down at ${rel(tl.stoppedAt)}), start at ` +
          `${rel(tl.startAt)} (accepting at ${rel(tl.startedAt)}), pod ready at ` +
          `${rel(tl.readyAt)}, first new payment acknowledged at ${rel(tl.firstNewAckAt)}`,
        `  recovery: ready ${tl.readyAt - tl.startedAt} ms and first new ack ` +
          `${tl.firstNewAckAt - tl.startedAt} ms after PostgreSQL accepted connections ` +
          '(pod never restarted)',
        `  payments: ${load.attempts.length} attempted, ${acked.length} acknowledged ` +
          `(before the crash ${ackBefore}, while pg_ctl stopped it ${ackStopping}, while down ` +
          `or starting ${ackDown}, started→ready ${ackRecovering}, after ${ackAfter}), ` +
          `${unacked} unacknowledged when the load stopped`,
        `  HTTP exchanges: ${exchanges.length}; retryable answers: ${retryable || 'none'}`,
        `  2xx while PostgreSQL was down: ${downAcks.length}; non-retryable: ` +
          `${load.nonRetryable.length}`,
        `  readiness: ${readyLog.join(', ')}`,
        '',
      ].join('\n'));

      // ---- checks -------------------------------------------------------------------------
      expect(podExit).toBeNull();
      expect(load.nonRetryable).toEqual([]);
      expect(downAcks).toEqual([]);
      expect(ackBefore).toBeGreaterThan(50);
      expect(Number.isFinite(tl.firstNewAckAt)).toBe(true);
      expect(ackAfter).toBeGreaterThan(50);
      // while it was down the pod refused with retryable 503s and said it was not ready
      const codes = [...load.retryable.keys()];
      expect(codes.some((k) => k === '503 storage_unavailable' || k === '503 shard_unavailable'))
        .toBe(true);
      expect(codes.filter((k) => !/^503 (storage_unavailable|shard_unavailable)$/.test(k)))
        .toEqual([]);
      expect(readiness.some((r) => !r.ready && r.at > tl.stopAt && r.at < tl.readyAt)).toBe(true);
      // every acknowledged payment exactly once, replays give the original (201 → 200),
      // balances equal the sum of the payments present, and each tenant's balances sum to 0
      expect(await verifyLedger(p.url, tokens, load.attempts)).toEqual([]);
      // the same in the journal itself: each acknowledged id in exactly one 'post' row, no id
      // twice, every shard's sequence gapless; and the auditor replays the hash chains clean
      const journal = await readJournal(pgUrls);
      const twice = [...journal.posts].filter(([, n]) => n !== 1).map(([k, n]) => `${k} ×${n}`);
      const missing = acked.filter((a) => !journal.posts.has(`${a.tenant}/${a.id}`))
        .map((a) => `${a.tenant}/${a.id}`);
      process.stdout.write(`  journal: ${journal.posts.size} load payments in ` +
        `${journal.shards.join('; ')}\n`);
      expect(twice).toEqual([]);
      expect(missing).toEqual([]);
      expect(journal.gaps).toEqual([]);
      const audit = await auditJournal(pgUrls);
      expect(audit.code, audit.output).toBe(0);
      expect(podExit).toBeNull();
      failed = false;
      await cleanUp();
    }, 90_000);
});
