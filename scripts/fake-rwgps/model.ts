// The fake's model: API clients, users and their tokens, routes and trips, and
// the change log behind webhook notifications and the sync endpoint. FakeRwgps
// (server.ts) extends it with the HTTP server.

import type { IncomingMessage } from 'node:http';
import { headerValue } from './http.ts';
import type {
  ChangeEntry,
  FakeClient,
  FakeItem,
  FakeUser,
  ItemType,
  Notification,
  RecordedChange,
  StoredItem,
  StoredUser,
} from './types.ts';
import { FakeInputError, requireId, requireString, requireTrackPoints, requireVisibility } from './validate.ts';

const DEFAULT_TRACK_POINTS = 100;

export class FakeModel {
  /** Base URL without a trailing slash, such as http://127.0.0.1:41234. */
  readonly url: string;

  protected readonly clients = new Map<string, FakeClient>();
  protected readonly users = new Map<number, StoredUser>();
  protected readonly accessTokens = new Map<string, number>();
  private readonly authTokens = new Map<string, number>();
  private readonly revokedTokens = new Set<string>();
  protected readonly items = new Map<string, StoredItem>();
  protected readonly bodyCache = new Map<string, { version: number; body: Buffer }>();
  private readonly changes: RecordedChange[] = [];
  private notifiedCount = 0;
  protected lastChangeAt = 0;

  protected constructor(url: string) {
    this.url = url;
  }

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

  // Returns the authenticated user, or the 401 error message.
  protected authenticate(request: IncomingMessage): StoredUser | string {
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
}

export function itemKey(type: ItemType, id: number): string {
  return `${type}:${id}`;
}
