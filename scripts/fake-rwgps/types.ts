// The fake's data model as types: the public shapes tests pass in and read
// back, and the stored records behind them.

export type Visibility = 'public' | 'friends_only' | 'private';
export type ItemType = 'route' | 'trip';
export type ChangeAction = 'created' | 'updated' | 'deleted' | 'added' | 'removed';

export interface FakeClient {
  apiKey: string;
  clientId: string;
  clientSecret: string;
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

export interface StoredUser {
  id: number;
  name: string;
  createdAt: number;
  updatedAt: number;
}

export interface StoredItem {
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

export interface RecordedChange {
  userId: number;
  itemType: ItemType;
  itemId: number;
  itemUserId: number;
  action: ChangeAction;
  at: number;
  collection: PinnedCollection | null;
}
