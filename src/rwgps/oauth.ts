import type { ClientConfig } from '../config/config.ts';
import type { RwgpsClient } from './client.ts';

// RWGPS's OAuth 2 endpoints (authorization code flow). Codes, tokens and the
// client secret go only into request bodies sent to rwgps.baseUrl, never into
// a URL, a log line or an error message.

export interface OAuthEndpoints {
  baseUrl: string;
  requestTimeoutMs: number;
}

export type TokenExchange =
  | { ok: true; accessToken: string; userId: number | null }
  /** `rejected`: RWGPS rejected the code (invalid_grant and similar). `unavailable`: RWGPS failed or timed out. */
  | { ok: false; kind: 'rejected' | 'unavailable'; message: string };

/** Returns the RWGPS URL where the user authorizes `client`. */
export function authorizeUrl(baseUrl: string, client: ClientConfig, redirectUri: string, state: string): string {
  const url = new URL('/oauth/authorize', `${baseUrl}/`);
  url.searchParams.set('client_id', client.clientId);
  url.searchParams.set('redirect_uri', redirectUri);
  url.searchParams.set('response_type', 'code');
  url.searchParams.set('state', state);
  return url.href;
}

/** Exchanges an authorization code at /oauth/token.json. */
export async function exchangeCode(
  endpoints: OAuthEndpoints,
  client: ClientConfig,
  code: string,
  redirectUri: string,
): Promise<TokenExchange> {
  const answer = await postJson(endpoints, '/oauth/token.json', {
    grant_type: 'authorization_code',
    code,
    client_id: client.clientId,
    client_secret: client.clientSecret,
    redirect_uri: redirectUri,
  });
  if (!answer.ok) return answer;

  const body = answer.body as { access_token?: unknown; user_id?: unknown } | null;
  const accessToken = body?.access_token;
  if (typeof accessToken !== 'string' || accessToken === '') {
    return { ok: false, kind: 'unavailable', message: 'RWGPS returned no access_token in the token response' };
  }
  const userId = body?.user_id;
  const validUserId = typeof userId === 'number' && Number.isSafeInteger(userId) && userId > 0 ? userId : null;
  return { ok: true, accessToken, userId: validUserId };
}

/** Revokes an access token at /oauth/revoke.json. Returns an error message, or null on success. */
export async function revokeToken(endpoints: OAuthEndpoints, client: ClientConfig, token: string): Promise<string | null> {
  const answer = await postJson(endpoints, '/oauth/revoke.json', {
    client_id: client.clientId,
    client_secret: client.clientSecret,
    token,
  });
  return answer.ok ? null : answer.message;
}

/** Asks RWGPS whose access token this is (for a token response without user_id). */
export async function fetchTokenOwner(
  rwgps: RwgpsClient,
  client: ClientConfig,
  accessToken: string,
): Promise<{ ok: true; userId: number } | { ok: false; message: string }> {
  const result = await rwgps.get('/api/v1/users/current.json', { token: accessToken, kind: 'oauth', client });
  if (result.kind !== 'ok') {
    const detail = 'message' in result ? result.message : `RWGPS responded ${result.status}`;
    return { ok: false, message: `could not read the connected user from users/current.json: ${detail}` };
  }
  try {
    const id = (JSON.parse(result.body) as { user?: { id?: unknown } } | null)?.user?.id;
    if (typeof id === 'number' && Number.isSafeInteger(id) && id > 0) return { ok: true, userId: id };
  } catch {
    // Reported below.
  }
  return { ok: false, message: 'users/current.json returned no user id' };
}

type PostAnswer = { ok: true; body: unknown } | { ok: false; kind: 'rejected' | 'unavailable'; message: string };

// POSTs JSON and classifies the response: 2xx ok; 400, 401 and 403 mean RWGPS
// rejected the request (a bad code or client credentials); anything else, a
// timeout included, means RWGPS is unavailable. Redirects are not followed.
async function postJson(endpoints: OAuthEndpoints, path: string, payload: Record<string, string>): Promise<PostAnswer> {
  const url = new URL(path, `${endpoints.baseUrl}/`);
  let response: Response;
  try {
    response = await fetch(url, {
      method: 'POST',
      redirect: 'manual',
      headers: { 'content-type': 'application/json', accept: 'application/json', 'user-agent': 'rwgps-sync' },
      body: JSON.stringify(payload),
      signal: AbortSignal.timeout(endpoints.requestTimeoutMs),
    });
  } catch (error) {
    const reason = error instanceof Error && error.name === 'TimeoutError' ? `timed out after ${endpoints.requestTimeoutMs} ms` : 'connection failed';
    return { ok: false, kind: 'unavailable', message: `POST ${path} ${reason}` };
  }

  const text = await response.text().catch(() => '');
  let body: unknown = null;
  try {
    body = JSON.parse(text);
  } catch {
    // A body that is not JSON is reported through the status below.
  }
  if (response.status >= 200 && response.status < 300) {
    if (body === null || typeof body !== 'object') {
      return { ok: false, kind: 'unavailable', message: `POST ${path} responded ${response.status} without a JSON object` };
    }
    return { ok: true, body };
  }
  const detail = describeOAuthError(body);
  const kind = response.status === 400 || response.status === 401 || response.status === 403 ? 'rejected' : 'unavailable';
  return { ok: false, kind, message: `POST ${path} responded ${response.status}${detail}` };
}

// OAuth errors carry `error` and sometimes `error_description`; both are
// RWGPS's words, shortened, and never contain the code we sent.
function describeOAuthError(body: unknown): string {
  const record = body as { error?: unknown; error_description?: unknown } | null;
  const parts = [record?.error, record?.error_description].filter((part): part is string => typeof part === 'string');
  return parts.length === 0 ? '' : `: ${parts.join(': ').slice(0, 200)}`;
}
