// The HTTP load generator of the ingest benchmark.

import { Agent, request } from 'node:http';
import { BENCH_CLIENT, deliveryBody, NOTIFICATIONS_PER_DELIVERY, sign } from './fixtures.ts';
import { summarize, type LatencySummary } from './lib.ts';

export interface LoadResult {
  connections: number;
  requests: number;
  errors: number;
  statuses: Record<string, number>;
  seconds: number;
  requestsPerSecond: number;
  notificationsPerSecond: number;
  latencyMs: LatencySummary;
}

/**
 * Sends deliveries over `connections` keep-alive connections until
 * `durationMs` has passed or `maxRequests` were sent, whichever comes first.
 * `firstDelivery` numbers the deliveries so that every run sends new ones.
 */
export async function runLoad(
  url: string,
  options: { connections: number; durationMs: number; maxRequests: number; firstDelivery: number },
): Promise<LoadResult> {
  const agent = new Agent({ keepAlive: true, maxSockets: options.connections });
  const target = new URL('/webhooks/rwgps', url);
  const latencies: number[] = [];
  const statuses: Record<string, number> = {};
  let next = options.firstDelivery;
  let sent = 0;
  let errors = 0;
  const started = performance.now();
  const deadline = started + options.durationMs;

  const loop = async () => {
    while (sent < options.maxRequests && performance.now() < deadline) {
      sent++;
      const body = deliveryBody(next++);
      const signature = sign(body);
      const begin = performance.now();
      try {
        const status = await post(agent, target, body, signature);
        latencies.push(performance.now() - begin);
        statuses[status] = (statuses[status] ?? 0) + 1;
        if (status !== 200) errors++;
      } catch (error) {
        errors++;
        statuses.error = (statuses.error ?? 0) + 1;
        if (errors === 1) console.error(`request failed: ${error instanceof Error ? error.message : String(error)}`);
      }
    }
  };
  await Promise.all(Array.from({ length: options.connections }, loop));
  const seconds = (performance.now() - started) / 1000;
  agent.destroy();

  const ok = statuses['200'] ?? 0;
  return {
    connections: options.connections,
    requests: sent,
    errors,
    statuses,
    seconds,
    requestsPerSecond: ok / seconds,
    notificationsPerSecond: (ok * NOTIFICATIONS_PER_DELIVERY) / seconds,
    latencyMs: summarize(latencies),
  };
}

function post(agent: Agent, target: URL, body: Buffer, signature: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = request(
      target,
      {
        method: 'POST',
        agent,
        headers: {
          'content-type': 'application/json',
          'content-length': body.byteLength,
          'user-agent': 'RideWithGPS',
          'x-rwgps-api-key': BENCH_CLIENT.apiKey,
          'x-rwgps-signature': signature,
        },
      },
      (res) => {
        res.resume();
        res.once('end', () => resolve(res.statusCode ?? 0));
        res.once('error', reject);
      },
    );
    req.once('error', reject);
    req.end(body);
  });
}
