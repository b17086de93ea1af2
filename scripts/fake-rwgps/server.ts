// The fake's HTTP server: routes, trips, the current user and sync.json, with
// fault injection and latency in front. OAuth requests go to FakeOAuth and
// /__fake/ requests to the control API (control.ts).

import { randomBytes } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { handleControl } from './control.ts';
import { faultRuleMatches, validateFaultRule, type ActiveFaultRule, type Fault, type FaultRule } from './faults.ts';
import { jsonResponse, readText, recordRequest, sendResponse, type ApiResponse, type RecordedRequest } from './http.ts';
import { FakeModel, itemKey } from './model.ts';
import { FakeOAuth } from './oauth.ts';
import { formatTimestamp, renderItem } from './representations.ts';
import type { FakeClient, ItemType, StoredUser } from './types.ts';
import { errorMessage, FakeInputError, validateDelay } from './validate.ts';

export interface FakeRwgpsOptions {
  port?: number;
  latencyMs?: number;
  clients?: FakeClient[];
}

const ITEM_PATH = /^(?:\/api\/v1)?\/(routes|trips)\/([^/]+)\.json$/;

export class FakeRwgps extends FakeModel {
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
  private faultRules: ActiveFaultRule[] = [];
  private closing: Promise<void> | undefined;

  private constructor(server: Server, url: string, options: FakeRwgpsOptions) {
    super(url);
    this.server = server;
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

  injectFault(rule: FaultRule): void {
    this.faultRules.push(validateFaultRule(rule));
  }

  clearFaults(): void {
    this.faultRules = [];
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

  // ---- HTTP ----------------------------------------------------------------

  private async handle(request: IncomingMessage, response: ServerResponse): Promise<void> {
    const method = request.method ?? 'GET';
    try {
      const url = new URL(request.url ?? '/', this.url);
      if (url.pathname.startsWith('/__fake/')) {
        await handleControl(this, request, response, url);
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
    const body = typeof normal.body === 'string' ? Buffer.from(normal.body) : normal.body;
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


  /**
   * Renders the body of every stored item into the cache now. The benchmarks
   * call it so that rendering, which real RWGPS does on its own servers,
   * does not take CPU from the measured process on the same machine.
   */
  renderItemBodies(): void {
    for (const [key, item] of this.items) {
      if (!item.deleted) this.bodyCache.set(key, { version: item.version, body: Buffer.from(renderItem(item, this.url)) });
    }
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
    // Cached as bytes, so a repeated request for a 2 MB trip costs neither rendering nor encoding.
    const body = Buffer.from(renderItem(item, this.url));
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

}
