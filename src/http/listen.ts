import { serve } from '@hono/node-server';
import type { AddressInfo } from 'node:net';

// Starts an HTTP server for a fetch handler with the runtime's own server:
// @hono/node-server on Node, Deno.serve on Deno. The handler (the Hono app's
// fetch) is the same object on both.

export type FetchHandler = (request: Request) => Response | Promise<Response>;

export interface Listener {
  /** The port actually bound (useful when 0 was requested). */
  readonly port: number;
  /** Stops accepting connections and resolves once in-flight requests have finished. */
  close(): Promise<void>;
}

export function listen(fetch: FetchHandler, hostname: string, port: number): Promise<Listener> {
  const deno = (globalThis as { Deno?: DenoServeApi }).Deno;
  if (deno) return listenDeno(deno, fetch, hostname, port);
  return listenNode(fetch, hostname, port);
}

function listenNode(fetch: FetchHandler, hostname: string, port: number): Promise<Listener> {
  return new Promise((resolve, reject) => {
    const server = serve({ fetch, hostname, port }, () => {
      resolve({
        port: (server.address() as AddressInfo).port,
        close: () => new Promise<void>((done) => server.close(() => done())),
      });
    });
    server.once('error', reject);
  });
}

// The part of Deno's API used here; this file is also type-checked without Deno's types.
interface DenoServeApi {
  serve(
    options: { hostname: string; port: number; onListen?: (address: unknown) => void },
    handler: FetchHandler,
  ): { addr: { port: number }; shutdown(): Promise<void> };
}

async function listenDeno(deno: DenoServeApi, fetch: FetchHandler, hostname: string, port: number): Promise<Listener> {
  // Deno.serve binds synchronously and throws when the address is taken.
  // The empty onListen replaces Deno's default "Listening on ..." line,
  // which would break the JSON-lines log on stdout.
  const server = deno.serve({ hostname, port, onListen: () => {} }, (request) => fetch(request));
  return { port: server.addr.port, close: () => server.shutdown() };
}
