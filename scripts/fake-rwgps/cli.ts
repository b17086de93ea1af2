// The command line of `npx tsx scripts/fake-rwgps.ts`.

import { parseArgs } from 'node:util';
import { FakeRwgps } from './server.ts';
import { errorMessage } from './validate.ts';

const USAGE = `Usage: npx tsx scripts/fake-rwgps.ts [--port N] [--latency MS]

Starts a fake Ride with GPS API on 127.0.0.1 with no users or items.
Prints {"msg":"fake rwgps listening","url":...} on stdout and runs until SIGINT or SIGTERM.

  --port N       TCP port to listen on (default 0: a free port chosen by the OS)
  --latency MS   delay in milliseconds added before every API response (default 0)
  --help         print this help`;

/**
 * Starts the fake from command-line arguments and stops it on SIGINT or SIGTERM.
 * Exits with status 2 on invalid arguments and 1 when the server cannot listen.
 */
export function runFakeRwgpsCli(args: string[]): void {
  let port: number;
  let latencyMs: number;
  try {
    const { values } = parseArgs({
      args,
      strict: true,
      allowPositionals: false,
      options: { port: { type: 'string' }, latency: { type: 'string' }, help: { type: 'boolean' } },
    });
    if (values.help === true) {
      console.log(USAGE);
      return;
    }
    port = parseIntegerOption(values.port ?? '0', '--port', 65535);
    latencyMs = parseIntegerOption(values.latency ?? '0', '--latency', Number.MAX_SAFE_INTEGER);
  } catch (error) {
    console.error(`fake-rwgps: ${errorMessage(error)}`);
    console.error(USAGE);
    process.exit(2);
  }

  FakeRwgps.start({ port, latencyMs }).then(
    (fake) => {
      console.log(JSON.stringify({ msg: 'fake rwgps listening', url: fake.url }));
      const stop = (signal: NodeJS.Signals) => {
        fake.close().then(
          () => {
            console.error(JSON.stringify({ msg: 'fake rwgps stopped', signal }));
            process.exit(0);
          },
          (error: unknown) => {
            console.error(JSON.stringify({ msg: 'fake rwgps failed to close', signal, error: errorMessage(error) }));
            process.exit(1);
          },
        );
      };
      process.once('SIGINT', stop);
      process.once('SIGTERM', stop);
    },
    (error: unknown) => {
      console.error(JSON.stringify({ msg: 'fake rwgps failed to start', port, error: errorMessage(error) }));
      process.exit(1);
    },
  );
}

function parseIntegerOption(text: string, name: string, max: number): number {
  const value = Number(text);
  if (!/^\d+$/.test(text) || value > max) throw new Error(`invalid ${name} ${JSON.stringify(text)}: expected an integer from 0 to ${max}`);
  return value;
}
