// The webhook sender: signs and posts a body the way RWGPS does.

import { createHmac } from 'node:crypto';

/** Returns the lower-case hex HMAC-SHA256 of `body`, as RWGPS sends in x-rwgps-signature. */
export function signBody(body: string | Uint8Array, secret: string): string {
  return createHmac('sha256', secret).update(body).digest('hex');
}

/**
 * Posts a webhook the way RWGPS does: JSON body, user-agent RideWithGPS,
 * x-rwgps-api-key and a signature over the exact bytes sent.
 * Redirects are returned, not followed, because RWGPS does not follow them.
 * `options.headers` are applied last and may replace any of those headers.
 */
export async function sendWebhook(
  targetUrl: string,
  body: string | Uint8Array | { notifications: unknown[] },
  options: { apiKey: string; secret: string; signature?: string; headers?: Record<string, string> },
): Promise<{ status: number; body: string; headers: Headers }> {
  const bytes = typeof body === 'string' ? Buffer.from(body, 'utf8') : body instanceof Uint8Array ? body : Buffer.from(JSON.stringify(body), 'utf8');
  const response = await fetch(targetUrl, {
    method: 'POST',
    redirect: 'manual',
    headers: {
      'content-type': 'application/json',
      'user-agent': 'RideWithGPS',
      'x-rwgps-api-key': options.apiKey,
      'x-rwgps-signature': options.signature ?? signBody(bytes, options.secret),
      ...options.headers,
    },
    body: bytes,
  });
  return { status: response.status, body: await response.text(), headers: response.headers };
}
