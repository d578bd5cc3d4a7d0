// The lines the load generator (load-client.ts) prints on stdout when its measured window
// opens and closes (after the warm-up, and at its end), before its report. The http bench
// samples the pod's CPU counters at these moments, so the generator's start-up and warm-up do
// not dilute them. Apart from load-client.ts because importing that module runs it.

export const WINDOW_EDGES = { open: '{"window":"open"}', close: '{"window":"close"}' } as const;
