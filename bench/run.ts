// Benchmark entry: `npm run bench -- <scenario> [--runs N] [--seconds S] [--workers W]`.
// Scenarios print a table and write JSON under .bench-results/; none asserts on timing.

import os from 'node:os';
import { parseArgs } from 'node:util';
import { benchAudit } from './audit.js';
import { benchCore } from './core.js';
import { benchRecovery } from './recovery.js';

type BenchOptions = { runs: number; seconds: number; workers: number };

const SCENARIOS: Record<string, (o: BenchOptions) => Promise<void>> = {
  core: benchCore,
  audit: benchAudit,
  recovery: benchRecovery,
  http: (o) => import('./http.js').then((m) => m.benchHttp(o)),
  relay: (o) => import('./relay.js').then((m) => m.benchRelay({ ...o, tenantsPerShard: 4 })),
  cluster: (o) => import('./cluster.js').then((m) => m.benchCluster(o)),
  'state-machine': (o) => import('./state-machine.js').then((m) => m.benchStateMachine(o)),
  codecs: (o) => import('./codecs.js').then((m) => m.benchCodecs(o)),
};

async function main(): Promise<void> {
  const { values, positionals } = parseArgs({
    allowPositionals: true,
    options: {
      runs: { type: 'string', default: '3' },
      seconds: { type: 'string', default: '3' },
      workers: { type: 'string', default: String(os.availableParallelism()) },
    },
  });
  const opts = { runs: Number(values.runs), seconds: Number(values.seconds),
    workers: Number(values.workers) };
  const names = positionals.length > 0 ? positionals : ['core'];
  for (const name of names) {
    const run = SCENARIOS[name];
    const known = Object.keys(SCENARIOS).join(', ');
    if (!run) throw new Error(`unknown scenario ${name}; known: ${known}`);
    await run(opts);
  }
}

main().catch((err: unknown) => {
  process.stderr.write(`bench: ${err instanceof Error ? err.stack : String(err)}\n`);
  process.exit(1);
});
