// The built-in prototypes a pod's hot paths read methods from must stay in V8's fast mode once
// every module of the pod is loaded. A dependency that declares `class X extends String` (ioredis
// 6.0's RESP3 VerbatimString does) turns String.prototype into a dictionary for good on Node 20:
// loads on primitive strings never make it fast again, so every `s.charCodeAt` and `s.length` in
// optimized code becomes a call to V8's generic LoadIC. Measured on the 2-core VM with ioredis
// 6.0.0 against 5.11.1, runs alternated: shard workers spent 18-23% of their time in that call
// (perf), WS batches of 8190 ran at 175-188k against 239-240k payments/s. This is why
// package.json holds ioredis at 5.x; the test fails if any import brings the problem back.

import { execFileSync } from 'node:child_process';
import { beforeAll, describe, expect, it } from 'vitest';
import { assertBuilt, built } from './support/built.js';

/** Every module a pod's main thread or shard workers load, from the build. */
const POD_MODULES = [
  'src/server.js', 'src/storage.js', 'src/relay.js', 'src/relay-consumer.js',
  'shards/actor-worker.js', 'persistence/snapshot-redis.js', 'persistence/pg-journal.js',
  'persistence/kafka-relay.js', 'src/audit/run-audit.js',
];

const PROTOTYPES = ['String', 'Object', 'Array', 'Function', 'Uint8Array', 'Buffer', 'DataView',
  'Map', 'Set', 'Number', 'Promise'];

/** Whether each prototype has fast properties after importing `modules` and running `then`. */
function fastness(modules: string[], then = ''): Record<string, boolean> {
  const imports = modules.map((m) => `await import(${JSON.stringify(built(m))});`).join('\n');
  const checks = PROTOTYPES.map((p) => `${p}: %HasFastProperties(${p}.prototype)`).join(', ');
  const script = `${imports}\n${then}\nconsole.log(JSON.stringify({ ${checks} }));`;
  const out = execFileSync(process.execPath,
    ['--allow-natives-syntax', '--input-type=module', '-e', script],
    { encoding: 'utf8', timeout: 60_000, env: { ...process.env, LOG_LEVEL: 'silent' } });
  return JSON.parse(out.trim().split('\n').pop() as string) as Record<string, boolean>;
}

describe('built-in prototypes after loading a pod', () => {
  beforeAll(() => assertBuilt());

  it('are all still in fast mode', () => {
    const all = Object.fromEntries(PROTOTYPES.map((p) => [p, true]));
    expect(fastness(POD_MODULES)).toEqual(all);
  });

  it('the check sees a prototype turned into a dictionary', () => {
    // what ioredis 6.0 did, after the same imports: the check must be able to fail
    const probe = fastness(POD_MODULES, 'class VerbatimString extends String {}');
    expect(probe.String).toBe(false);
    expect(probe.Object).toBe(true);
  });
});
