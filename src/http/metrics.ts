import { createHash, timingSafeEqual } from 'node:crypto';
import { getConnInfo } from '@hono/node-server/conninfo';
import type { Context, Hono } from 'hono';
import type { Config } from '../config/config.ts';
import { createAllowList } from '../config/networks.ts';
import { errorMessage, type Logger } from '../log.ts';

// GET /metrics in the Prometheus text format. Off unless metrics.enabled.
// When metrics.allow is set, the client address must be in it (else 403);
// when metrics.token is set, the request must carry it as a bearer token
// (else 401). With both set, both are required.
//
// Behind a reverse proxy on the same host every request comes from
// 127.0.0.1, so an allow list of 127.0.0.1 lets the whole internet in
// through the proxy. Use the token there, or block /metrics at the proxy.

export interface MetricsDeps {
  config: Config['metrics'];
  logger: Logger;
  render: () => Promise<string>;
}

export function registerMetrics(app: Hono, deps: MetricsDeps): void {
  const { config, logger, render } = deps;
  if (!config.enabled) return;
  const allowed = config.allow.length > 0 ? createAllowList(config.allow) : null;
  const tokenDigest = config.token === null ? null : digest(config.token);

  app.get('/metrics', async (c) => {
    if (allowed && !allowed(remoteAddress(c))) {
      return c.json({ error: 'client address not in metrics.allow' }, 403);
    }
    if (tokenDigest) {
      const header = c.req.header('authorization') ?? '';
      const match = /^Bearer\s+(.+)$/i.exec(header);
      // Digests have equal lengths, so the comparison time does not depend on the token.
      if (!match || !timingSafeEqual(digest(match[1]!.trim()), tokenDigest)) {
        c.header('www-authenticate', 'Bearer realm="metrics"');
        return c.json({ error: match ? 'invalid bearer token' : 'missing bearer token' }, 401);
      }
    }
    try {
      const text = await render();
      return c.body(text, 200, { 'content-type': 'text/plain; version=0.0.4; charset=utf-8' });
    } catch (error) {
      logger.error('metrics collection failed', { error: errorMessage(error) });
      return c.json({ error: 'metrics unavailable' }, 503);
    }
  });
}

function digest(text: string): Buffer {
  return createHash('sha256').update(text).digest();
}

function remoteAddress(c: Context): string | undefined {
  // On Deno, listen() passes Deno.serve's handler info, whose remoteAddr
  // holds the client's address.
  const denoAddress = (c.env as { remoteAddr?: { hostname?: unknown } } | undefined)?.remoteAddr?.hostname;
  if (typeof denoAddress === 'string') return denoAddress;
  try {
    return getConnInfo(c).remote.address;
  } catch {
    // app.request() in tests has no socket.
    return undefined;
  }
}
