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

export const SEMI_SPACE_MIB = 64;

export const POD_NODE_FLAGS: readonly string[] = [
  `--max-semi-space-size=${SEMI_SPACE_MIB}`,
];

/** The main thread's young generation at most: two semi-spaces, one more for large objects. */
export const MAIN_YOUNG_GENERATION_MIB = 3 * SEMI_SPACE_MIB;
