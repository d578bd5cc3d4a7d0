// The built code (dist/) that pods run, for tests that start pods or workers from it instead of
// through tsx (tsx's loader in worker threads can fail to start a worker of a pod restarted
// after kill -9: see crash-child.ts). Refuses a build older than the sources.

import { existsSync, readdirSync, statSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const BUILT_WORKER = path.join(ROOT, 'dist/src/shard-worker.js');

/** A file of the build, by its path under dist/ (e.g. 'src/cli.js'). */
export function built(file: string): string {
  return path.join(ROOT, 'dist', file);
}

/** Throws unless dist/ exists and is not older than any source file (npm test builds first). */
export function assertBuilt(): void {
  if (!existsSync(BUILT_WORKER)) throw new Error('no dist/: run npm run build (npm test does)');
  const at = statSync(BUILT_WORKER).mtimeMs;
  for (const dir of ['shards', 'persistence', 'protocol', 'src']) {
    for (const name of readdirSync(path.join(ROOT, dir), { recursive: true }) as string[]) {
      if (!name.endsWith('.ts') || name.endsWith('.test.ts')) continue;
      if (statSync(path.join(ROOT, dir, name)).mtimeMs > at) {
        throw new Error(`dist/ is older than ${dir}/${name}: run npm run build (npm test does)`);
      }
    }
  }
}
