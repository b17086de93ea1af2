// A fake Ride with GPS API for tests, the demo and benchmarks. It is a real
// HTTP server on 127.0.0.1 that serves routes, trips, the current user and the
// sync endpoint, and it injects faults on request. For each change to its model
// it produces the webhook notification that Ride with GPS would send.
//
// OAuth (/oauth/authorize, /oauth/token.json, /oauth/revoke.json) lives in
// fake-rwgps/oauth.ts; `fake.oauth` holds its switches.
//
// Run directly for other processes: `npx tsx scripts/fake-rwgps.ts [--port N] [--latency MS]`.
// They control the model over POST /__fake/... (see handleControl).

import { createHmac, randomBytes } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import { FakeOAuth } from './fake-rwgps/oauth.ts';

export { FakeOAuth, type OAuthSwitches } from './fake-rwgps/oauth.ts';

export type Visibility = 'public' | 'friends_only' | 'private';
export type ItemType = 'route' | 'trip';
export type ChangeAction = 'created' | 'updated' | 'deleted' | 'added' | 'removed';

export interface FakeClient {
  apiKey: string;
  clientId: string;
  clientSecret: string;
}

export interface FakeRwgpsOptions {
  port?: number;
  latencyMs?: number;
  clients?: FakeClient[];
}

export interface RecordedRequest {
  method: string;
  path: string;
  query: Record<string, string>;
  headers: Record<string, string>;
  at: number;
}

export type Fault =
  | { kind: 'status'; status: number; retryAfter?: string; body?: string }
  | { kind: 'slow'; delayMs: number }
  | { kind: 'stall' }
  | { kind: 'reset' }
  | { kind: 'redirect'; location: string; status?: number };

export interface FaultRule {
  method?: string;
  /** Exact URL path (without query) or a pattern tested against it. */
  path: string | RegExp;
  /** Number of requests the rule applies to: default 1, Infinity allowed. */
  times?: number;
  fault: Fault;
}

export interface FakeUser {
  id: number;
  name?: string;
  /** OAuth access token, sent as `Authorization: Bearer`. */
  accessToken?: string;
  /** Basic auth_token, sent with a client's x-rwgps-api-key. */
  authToken?: string;
}

export interface FakeItem {
  id: number;
  userId: number;
  name?: string;
  visibility?: Visibility;
  trackPoints?: number;
}

/** The pinned collection named by `added` and `removed` changes. */
export interface PinnedCollection {
  id: number;
  type: 'pinned';
  url: null;
}

/** One item of the sync endpoint's `items` array. */
export interface ChangeEntry {
  item_type: ItemType;
  item_id: number;
  item_user_id: number;
  item_url: string;
  action: ChangeAction;
  datetime: string;
  collection: PinnedCollection | null;
}

/** One element of a webhook body's `notifications` array. */
export interface Notification {
  user_id: number;
  item_type: ItemType;
  item_id: number;
  item_user_id: number;
  item_url: string;
  action: ChangeAction;
  collection: PinnedCollection | null;
}

interface StoredUser {
  id: number;
  name: string;
  createdAt: number;
  updatedAt: number;
}

interface StoredItem {
  type: ItemType;
  id: number;
  userId: number;
  name: string;
  visibility: Visibility;
  trackPoints: number;
  createdAt: number;
  updatedAt: number;
  version: number;
  deleted: boolean;
}

interface RecordedChange {
  userId: number;
  itemType: ItemType;
  itemId: number;
  itemUserId: number;
  action: ChangeAction;
  at: number;
  collection: PinnedCollection | null;
}

interface ActiveFaultRule {
  method: string | undefined;
  path: string | RegExp;
  remaining: number;
  fault: Fault;
}

interface ApiResponse {
  status: number;
  body: string;
  headers?: Record<string, string>;
}

/** Invalid input to a model or control method. The control API returns it as 400. */
export class FakeInputError extends Error {
  override name = 'FakeInputError';
}

const VISIBILITIES: readonly Visibility[] = ['public', 'friends_only', 'private'];
const DEFAULT_TRACK_POINTS = 100;
// Bounds a typo in a test so it cannot build a response of gigabytes.
const MAX_TRACK_POINTS = 1_000_000;
const MAX_CONTROL_BODY_BYTES = 1024 * 1024;
const ITEM_PATH = /^(?:\/api\/v1)?\/(routes|trips)\/([^/]+)\.json$/;

export class FakeRwgps {
  /** Base URL without a trailing slash, such as http://127.0.0.1:41234. */
  readonly url: string;
  /** Every request outside /__fake/, in arrival order, including those that got a fault. */
  readonly requests: RecordedRequest[] = [];
  /** Delay in milliseconds before every API response; it may be changed at any time. */
  latencyMs: number;
  /** The OAuth endpoints and their switches (who approves, deny, omit user_id). */
  readonly oauth: FakeOAuth;
  /**
   * Largest number of entries in one sync.json response, or null for all.
   * A cut-short response points next_sync_url at the first entry left out;
   * RWGPS does not document such pages, so this only tests clients' handling.
   */
  syncPageSize: number | null = null;

  private readonly server: Server;
  private readonly sockets = new Set<Socket>();
  private readonly timers = new Set<NodeJS.Timeout>();
  private readonly clients = new Map<string, FakeClient>();
  private readonly users = new Map<number, StoredUser>();
  private readonly accessTokens = new Map<string, number>();
  private readonly authTokens = new Map<string, number>();
  private readonly revokedTokens = new Set<string>();
  private readonly items = new Map<string, StoredItem>();
  private readonly bodyCache = new Map<string, { version: number; body: string }>();
  private readonly changes: RecordedChange[] = [];
  private faultRules: ActiveFaultRule[] = [];
  private notifiedCount = 0;
  private lastChangeAt = 0;
  private closing: Promise<void> | undefined;

  private constructor(server: Server, url: string, options: FakeRwgpsOptions) {
    this.server = server;
    this.url = url;
    this.latencyMs = validateDelay(options.latencyMs ?? 0, 'latencyMs');
    for (const client of options.clients ?? []) this.addClient(client);
    this.oauth = new FakeOAuth({
      findClientById: (clientId) => [...this.clients.values()].find((client) => client.clientId === clientId),
      hasUser: (userId) => this.users.has(userId),
      issueAccessToken: (userId) => {
        const token = `oauth-${userId}-${randomBytes(12).toString('hex')}`;
        this.accessTokens.set(token, userId);
        return token;
      },
      revokeToken: (token) => this.revokeToken(token),
    });

    server.on('connection', (socket: Socket) => {
      this.sockets.add(socket);
      socket.on('close', () => this.sockets.delete(socket));
    });
    server.on('request', (request: IncomingMessage, response: ServerResponse) => {
      void this.handle(request, response);
    });
  }

  /** Starts a fake listening on 127.0.0.1 (port 0 picks a free port). */
  static start(options: FakeRwgpsOptions = {}): Promise<FakeRwgps> {
    const port = options.port ?? 0;
    if (!Number.isInteger(port) || port < 0 || port > 65535) {
      return Promise.reject(new FakeInputError(`invalid port ${String(port)}: expected an integer from 0 to 65535`));
    }
    validateDelay(options.latencyMs ?? 0, 'latencyMs');

    const server = createServer();
    return new Promise((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, '127.0.0.1', () => {
        server.off('error', reject);
        const address = server.address() as AddressInfo;
        resolve(new FakeRwgps(server, `http://127.0.0.1:${address.port}`, options));
      });
    });
  }

  // ---- Model ---------------------------------------------------------------

  /** Registers an API client whose apiKey is accepted for Basic authentication. */
  addClient(client: FakeClient): void {
    requireString(client?.apiKey, 'client apiKey');
    requireString(client.clientId, 'client clientId');
    requireString(client.clientSecret, 'client clientSecret');
    this.clients.set(client.apiKey, { ...client });
  }

  /**
   * Creates or renames a user and registers the given tokens for it.
   * Tokens registered earlier stay valid until revoked.
   */
  addUser(user: FakeUser): void {
    const id = requireId(user?.id, 'user id');
    const now = Date.now();
    const existing = this.users.get(id);
    const name = user.name === undefined ? (existing?.name ?? `Rider ${id}`) : requireString(user.name, 'user name');
    this.users.set(id, { id, name, createdAt: existing?.createdAt ?? now, updatedAt: now });

    if (user.accessToken !== undefined) this.accessTokens.set(requireString(user.accessToken, 'accessToken'), id);
    if (user.authToken !== undefined) this.authTokens.set(requireString(user.authToken, 'authToken'), id);
  }

  /** Makes later requests with this access token or auth_token fail with 401. */
  revokeToken(token: string): void {
    this.revokedTokens.add(requireString(token, 'token'));
  }

  putRoute(route: FakeItem): void {
    this.putItem('route', route);
  }

  putTrip(trip: FakeItem): void {
    this.putItem('trip', trip);
  }

  /** Deletes a route or trip, so later GETs return 404, and records a `deleted` change. */
  deleteItem(type: ItemType, id: number): void {
    const item = this.requireItem(type, id);
    if (item.deleted) throw new FakeInputError(`${type} ${id} is already deleted`);
    const at = this.nextChangeTime();
    item.deleted = true;
    item.updatedAt = at;
    item.version += 1;
    this.bodyCache.delete(itemKey(type, id));
    this.recordChange({ userId: item.userId, itemType: type, itemId: id, itemUserId: item.userId, action: 'deleted', at, collection: null });
  }

  /** Records that `userId` added the item to their pinned collection (an `added` change). */
  pin(userId: number, type: ItemType, id: number): void {
    this.recordPinChange(userId, type, id, 'added');
  }

  /** Records that `userId` removed the item from their pinned collection (a `removed` change). */
  unpin(userId: number, type: ItemType, id: number): void {
    this.recordPinChange(userId, type, id, 'removed');
  }

  injectFault(rule: FaultRule): void {
    this.faultRules.push(validateFaultRule(rule));
  }

  clearFaults(): void {
    this.faultRules = [];
  }

  /** Returns the webhook notifications for every change recorded since the previous call. */
  takeNotifications(): Notification[] {
    const newChanges = this.changes.slice(this.notifiedCount);
    this.notifiedCount = this.changes.length;
    return newChanges.map((change) => ({
      user_id: change.userId,
      item_type: change.itemType,
      item_id: change.itemId,
      item_user_id: change.itemUserId,
      // The webhook example in the RWGPS documentation uses this form, without /api/v1.
      item_url: `${this.url}/${change.itemType}s/${change.itemId}.json`,
      action: change.action,
      collection: change.collection === null ? null : { ...change.collection },
    }));
  }

  /** Returns the changes made by `userId` at or after `since`, oldest first, as the sync endpoint lists them. */
  changesSince(userId: number, since: Date): ChangeEntry[] {
    const sinceMs = since.getTime();
    return this.changes
      .filter((change) => change.userId === userId && change.at >= sinceMs)
      .map((change) => ({
        item_type: change.itemType,
        item_id: change.itemId,
        item_user_id: change.itemUserId,
        item_url: `${this.url}/api/v1/${change.itemType}s/${change.itemId}.json`,
        action: change.action,
        datetime: new Date(change.at).toISOString(),
        collection: change.collection === null ? null : { ...change.collection },
      }));
  }

  /** Closes the server, destroying open and stalled connections and cancelling pending delays. */
  close(): Promise<void> {
    if (this.closing !== undefined) return this.closing;

    for (const timer of this.timers) clearTimeout(timer);
    this.timers.clear();
    this.closing = new Promise((resolve, reject) => {
      this.server.close((error) => (error ? reject(error) : resolve()));
    });
    this.server.closeAllConnections();
    for (const socket of this.sockets) socket.destroy();
    return this.closing;
  }

  private putItem(type: ItemType, input: FakeItem): void {
    const id = requireId(input?.id, `${type} id`);
    const userId = requireId(input.userId, `${type} userId`);
    const existing = this.items.get(itemKey(type, id));
    const at = this.nextChangeTime();
    const created = existing === undefined || existing.deleted;

    const item: StoredItem = {
      type,
      id,
      userId,
      name: input.name === undefined ? (existing?.name ?? `${type === 'route' ? 'Route' : 'Trip'} ${id}`) : requireString(input.name, `${type} name`),
      visibility: input.visibility === undefined ? (existing?.visibility ?? 'public') : requireVisibility(input.visibility),
      trackPoints: input.trackPoints === undefined ? (existing?.trackPoints ?? DEFAULT_TRACK_POINTS) : requireTrackPoints(input.trackPoints),
      createdAt: created ? at : existing.createdAt,
      updatedAt: at,
      version: (existing?.version ?? 0) + 1,
      deleted: false,
    };
    this.items.set(itemKey(type, id), item);
    this.recordChange({ userId, itemType: type, itemId: id, itemUserId: userId, action: created ? 'created' : 'updated', at, collection: null });
  }

  private recordPinChange(userId: number, type: ItemType, id: number, action: 'added' | 'removed'): void {
    const pinningUserId = requireId(userId, 'userId');
    const item = this.requireItem(type, id);
    this.recordChange({
      userId: pinningUserId,
      itemType: type,
      itemId: item.id,
      itemUserId: item.userId,
      action,
      at: this.nextChangeTime(),
      // Each user has one pinned collection, and this fake uses the user's id as its id.
      collection: { id: pinningUserId, type: 'pinned', url: null },
    });
  }

  private requireItem(type: ItemType, id: number): StoredItem {
    if (type !== 'route' && type !== 'trip') throw new FakeInputError(`invalid item type ${JSON.stringify(type)}: expected "route" or "trip"`);
    const item = this.items.get(itemKey(type, requireId(id, `${type} id`)));
    if (item === undefined) throw new FakeInputError(`${type} ${id} not found: create it with put${type === 'route' ? 'Route' : 'Trip'} first`);
    return item;
  }

  private recordChange(change: RecordedChange): void {
    this.changes.push(change);
  }

  // Change times strictly increase in milliseconds, even for changes made within
  // one millisecond, so each change has its own datetime and updated_at moves forward.
  private nextChangeTime(): number {
    this.lastChangeAt = Math.max(Date.now(), this.lastChangeAt + 1);
    return this.lastChangeAt;
  }

  // ---- HTTP ----------------------------------------------------------------

  private async handle(request: IncomingMessage, response: ServerResponse): Promise<void> {
    const method = request.method ?? 'GET';
    try {
      const url = new URL(request.url ?? '/', this.url);
      if (url.pathname.startsWith('/__fake/')) {
        await this.handleControl(request, response, url);
        return;
      }

      // Only the OAuth endpoints take a request body.
      let body = '';
      if (method === 'POST' && url.pathname.startsWith('/oauth/')) body = await readText(request);
      else request.resume();
      this.requests.push(recordRequest(method, url, request));
      const fault = this.takeFault(method, url.pathname);
      await this.delay(this.latencyMs);
      if (fault !== undefined) {
        await this.applyFault(fault, request, response, url, body);
        return;
      }
      sendResponse(response, this.respond(request, url, body));
    } catch (error) {
      console.error(JSON.stringify({ msg: 'fake rwgps request failed', method, url: request.url, error: String(error) }));
      if (!response.headersSent && !response.destroyed) {
        sendResponse(response, jsonResponse(500, { error: `fake rwgps failed: ${errorMessage(error)}` }));
      }
    }
  }

  private takeFault(method: string, path: string): Fault | undefined {
    const rule = this.faultRules.find((candidate) => faultRuleMatches(candidate, method, path));
    if (rule === undefined) return undefined;
    rule.remaining -= 1;
    if (rule.remaining <= 0) this.faultRules = this.faultRules.filter((candidate) => candidate !== rule);
    return rule.fault;
  }

  private async applyFault(fault: Fault, request: IncomingMessage, response: ServerResponse, url: URL, body: string): Promise<void> {
    switch (fault.kind) {
      case 'status': {
        const headers: Record<string, string> = fault.retryAfter === undefined ? {} : { 'retry-after': fault.retryAfter };
        const body = fault.body ?? JSON.stringify({ error: `injected fault: HTTP ${fault.status}` });
        sendResponse(response, { status: fault.status, body, headers });
        return;
      }
      case 'slow':
        await this.delay(fault.delayMs);
        sendResponse(response, this.respond(request, url, body));
        return;
      case 'stall':
        this.stall(response, this.respond(request, url, body));
        return;
      case 'reset':
        request.socket.destroy();
        return;
      case 'redirect':
        sendResponse(response, { status: fault.status ?? 302, body: '', headers: { location: fault.location } });
        return;
    }
  }

  // Sends status 200, the full content-length and half of the body, then
  // nothing more, so a client without a read timeout waits until close().
  private stall(response: ServerResponse, normal: ApiResponse): void {
    if (response.destroyed) return;
    const body = Buffer.from(normal.body);
    response.writeHead(200, {
      ...normal.headers,
      'content-type': 'application/json; charset=utf-8',
      'content-length': String(body.length),
    });
    response.write(body.subarray(0, Math.max(1, Math.floor(body.length / 2))));
  }

  private respond(request: IncomingMessage, url: URL, body: string): ApiResponse {
    const path = url.pathname;
    if (path.startsWith('/oauth/')) return this.oauth.respond(request.method ?? 'GET', url, body);
    const itemMatch = ITEM_PATH.exec(path);
    const known = itemMatch !== null || path === '/api/v1/users/current.json' || path === '/api/v1/sync.json';
    if (!known) return jsonResponse(404, { error: `not found: no endpoint at ${path}` });
    if (request.method !== 'GET') {
      return { ...jsonResponse(405, { error: `method ${request.method ?? ''} not allowed on ${path}: use GET` }), headers: { allow: 'GET' } };
    }

    const viewer = this.authenticate(request);
    if (typeof viewer === 'string') return jsonResponse(401, { error: viewer });

    if (itemMatch !== null) {
      const type: ItemType = itemMatch[1] === 'routes' ? 'route' : 'trip';
      return this.respondItem(type, itemMatch[2] ?? '', viewer);
    }
    if (path === '/api/v1/users/current.json') {
      return jsonResponse(200, {
        user: { id: viewer.id, name: viewer.name, created_at: formatTimestamp(viewer.createdAt), updated_at: formatTimestamp(viewer.updatedAt) },
      });
    }
    return this.respondSync(url, viewer);
  }

  // Returns the authenticated user, or the 401 error message.
  private authenticate(request: IncomingMessage): StoredUser | string {
    const authorization = headerValue(request, 'authorization');
    if (authorization !== undefined) {
      const space = authorization.indexOf(' ');
      const scheme = (space < 0 ? authorization : authorization.slice(0, space)).toLowerCase();
      const credentials = space < 0 ? '' : authorization.slice(space + 1).trim();
      if (scheme === 'bearer') return this.authenticateToken(this.accessTokens, credentials, 'access token');
      if (scheme === 'basic') {
        const decoded = Buffer.from(credentials, 'base64').toString('utf8');
        const colon = decoded.indexOf(':');
        if (colon < 0) return 'invalid Basic credentials: expected base64(api_key:auth_token)';
        return this.authenticateBasic(decoded.slice(0, colon), decoded.slice(colon + 1));
      }
      return `unsupported authorization scheme ${JSON.stringify(scheme)}: use Bearer or Basic`;
    }

    const apiKey = headerValue(request, 'x-rwgps-api-key');
    const authToken = headerValue(request, 'x-rwgps-auth-token');
    if (apiKey !== undefined || authToken !== undefined) return this.authenticateBasic(apiKey ?? '', authToken ?? '');
    return 'missing credentials: send Authorization: Bearer, Authorization: Basic, or x-rwgps-api-key with x-rwgps-auth-token';
  }

  private authenticateBasic(apiKey: string, authToken: string): StoredUser | string {
    if (!this.clients.has(apiKey)) return 'invalid API key';
    return this.authenticateToken(this.authTokens, authToken, 'auth token');
  }

  private authenticateToken(tokens: Map<string, number>, token: string, label: string): StoredUser | string {
    if (token === '') return `missing ${label}`;
    if (this.revokedTokens.has(token)) return `the ${label} was revoked`;
    const userId = tokens.get(token);
    const user = userId === undefined ? undefined : this.users.get(userId);
    return user ?? `invalid ${label}`;
  }

  private respondItem(type: ItemType, idText: string, viewer: StoredUser): ApiResponse {
    const item = /^\d+$/.test(idText) ? this.items.get(itemKey(type, Number(idText))) : undefined;
    if (item === undefined || item.deleted) return jsonResponse(404, { error: `${type} ${idText} not found` });
    // friends_only counts as visible: the fake has no friendships.
    if (item.userId !== viewer.id && item.visibility === 'private') {
      return jsonResponse(403, { error: `${type} ${item.id} is private and belongs to another user` });
    }

    const key = itemKey(type, item.id);
    const cached = this.bodyCache.get(key);
    if (cached !== undefined && cached.version === item.version) return { status: 200, body: cached.body };
    const body = renderItem(item, this.url);
    this.bodyCache.set(key, { version: item.version, body });
    return { status: 200, body };
  }

  private respondSync(url: URL, viewer: StoredUser): ApiResponse {
    const sinceText = url.searchParams.get('since');
    if (sinceText === null) return jsonResponse(400, { error: 'missing query parameter since: give an ISO 8601 datetime such as 1970-01-01' });
    const since = new Date(sinceText);
    if (Number.isNaN(since.getTime())) return jsonResponse(400, { error: `invalid since ${JSON.stringify(sinceText)}: expected an ISO 8601 datetime` });

    const assetsText = url.searchParams.get('assets') ?? 'routes,trips';
    const types = new Set<ItemType>();
    for (const asset of assetsText.split(',').map((part) => part.trim())) {
      if (asset === 'routes') types.add('route');
      else if (asset === 'trips') types.add('trip');
      else return jsonResponse(400, { error: `invalid assets ${JSON.stringify(assetsText)}: expected routes, trips or routes,trips` });
    }

    const all = this.changesSince(viewer.id, since).filter((entry) => types.has(entry.item_type));
    // Not earlier than the last change, so a cursor taken now never skips a later change.
    const rwgpsDatetime = new Date(Math.max(Date.now(), this.lastChangeAt)).toISOString();
    const cut = this.syncPageSize !== null && all.length > this.syncPageSize;
    const items = cut ? all.slice(0, this.syncPageSize!) : all;
    const next = new URL('/api/v1/sync.json', this.url);
    // Change times strictly increase, so the first entry left out starts the next page exactly.
    next.searchParams.set('since', cut ? all[items.length]!.datetime : rwgpsDatetime);
    next.searchParams.set('assets', assetsText);
    return jsonResponse(200, { items, meta: { rwgps_datetime: rwgpsDatetime, next_sync_url: next.href } });
  }

  private delay(ms: number): Promise<void> {
    if (ms <= 0) return Promise.resolve();
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.timers.delete(timer);
        resolve();
      }, ms);
      this.timers.add(timer);
    });
  }

  // ---- Control API for other processes --------------------------------------

  // Routes /__fake/... requests to the model methods. Bodies are JSON with the
  // same fields as the methods' arguments. These requests are not recorded.
  private async handleControl(request: IncomingMessage, response: ServerResponse, url: URL): Promise<void> {
    const route = `${request.method ?? ''} ${url.pathname}`;
    const ok = () => sendResponse(response, jsonResponse(200, { ok: true }));
    try {
      switch (route) {
        case 'POST /__fake/clients':
          this.addClient((await readJson(request)) as FakeClient);
          return ok();
        case 'POST /__fake/users':
          this.addUser((await readJson(request)) as FakeUser);
          return ok();
        case 'POST /__fake/revoke':
          this.revokeToken(requireObject(await readJson(request)).token as string);
          return ok();
        case 'POST /__fake/routes':
          this.putRoute((await readJson(request)) as FakeItem);
          return ok();
        case 'POST /__fake/trips':
          this.putTrip((await readJson(request)) as FakeItem);
          return ok();
        case 'POST /__fake/delete': {
          const body = requireObject(await readJson(request));
          this.deleteItem(body.type as ItemType, body.id as number);
          return ok();
        }
        case 'POST /__fake/pin':
        case 'POST /__fake/unpin': {
          const body = requireObject(await readJson(request));
          const change = url.pathname === '/__fake/pin' ? this.pin : this.unpin;
          change.call(this, body.userId as number, body.type as ItemType, body.id as number);
          return ok();
        }
        case 'POST /__fake/faults':
          this.injectFault(faultRuleFromJson(await readJson(request)));
          return ok();
        case 'DELETE /__fake/faults':
          this.clearFaults();
          return ok();
        case 'POST /__fake/oauth': {
          const body = requireObject(await readJson(request));
          try {
            this.oauth.setSwitches(body);
          } catch (error) {
            throw new FakeInputError(errorMessage(error));
          }
          return ok();
        }
        case 'POST /__fake/sync-page-size': {
          const size = requireObject(await readJson(request)).size;
          if (size !== null && (typeof size !== 'number' || !Number.isInteger(size) || size < 1)) {
            throw new FakeInputError(`invalid size ${JSON.stringify(size)}: expected a positive integer or null`);
          }
          this.syncPageSize = size;
          return ok();
        }
        case 'POST /__fake/latency': {
          const body = requireObject(await readJson(request));
          this.latencyMs = validateDelay(body.latencyMs, 'latencyMs');
          return ok();
        }
        case 'GET /__fake/requests':
          return sendResponse(response, jsonResponse(200, { requests: this.requests }));
        case 'DELETE /__fake/requests':
          this.requests.length = 0;
          return ok();
        case 'POST /__fake/notifications/take':
          return sendResponse(response, jsonResponse(200, { notifications: this.takeNotifications() }));
        case 'GET /__fake/changes': {
          const userId = Number(url.searchParams.get('userId'));
          const since = new Date(url.searchParams.get('since') ?? '1970-01-01T00:00:00Z');
          if (!Number.isInteger(userId) || Number.isNaN(since.getTime())) {
            throw new FakeInputError('invalid query: expected userId=<integer> and an optional ISO 8601 since');
          }
          return sendResponse(response, jsonResponse(200, { items: this.changesSince(userId, since) }));
        }
        default:
          return sendResponse(response, jsonResponse(404, { error: `not found: no control endpoint ${route}` }));
      }
    } catch (error) {
      if (!(error instanceof FakeInputError)) throw error;
      console.error(JSON.stringify({ msg: 'fake rwgps rejected control request', route, error: error.message }));
      sendResponse(response, jsonResponse(400, { error: error.message }));
    }
  }
}

// ---- Webhook sender ----------------------------------------------------------

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

// ---- Representations ---------------------------------------------------------

interface TrackSummary {
  json: string;
  distance: number;
  elevationGain: number;
  elevationLoss: number;
  maxSpeed: number;
  first: { lat: number; lng: number } | null;
  last: { lat: number; lng: number } | null;
  middle: { lat: number; lng: number; d: number } | null;
  bounds: { swLat: number; swLng: number; neLat: number; neLng: number } | null;
}

// Builds the `{"route": ...}` or `{"trip": ...}` body. The track points are
// written straight into a string because a 20 000-point trip is over 2 MB.
function renderItem(item: StoredItem, baseUrl: string): string {
  const departedAt = item.createdAt - item.trackPoints * 1000;
  const track = renderTrack(item, Math.floor(departedAt / 1000));
  const duration = Math.max(item.trackPoints - 1, 0);

  const common = {
    id: item.id,
    url: `${baseUrl}/${item.type}s/${item.id}`,
    name: item.name,
    description: `Generated by the fake Ride with GPS for ${item.type} ${item.id}.`,
    visibility: item.visibility,
    distance: round(track.distance, 1),
    elevation_gain: round(track.elevationGain, 1),
    elevation_loss: round(track.elevationLoss, 1),
    first_lat: track.first?.lat ?? null,
    first_lng: track.first?.lng ?? null,
    last_lat: track.last?.lat ?? null,
    last_lng: track.last?.lng ?? null,
    sw_lat: track.bounds?.swLat ?? null,
    sw_lng: track.bounds?.swLng ?? null,
    ne_lat: track.bounds?.neLat ?? null,
    ne_lng: track.bounds?.neLng ?? null,
    track_type: 'point_to_point',
    terrain: 'rolling',
    difficulty: 'moderate',
    created_at: formatTimestamp(item.createdAt),
    updated_at: formatTimestamp(item.updatedAt),
    user_id: item.userId,
    photos: [],
  };

  const extra =
    item.type === 'route'
      ? {
          course_points:
            track.first === null || track.middle === null
              ? []
              : [
                  { x: track.first.lng, y: track.first.lat, d: 0, n: 'Start', t: 'Generic' },
                  { x: track.middle.lng, y: track.middle.lat, d: round(track.middle.d, 1), n: 'Turn left onto the river path', t: 'Left' },
                ],
          points_of_interest:
            track.middle === null
              ? []
              : [{ id: item.id * 10 + 1, name: 'Water fountain', lat: track.middle.lat, lng: track.middle.lng, poi_type_name: 'water' }],
        }
      : {
          departed_at: formatTimestamp(departedAt),
          time_zone: 'America/Los_Angeles',
          activity_type: 'cycling:road',
          duration,
          moving_time: Math.floor(duration * 0.95),
          avg_speed: duration === 0 ? 0 : round((track.distance / duration) * 3.6, 2),
          max_speed: round(track.maxSpeed, 2),
          avg_hr: 135,
          max_hr: 155,
          avg_cad: 85,
          avg_watts: 180,
          calories: Math.round(duration * 0.2),
          device: 'Fake GPS recorder',
          gear: { id: item.userId * 100 + 1, name: 'Road bike' },
        };

  const head = JSON.stringify({ ...common, ...extra });
  return `{"${item.type}":${head.slice(0, -1)},"track_points":${track.json}}}`;
}

// Generates deterministic points from the item id: a gently winding line
// north-east from near Portland, with one point per second for trips.
function renderTrack(item: StoredItem, departedEpochSeconds: number): TrackSummary {
  const count = item.trackPoints;
  const originLat = 45.4 + (item.id % 97) * 0.001;
  const originLng = -122.7 + (item.id % 89) * 0.001;
  const parts: string[] = new Array<string>(count);
  const summary: TrackSummary = {
    json: '',
    distance: 0,
    elevationGain: 0,
    elevationLoss: 0,
    maxSpeed: 0,
    first: null,
    last: null,
    middle: null,
    bounds: null,
  };

  let previousLat = originLat;
  let previousLng = originLng;
  let previousElevation = 0;
  for (let i = 0; i < count; i++) {
    const lat = round(originLat + i * 0.00004 + 0.0002 * Math.sin(i / 40), 7);
    const lng = round(originLng + i * 0.00006 + 0.0002 * Math.cos(i / 55), 7);
    const elevation = round(60 + 40 * Math.sin(i / 300 + item.id), 2);

    // Equirectangular distance is accurate to well under 1% over steps of a few metres.
    const step = i === 0 ? 0 : Math.hypot((lng - previousLng) * Math.cos((lat * Math.PI) / 180) * 111_320, (lat - previousLat) * 110_540);
    summary.distance += step;
    if (i > 0) {
      const climb = elevation - previousElevation;
      if (climb > 0) summary.elevationGain += climb;
      else summary.elevationLoss -= climb;
    }

    const base = `"x":${lng},"y":${lat},"e":${elevation},"d":${round(summary.distance, 2)}`;
    if (item.type === 'route') {
      parts[i] = `{${base}}`;
    } else {
      const speed = round(step * 3.6, 2);
      summary.maxSpeed = Math.max(summary.maxSpeed, speed);
      const heartRate = Math.round(135 + 20 * Math.sin(i / 500));
      const cadence = Math.round(85 + 5 * Math.sin(i / 30));
      const power = Math.round(180 + 60 * Math.sin(i / 90));
      parts[i] = `{${base},"t":${departedEpochSeconds + i},"s":${speed},"h":${heartRate},"c":${cadence},"p":${power}}`;
    }

    if (summary.bounds === null) {
      summary.bounds = { swLat: lat, swLng: lng, neLat: lat, neLng: lng };
    } else {
      summary.bounds.swLat = Math.min(summary.bounds.swLat, lat);
      summary.bounds.swLng = Math.min(summary.bounds.swLng, lng);
      summary.bounds.neLat = Math.max(summary.bounds.neLat, lat);
      summary.bounds.neLng = Math.max(summary.bounds.neLng, lng);
    }
    if (i === 0) summary.first = { lat, lng };
    if (i === Math.floor(count / 2)) summary.middle = { lat, lng, d: summary.distance };
    summary.last = { lat, lng };
    previousLat = lat;
    previousLng = lng;
    previousElevation = elevation;
  }

  summary.json = `[${parts.join(',')}]`;
  return summary;
}

// RWGPS sends created_at and updated_at as ISO 8601 with a UTC offset. The fake
// uses a fixed -07:00 so that clients must parse offsets instead of expecting "Z".
function formatTimestamp(ms: number): string {
  const offsetMinutes = -7 * 60;
  return new Date(ms + offsetMinutes * 60_000).toISOString().replace('Z', '-07:00');
}

// ---- Helpers -------------------------------------------------------------------

function itemKey(type: ItemType, id: number): string {
  return `${type}:${id}`;
}

function round(value: number, digits: number): number {
  const factor = 10 ** digits;
  return Math.round(value * factor) / factor;
}

function jsonResponse(status: number, value: unknown): ApiResponse {
  return { status, body: JSON.stringify(value) };
}

function sendResponse(response: ServerResponse, answer: ApiResponse): void {
  if (response.destroyed || response.headersSent) return;
  const body = Buffer.from(answer.body);
  response.writeHead(answer.status, {
    'content-type': 'application/json; charset=utf-8',
    'content-length': String(body.length),
    ...answer.headers,
  });
  response.end(body);
}

function recordRequest(method: string, url: URL, request: IncomingMessage): RecordedRequest {
  const headers: Record<string, string> = {};
  for (const [name, value] of Object.entries(request.headers)) {
    if (value !== undefined) headers[name] = Array.isArray(value) ? value.join(', ') : value;
  }
  return { method, path: url.pathname, query: Object.fromEntries(url.searchParams), headers, at: Date.now() };
}

function headerValue(request: IncomingMessage, name: string): string | undefined {
  const value = request.headers[name];
  return Array.isArray(value) ? value[0] : value;
}

function faultRuleMatches(rule: ActiveFaultRule, method: string, path: string): boolean {
  if (rule.method !== undefined && rule.method !== method.toUpperCase()) return false;
  if (typeof rule.path === 'string') return rule.path === path;
  rule.path.lastIndex = 0; // a global or sticky pattern would otherwise resume from its last match
  return rule.path.test(path);
}

async function readJson(request: IncomingMessage): Promise<unknown> {
  const text = await readText(request);
  try {
    return JSON.parse(text) as unknown;
  } catch (error) {
    throw new FakeInputError(`invalid JSON body: ${errorMessage(error)}`);
  }
}

async function readText(request: IncomingMessage): Promise<string> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of request) {
    const buffer = chunk as Buffer;
    size += buffer.length;
    if (size > MAX_CONTROL_BODY_BYTES) throw new FakeInputError(`request body too large: the limit is ${MAX_CONTROL_BODY_BYTES} bytes`);
    chunks.push(buffer);
  }
  return Buffer.concat(chunks).toString('utf8');
}

// Converts a fault rule sent as JSON. There `pathPattern`, a regular expression
// source, may replace the exact `path`, and `times` may be the string "Infinity".
function faultRuleFromJson(value: unknown): FaultRule {
  const body = requireObject(value);
  const path = body.pathPattern === undefined ? body.path : new RegExp(requireString(body.pathPattern, 'pathPattern'));
  const times = body.times === 'Infinity' ? Infinity : body.times;
  return { method: body.method as string | undefined, path: path as string | RegExp, times: times as number | undefined, fault: body.fault as Fault };
}

function validateFaultRule(rule: FaultRule): ActiveFaultRule {
  const body = requireObject(rule);
  if (typeof body.path !== 'string' && !(body.path instanceof RegExp)) {
    throw new FakeInputError('invalid fault rule path: expected a string or a RegExp');
  }
  const method = body.method === undefined ? undefined : requireString(body.method, 'fault rule method').toUpperCase();
  const times = body.times ?? 1;
  if (typeof times !== 'number' || !(times >= 1) || (!Number.isInteger(times) && times !== Infinity)) {
    throw new FakeInputError(`invalid fault rule times ${JSON.stringify(times)}: expected a positive integer or Infinity`);
  }
  return { method, path: body.path, remaining: times, fault: validateFault(body.fault) };
}

function validateFault(value: unknown): Fault {
  const fault = requireObject(value);
  switch (fault.kind) {
    case 'status': {
      const status = fault.status;
      if (typeof status !== 'number' || !Number.isInteger(status) || status < 200 || status > 599) {
        throw new FakeInputError(`invalid fault status ${JSON.stringify(status)}: expected an integer from 200 to 599`);
      }
      return {
        kind: 'status',
        status,
        ...(fault.retryAfter === undefined ? {} : { retryAfter: requireString(fault.retryAfter, 'fault retryAfter') }),
        ...(fault.body === undefined ? {} : { body: requireString(fault.body, 'fault body') }),
      };
    }
    case 'slow':
      return { kind: 'slow', delayMs: validateDelay(fault.delayMs, 'fault delayMs') };
    case 'stall':
      return { kind: 'stall' };
    case 'reset':
      return { kind: 'reset' };
    case 'redirect': {
      const status = fault.status ?? 302;
      if (typeof status !== 'number' || !Number.isInteger(status) || status < 300 || status > 399) {
        throw new FakeInputError(`invalid redirect status ${JSON.stringify(status)}: expected an integer from 300 to 399`);
      }
      return { kind: 'redirect', location: requireString(fault.location, 'fault location'), status };
    }
    default:
      throw new FakeInputError(`invalid fault kind ${JSON.stringify(fault.kind)}: expected status, slow, stall, reset or redirect`);
  }
}

function requireObject(value: unknown): Record<string, unknown> {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw new FakeInputError('invalid input: expected a JSON object');
  return value as Record<string, unknown>;
}

function requireString(value: unknown, label: string): string {
  if (typeof value !== 'string' || value === '') throw new FakeInputError(`invalid ${label}: expected a non-empty string`);
  return value;
}

function requireId(value: unknown, label: string): number {
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value <= 0) {
    throw new FakeInputError(`invalid ${label} ${JSON.stringify(value)}: expected a positive integer`);
  }
  return value;
}

function requireVisibility(value: unknown): Visibility {
  if (!VISIBILITIES.includes(value as Visibility)) {
    throw new FakeInputError(`invalid visibility ${JSON.stringify(value)}: expected public, friends_only or private`);
  }
  return value as Visibility;
}

function requireTrackPoints(value: unknown): number {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < 0 || value > MAX_TRACK_POINTS) {
    throw new FakeInputError(`invalid trackPoints ${JSON.stringify(value)}: expected an integer from 0 to ${MAX_TRACK_POINTS}`);
  }
  return value;
}

function validateDelay(value: unknown, label: string): number {
  if (typeof value !== 'number' || !Number.isFinite(value) || value < 0) {
    throw new FakeInputError(`invalid ${label} ${JSON.stringify(value)}: expected a non-negative number of milliseconds`);
  }
  return value;
}

function errorMessage(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

// ---- Command line ----------------------------------------------------------------

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

// NOTE: in a CommonJS bundle import.meta.url is empty, so the CLI does not
// start on its own there; call runFakeRwgpsCli from the bundle's entry point.
function isMainModule(): boolean {
  const entry = process.argv[1];
  return entry !== undefined && import.meta.url === pathToFileURL(entry).href;
}

if (isMainModule()) runFakeRwgpsCli(process.argv.slice(2));
