// The V8 flags a pod's process starts with: `npm start`, the `ledger` command (its shebang),
// the image's ENTRYPOINT and the benchmarks' pods all pass these (tests check that they
// agree). Anyone starting `node dist/src/cli.js` directly should pass them too, for example
// in NODE_OPTIONS.
//
// The main thread runs the gateway. A batch's request and reply objects live for the whole
// worker round trip, so with V8's default 16 MiB semi-spaces they outlive two scavenges, are
// promoted and wait for a full GC. With 64 MiB semi-spaces (bench http, embedded, 4 alternating
// runs each on the 2-core VM) HTTP single payments went from a median of 26.5k to 30k/s and WS
// batches of 8190 from 158k to 184k payments/s. Worker threads size their own young generation
// (ActorHostOptions.workerYoungGenerationMb).

//
// --v8-pool-size=0: V8's helper threads (concurrent marking, sweeping, compiling) number one
// less than the cores, instead of Node's fixed 4. A pod already runs a busy thread per core
// (LEDGER_WORKERS) plus the gateway; on a 2-core box four helpers preempt the shard actors
// whenever a collection runs: snapshot slices of 2 ms came out at 5-9 ms, the helpers having
// the cores meanwhile (per-thread CPU from /proc/self/task/*/schedstat). Measured on the 2-core
// VM, runs alternated: the snapshot pause bench at 1M accounts, slice p99 5.65/5.16 ms (built by
// payments) and 6.86/8.08 ms (recovered) with 4 helpers, 2.27/3.50 and 2.49/2.39 ms with one;
// bench http (embedded, 6 runs each), HTTP single payments median 36.0k -> 45.0k/s, WS batches
// of 8190 199k -> 217k payments/s: the CPU the helpers gave up went to the pod's own threads.

export const SEMI_SPACE_MIB = 64;

export const POD_NODE_FLAGS: readonly string[] = [
  `--max-semi-space-size=${SEMI_SPACE_MIB}`,
  '--v8-pool-size=0',
];

/** The main thread's young generation at most: two semi-spaces, one more for large objects. */
export const MAIN_YOUNG_GENERATION_MIB = 3 * SEMI_SPACE_MIB;
