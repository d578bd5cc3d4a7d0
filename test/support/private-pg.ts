// Test helper: a PRIVATE PostgreSQL server (own data directory, own port, own socket directory)
// that a test may crash (`pg_ctl stop -m immediate`) and start again without touching the
// machine's shared server on 5432, which other test files use in parallel. Debian binaries
// from /usr/lib/postgresql/<version>/bin, run as the `postgres` OS user (initdb refuses root).
// Trust auth on 127.0.0.1 only; fsync and synchronous_commit on, as in production.

import { execFile, execFileSync } from 'node:child_process';
import { chownSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import pg from 'pg';
import { freePort } from './net.js';
import { pgClusterVersion } from './pg.js';

const run = promisify(execFile);
const SUPERUSER = 'postgres';
const OS_USER = 'postgres';

function osUser(): { uid: number; gid: number } {
  const id = (flag: string): number =>
    Number(execFileSync('id', [flag, OS_USER], { encoding: 'utf8' }).trim());
  return { uid: id('-u'), gid: id('-g') };
}

/** Runs a PostgreSQL binary as the postgres OS user (or directly when we already are not root). */
function asPostgres(bin: string, args: string[]): [string, string[]] {
  if (process.getuid?.() !== 0) return [bin, args];
  return ['runuser', ['-u', OS_USER, '--', bin, ...args]];
}

export class PrivatePostgres {
  /** every instance not yet destroyed, stopped on process exit if afterAll never ran */
  private static readonly live = new Set<PrivatePostgres>();
  private static exitHook = false;
  private destroyed = false;
  private databases = 0;

  private constructor(
    /** the temporary root: data/, the socket, server.log */
    readonly dir: string,
    readonly port: number,
    private readonly bin: string,
  ) {}

  get dataDir(): string {
    return path.join(this.dir, 'data');
  }

  get logFile(): string {
    return path.join(this.dir, 'server.log');
  }

  /** initdb in a fresh temporary directory and start the server; resolves once it answers. */
  static async create(): Promise<PrivatePostgres> {
    const bin = `/usr/lib/postgresql/${pgClusterVersion()}/bin`;
    const dir = mkdtempSync(path.join(os.tmpdir(), 'ledger-private-pg-'));
    const port = await freePort();
    const instance = new PrivatePostgres(dir, port, bin);
    PrivatePostgres.track(instance);
    try {
      if (process.getuid?.() === 0) {
        const { uid, gid } = osUser();
        chownSync(dir, uid, gid);
      }
      // --no-sync only skips initdb's own final fsync of the template files (speed); the
      // server below runs with fsync=on and synchronous_commit=on.
      await instance.exec('initdb', ['-D', instance.dataDir, '-U', SUPERUSER, '-A', 'trust',
        '-E', 'UTF8', '--locale=C', '--no-sync']);
      const conf = [
        '',
        '# ledger test: private instance',
        `port = ${port}`,
        "listen_addresses = '127.0.0.1'",
        `unix_socket_directories = '${dir}'`,
        'fsync = on',
        'synchronous_commit = on',
        'full_page_writes = on',
        'max_connections = 100',
        'shared_buffers = 32MB',
        '',
      ].join('\n');
      writeFileSync(path.join(instance.dataDir, 'postgresql.conf'),
        readFileSync(path.join(instance.dataDir, 'postgresql.conf'), 'utf8') + conf);
      await instance.start();
      return instance;
    } catch (err) {
      await instance.destroy().catch(() => undefined);
      throw err;
    }
  }

  private static track(instance: PrivatePostgres): void {
    PrivatePostgres.live.add(instance);
    if (PrivatePostgres.exitHook) return;
    PrivatePostgres.exitHook = true;
    process.once('exit', () => {
      for (const p of PrivatePostgres.live) p.destroySync();
    });
  }

  url(database: string): string {
    return `postgres://${SUPERUSER}@127.0.0.1:${this.port}/${database}`;
  }

  /** Whether the postmaster runs (pg_ctl status). */
  async running(): Promise<boolean> {
    try {
      await this.exec('pg_ctl', ['status', '-D', this.dataDir]);
      return true;
    } catch {
      return false;
    }
  }

  /** pg_ctl start (same port, same data), then waits until it accepts connections. */
  async start(timeoutMs = 30_000): Promise<void> {
    await this.exec('pg_ctl', ['start', '-w', '-t', String(Math.ceil(timeoutMs / 1000)),
      '-D', this.dataDir, '-l', this.logFile]);
    await this.waitAccepting(timeoutMs);
  }

  /** A crash: `pg_ctl stop -m immediate` (no checkpoint; WAL replay at the next start). */
  async stopImmediate(): Promise<void> {
    await this.exec('pg_ctl', ['stop', '-w', '-m', 'immediate', '-D', this.dataDir]);
  }

  /** Creates `count` empty databases; returns their URLs. */
  async createDatabases(count: number, prefix = 'ledger'): Promise<string[]> {
    const client = new pg.Client({ connectionString: this.url('postgres') });
    await client.connect();
    const urls: string[] = [];
    try {
      for (let i = 0; i < count; i++) {
        const name = `${prefix}_${this.databases++}`;
        await client.query(`CREATE DATABASE ${client.escapeIdentifier(name)}`);
        urls.push(this.url(name));
      }
    } finally {
      await client.end();
    }
    return urls;
  }

  /** The server log (for failure reports). */
  log(): string {
    return existsSync(this.logFile) ? readFileSync(this.logFile, 'utf8') : '';
  }

  /** Stops the server (immediate) if it runs and removes the directory. Idempotent. */
  async destroy(): Promise<void> {
    if (this.destroyed) return;
    if (existsSync(path.join(this.dataDir, 'postmaster.pid'))) {
      await this.stopImmediate().catch(() => undefined);
    }
    this.destroyed = true;
    PrivatePostgres.live.delete(this);
    rmSync(this.dir, { recursive: true, force: true });
  }

  /** destroy() for process exit, where nothing asynchronous runs any more. */
  private destroySync(): void {
    if (this.destroyed) return;
    this.destroyed = true;
    try {
      if (existsSync(path.join(this.dataDir, 'postmaster.pid'))) {
        const [cmd, args] = asPostgres(path.join(this.bin, 'pg_ctl'),
          ['stop', '-w', '-m', 'immediate', '-D', this.dataDir]);
        execFileSync(cmd, args, { stdio: 'ignore', timeout: 10_000 });
      }
    } catch {
      // already stopped
    }
    rmSync(this.dir, { recursive: true, force: true });
  }

  private async waitAccepting(timeoutMs: number): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const client = new pg.Client({
        connectionString: this.url('postgres'),
        connectionTimeoutMillis: 1000,
      });
      try {
        await client.connect();
        await client.end();
        return;
      } catch (err) {
        await client.end().catch(() => undefined);
        if (Date.now() > deadline) throw err;
        await new Promise((r) => setTimeout(r, 100));
      }
    }
  }

  private async exec(tool: string, args: string[]): Promise<void> {
    const [cmd, argv] = asPostgres(path.join(this.bin, tool), args);
    try {
      // asynchronous: a test's load keeps running while the server stops or starts
      await run(cmd, argv, { cwd: this.dir, timeout: 60_000 });
    } catch (err) {
      const e = err as { stderr?: string; stdout?: string; message: string };
      throw new Error(`${tool} ${args[0]}: ${e.message}\n${e.stderr ?? ''}${e.stdout ?? ''}`);
    }
  }
}
