import { serve } from '@hono/node-server';
import type { AddressInfo } from 'node:net';

// Starts an HTTP server for a fetch handler with the runtime's own server:
// @hono/node-server on Node, Deno.serve on Deno. The handler (the Hono app's
// fetch) is the same object on both.

// `env` carries the runtime's connection objects (on Node, @hono/node-server's
// { incoming, outgoing }), which getConnInfo() reads for the client address.
export type FetchHandler = (request: Request, env?: unknown) => Response | Promise<Response>;

export interface Listener {
  /** The port actually bound (useful when 0 was requested). */
  readonly port: number;
  /**
   * Stops accepting connections and resolves once in-flight requests have
   * been answered. Connections still open after `graceMs` (a client that
   * keeps a slow upload going) are cut, so shutdown stays bounded.
   */
  close(graceMs: number): Promise<void>;
}

export function listen(fetch: FetchHandler, hostname: string, port: number): Promise<Listener> {
  const deno = (globalThis as { Deno?: DenoServeApi }).Deno;
  if (deno) return listenDeno(deno, fetch, hostname, port);
  return listenNode(fetch, hostname, port);
}

function listenNode(fetch: FetchHandler, hostname: string, port: number): Promise<Listener> {
  return new Promise((resolve, reject) => {
    const server = serve({ fetch: (request, env) => fetch(request, env), hostname, port }, () => {
      resolve({
        port: (server.address() as AddressInfo).port,
        close: async (graceMs) => {
          const closed = new Promise<void>((done) => server.close(() => done()));
          const http1 = 'closeAllConnections' in server ? server : null;
          http1?.closeIdleConnections();
          const cutOff = setTimeout(() => http1?.closeAllConnections(), graceMs);
          await closed;
          clearTimeout(cutOff);
        },
      });
    });
    server.once('error', reject);
  });
}

// The part of Deno's API used here; this file is also type-checked without Deno's types.
interface DenoServeApi {
  serve(
    options: { hostname: string; port: number; onListen?: (address: unknown) => void },
    handler: (request: Request, info: unknown) => Response | Promise<Response>,
  ): { addr: { port: number }; shutdown(): Promise<void> };
}

async function listenDeno(deno: DenoServeApi, fetch: FetchHandler, hostname: string, port: number): Promise<Listener> {
  // Deno.serve binds synchronously and throws when the address is taken.
  // The empty onListen replaces Deno's default "Listening on ..." line,
  // which would break the JSON-lines log on stdout.
  const server = deno.serve({ hostname, port, onListen: () => {} }, (request, info) => fetch(request, info));
  return { port: server.addr.port, close: () => server.shutdown() };
}
