import type { ItemType } from '../store/schema.ts';

// Reading a delivery body into notifications. Anything we do not understand
// is kept and reported, never allowed to fail the rest of the batch.

export type Action = 'created' | 'updated' | 'deleted' | 'added' | 'removed';

export interface Notification {
  userId: number;
  itemType: ItemType;
  itemId: number;
  itemUserId: number | null;
  action: Action;
  collectionId: number | null;
}

export interface IgnoredNotification {
  position: number;
  reason: string;
  raw: unknown;
}

export type ParsedBody =
  | { ok: true; notifications: Notification[]; ignored: IgnoredNotification[]; total: number }
  | { ok: false; reason: string };

const ACTIONS = new Set<string>(['created', 'updated', 'deleted', 'added', 'removed']);
const ITEM_TYPES = new Set<string>(['route', 'trip']);

function isId(value: unknown): value is number {
  return typeof value === 'number' && Number.isSafeInteger(value) && value > 0;
}

/** Parses the JSON text of a delivery. `text` is the UTF-8 decoding of the raw bytes. */
export function parseDeliveryBody(text: string): ParsedBody {
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    return { ok: false, reason: 'body is not valid JSON' };
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) {
    return { ok: false, reason: 'body is not a JSON object' };
  }
  const list = (parsed as { notifications?: unknown }).notifications;
  if (!Array.isArray(list)) return { ok: false, reason: 'body has no "notifications" array' };

  const notifications: Notification[] = [];
  const ignored: IgnoredNotification[] = [];
  list.forEach((raw: unknown, position: number) => {
    const result = readNotification(raw);
    if (typeof result === 'string') ignored.push({ position, reason: result, raw });
    else notifications.push(result);
  });
  return { ok: true, notifications, ignored, total: list.length };
}

/** Returns the notification, or the reason it is ignored. */
function readNotification(raw: unknown): Notification | string {
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) return 'notification is not an object';
  const n = raw as Record<string, unknown>;
  if (!isId(n.user_id)) return 'user_id is not a positive integer';
  if (typeof n.item_type !== 'string' || !ITEM_TYPES.has(n.item_type)) {
    return `unknown item_type ${JSON.stringify(n.item_type)}`;
  }
  if (!isId(n.item_id)) return 'item_id is not a positive integer';
  if (typeof n.action !== 'string' || !ACTIONS.has(n.action)) return `unknown action ${JSON.stringify(n.action)}`;

  const action = n.action as Action;
  let collectionId: number | null = null;
  if (action === 'added' || action === 'removed') {
    const collection = n.collection as { id?: unknown; type?: unknown } | null | undefined;
    if (typeof collection !== 'object' || collection === null) return `${action} without a collection`;
    if (collection.type !== 'pinned') return `unknown collection type ${JSON.stringify(collection.type)}`;
    collectionId = isId(collection.id) ? collection.id : null;
  }

  return {
    userId: n.user_id,
    itemType: n.item_type as ItemType,
    itemId: n.item_id,
    itemUserId: isId(n.item_user_id) ? n.item_user_id : null,
    action,
    collectionId,
  };
}
