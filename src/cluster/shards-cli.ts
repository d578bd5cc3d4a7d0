// `ledger shards list | move <shard> <pod> | rebalance | pods`: the operator's side of the
// admin API (any pod answers). Reads LEDGER_ADMIN_URL and LEDGER_ADMIN_TOKEN; prints, exits.

export const SHARDS_USAGE = `usage: ledger shards <command>

  list                  every shard: owner pod, epoch, state, last journal sequence
  pods                  registered pods: address, alive, shards owned
  move <shard> <pod>    move one shard to a pod and wait until the pod serves it
  rebalance             spread shards evenly over the live pods (moves run one by one)

Talks to the admin API of any pod: LEDGER_ADMIN_URL (default http://127.0.0.1:$PORT or
:8080) with LEDGER_ADMIN_TOKEN.
`;

interface Target {
  url: string;
  token: string;
}

function target(env: NodeJS.ProcessEnv): Target | string {
  const token = env.LEDGER_ADMIN_TOKEN?.trim() ?? '';
  if (token === '') return 'LEDGER_ADMIN_TOKEN is not set';
  const port = env.PORT?.trim() || '8080';
  const url = (env.LEDGER_ADMIN_URL?.trim() || `http://127.0.0.1:${port}`).replace(/\/+$/, '');
  return { url, token };
}

async function call(t: Target, method: string, path: string, body?: unknown): Promise<unknown> {
  const res = await fetch(`${t.url}/admin/v1${path}`, {
    method,
    headers: { authorization: `Bearer ${t.token}`, 'content-type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const parsed: unknown = await res.json().catch(() => null);
  if (res.status >= 300) {
    const error = (parsed as { error?: { code?: string; message?: string } } | null)?.error;
    throw new Error(`${res.status} ${error?.code ?? ''}: ${error?.message ?? ''}`);
  }
  return parsed;
}

function table(rows: Array<Record<string, unknown>>, columns: string[]): string {
  const widths = columns.map((c) =>
    Math.max(c.length, ...rows.map((r) => String(r[c] ?? '-').length)));
  const line = (cells: string[]): string =>
    cells.map((cell, i) => cell.padEnd(widths[i] ?? 0)).join('  ').trimEnd();
  return [line(columns), ...rows.map((r) => line(columns.map((c) => String(r[c] ?? '-'))))]
    .join('\n') + '\n';
}

async function list(t: Target): Promise<void> {
  const body = (await call(t, 'GET', '/shards')) as { shards: Array<Record<string, unknown>> };
  process.stdout.write(table(body.shards, ['shard', 'owner', 'epoch', 'state', 'lastSequence']));
}

async function pods(t: Target): Promise<void> {
  const body = (await call(t, 'GET', '/pods')) as { pods: Array<Record<string, unknown>> };
  process.stdout.write(table(body.pods, ['podId', 'address', 'alive', 'shards']));
}

async function move(t: Target, shard: string | undefined, pod: string | undefined): Promise<void> {
  if (shard === undefined || !/^\d+$/.test(shard) || pod === undefined) {
    throw new Error(`ledger shards move <shard> <pod>\n\n${SHARDS_USAGE}`);
  }
  const r = (await call(t, 'POST', `/shards/${shard}/move`, { to: pod, wait: true })) as {
    state: string; from?: string; to?: string; ms?: number; epoch?: number;
  };
  const took = r.ms === undefined ? '' : ` in ${Math.round(r.ms)} ms, epoch ${r.epoch}`;
  process.stdout.write(`shard ${shard}: ${r.state} ${r.from ?? ''} -> ${r.to ?? pod}${took}\n`);
}

async function rebalance(t: Target): Promise<void> {
  const body = (await call(t, 'POST', '/shards/rebalance', { wait: true })) as {
    moves: Array<Record<string, unknown>>;
  };
  if (body.moves.length === 0) process.stdout.write('already balanced\n');
  else process.stdout.write(table(body.moves, ['shard', 'from', 'to']));
}

/** Exit code: 0 done, 1 failed, 2 usage. */
export async function runShards(args: readonly string[], env = process.env): Promise<number> {
  const [command, ...rest] = args;
  const t = target(env);
  if (command === undefined || command === 'help' || command === '--help') {
    process.stdout.write(SHARDS_USAGE);
    return command === undefined ? 2 : 0;
  }
  if (typeof t === 'string') {
    process.stderr.write(`ledger shards: ${t}\n`);
    return 2;
  }
  const commands: Record<string, () => Promise<void>> = {
    list: () => list(t),
    pods: () => pods(t),
    move: () => move(t, rest[0], rest[1]),
    rebalance: () => rebalance(t),
  };
  const run = Object.prototype.hasOwnProperty.call(commands, command) ? commands[command] : null;
  if (!run) {
    const shown = JSON.stringify(command);
    process.stderr.write(`ledger shards: unknown command ${shown}\n\n${SHARDS_USAGE}`);
    return 2;
  }
  try {
    await run();
    return 0;
  } catch (err) {
    process.stderr.write(`ledger shards ${command}: ${err instanceof Error ? err.message : err}\n`);
    return 1;
  }
}
