// A relay in a process of its own, for the kill -9 test: argv[2] is JSON {brokers, pgUrls,
// overrides}. Prints one JSON stats line every 100 ms; exits cleanly on SIGTERM.

import pino from 'pino';
import { startRelay, type RelayOverrides } from '../../src/relay.js';

interface ChildArgs {
  brokers: string[];
  pgUrls: string[];
  overrides: RelayOverrides;
}

const args = JSON.parse(process.argv[2] ?? '{}') as ChildArgs;
const relay = startRelay(
  { kafkaBrokers: args.brokers, pgUrls: args.pgUrls, podId: `relay-child-${process.pid}` },
  pino({ level: 'warn' }, process.stderr),
  undefined,
  args.overrides,
);
const timer = setInterval(() => {
  process.stdout.write(`${JSON.stringify(relay.stats())}\n`);
}, 100);
process.once('SIGTERM', () => {
  clearInterval(timer);
  void relay.close().then(() => process.exit(0));
});
