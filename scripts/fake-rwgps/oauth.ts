// The fake's OAuth 2 endpoints: /oauth/authorize, /oauth/token.json and
// /oauth/revoke.json, in the shapes RWGPS documents. There is no login page:
// /oauth/authorize approves at once as `authorizeAs` (or denies, when
// `denyAuthorization` is set) and redirects straight back to redirect_uri.

import { randomBytes } from 'node:crypto';

export interface OAuthClient {
  apiKey: string;
  clientId: string;
  clientSecret: string;
}

/** Model operations of the fake that the OAuth endpoints use. */
export interface OAuthHost {
  findClientById(clientId: string): OAuthClient | undefined;
  hasUser(userId: number): boolean;
  /** Registers and returns a new access token for the user. */
  issueAccessToken(userId: number): string;
  revokeToken(token: string): void;
}

export interface OAuthResponse {
  status: number;
  body: string;
  headers?: Record<string, string>;
}

interface IssuedCode {
  clientId: string;
  redirectUri: string;
  userId: number;
  expiresAt: number;
  used: boolean;
}

/** Switches a test may set at any time; the control API sets them over POST /__fake/oauth. */
export interface OAuthSwitches {
  /** The RWGPS user who approves at /oauth/authorize; null approves as no one (authorize returns 400). */
  authorizeAs: number | null;
  /** Redirect back with error=access_denied instead of a code. */
  denyAuthorization: boolean;
  /** Leave user_id out of the token response, as some RWGPS clients see. */
  omitUserId: boolean;
}

const CODE_TTL_MS = 10 * 60_000;

export class FakeOAuth implements OAuthSwitches {
  authorizeAs: number | null = null;
  denyAuthorization = false;
  omitUserId = false;
  /** Successful token exchanges, in order, for assertions. */
  readonly exchanges: { clientId: string; userId: number }[] = [];
  /** Tokens revoked through /oauth/revoke.json, in order. */
  readonly revocations: string[] = [];

  private readonly codes = new Map<string, IssuedCode>();

  constructor(private readonly host: OAuthHost) {}

  setSwitches(switches: Partial<OAuthSwitches>): void {
    if (switches.authorizeAs !== undefined) {
      const id = switches.authorizeAs;
      if (id !== null && (typeof id !== 'number' || !Number.isSafeInteger(id) || id <= 0)) {
        throw new TypeError(`invalid authorizeAs ${JSON.stringify(id)}: expected a positive integer or null`);
      }
      this.authorizeAs = id;
    }
    if (switches.denyAuthorization !== undefined) this.denyAuthorization = switches.denyAuthorization === true;
    if (switches.omitUserId !== undefined) this.omitUserId = switches.omitUserId === true;
  }

  respond(method: string, url: URL, body: string): OAuthResponse {
    switch (`${method} ${url.pathname}`) {
      case 'GET /oauth/authorize':
        return this.authorize(url);
      case 'POST /oauth/token.json':
        return this.token(parseBody(body));
      case 'POST /oauth/revoke.json':
        return this.revoke(parseBody(body));
      default:
        return json(404, { error: `not found: no OAuth endpoint ${method} ${url.pathname}` });
    }
  }

  private authorize(url: URL): OAuthResponse {
    const clientId = url.searchParams.get('client_id') ?? '';
    const redirectUri = url.searchParams.get('redirect_uri') ?? '';
    const state = url.searchParams.get('state');
    if (this.host.findClientById(clientId) === undefined) return json(400, { error: 'invalid_client', error_description: 'unknown client_id' });
    if (url.searchParams.get('response_type') !== 'code') return json(400, { error: 'unsupported_response_type' });
    let target: URL;
    try {
      target = new URL(redirectUri);
    } catch {
      return json(400, { error: 'invalid_request', error_description: 'redirect_uri is not a URL' });
    }
    if (state !== null) target.searchParams.set('state', state);

    if (this.denyAuthorization) {
      target.searchParams.set('error', 'access_denied');
      return redirect(target);
    }
    const userId = this.authorizeAs;
    if (userId === null || !this.host.hasUser(userId)) {
      return json(400, { error: 'fake: no user to authorize as; set authorizeAs to an existing user id' });
    }
    const code = randomBytes(16).toString('hex');
    this.codes.set(code, { clientId, redirectUri, userId, expiresAt: Date.now() + CODE_TTL_MS, used: false });
    target.searchParams.set('code', code);
    return redirect(target);
  }

  private token(body: Record<string, unknown> | null): OAuthResponse {
    if (body === null) return json(400, { error: 'invalid_request', error_description: 'expected a JSON object body' });
    const client = this.authenticateClient(body);
    if (client === undefined) return json(401, { error: 'invalid_client' });
    if (body.grant_type !== 'authorization_code') return json(400, { error: 'unsupported_grant_type' });

    const issued = typeof body.code === 'string' ? this.codes.get(body.code) : undefined;
    if (issued === undefined || issued.used || issued.expiresAt < Date.now() || issued.clientId !== client.clientId) {
      return json(400, { error: 'invalid_grant', error_description: 'the authorization code is invalid, expired, used or issued to another client' });
    }
    if (body.redirect_uri !== issued.redirectUri) {
      return json(400, { error: 'invalid_grant', error_description: 'redirect_uri does not match the authorization request' });
    }
    issued.used = true;

    const accessToken = this.host.issueAccessToken(issued.userId);
    this.exchanges.push({ clientId: client.clientId, userId: issued.userId });
    return json(200, {
      access_token: accessToken,
      token_type: 'Bearer',
      scope: 'user',
      created_at: Math.floor(Date.now() / 1000),
      ...(this.omitUserId ? {} : { user_id: issued.userId }),
    });
  }

  private revoke(body: Record<string, unknown> | null): OAuthResponse {
    if (body === null) return json(400, { error: 'invalid_request', error_description: 'expected a JSON object body' });
    if (this.authenticateClient(body) === undefined) return json(401, { error: 'invalid_client' });
    if (typeof body.token !== 'string' || body.token === '') return json(400, { error: 'invalid_request', error_description: 'missing token' });
    this.host.revokeToken(body.token);
    this.revocations.push(body.token);
    return json(200, {});
  }

  private authenticateClient(body: Record<string, unknown>): OAuthClient | undefined {
    const client = typeof body.client_id === 'string' ? this.host.findClientById(body.client_id) : undefined;
    return client !== undefined && body.client_secret === client.clientSecret ? client : undefined;
  }
}

function parseBody(text: string): Record<string, unknown> | null {
  try {
    const value = JSON.parse(text) as unknown;
    return typeof value === 'object' && value !== null && !Array.isArray(value) ? (value as Record<string, unknown>) : null;
  } catch {
    return null;
  }
}

function json(status: number, value: unknown): OAuthResponse {
  return { status, body: JSON.stringify(value) };
}

function redirect(target: URL): OAuthResponse {
  return { status: 302, body: '', headers: { location: target.href } };
}
