import type { ItemType } from '../store/schema.ts';

// The RWGPS sync endpoint: GET /api/v1/sync.json?since=<ISO 8601>&assets=routes,trips
// lists every item the user created, updated, deleted, pinned or unpinned
// since `since`, with meta.rwgps_datetime (the server's time, to be used as
// the next `since`) and meta.next_sync_url.

/** The `since` of a backfill: the whole library. */
export const BACKFILL_SINCE = '1970-01-01T00:00:00Z';

export type SyncAction = 'created' | 'updated' | 'deleted' | 'added' | 'removed';
const ACTIONS: ReadonlySet<string> = new Set<SyncAction>(['created', 'updated', 'deleted', 'added', 'removed']);

export interface SyncEntry {
  itemType: ItemType;
  itemId: number;
  action: SyncAction;
  /** RWGPS's datetime of the change, as sent. */
  datetime: string;
}

export interface SyncPage {
  entries: SyncEntry[];
  /** Entries that were not the documented shape; they are skipped. */
  invalid: number;
  rwgpsDatetime: string;
  nextSyncUrl: string | null;
}

export function syncPath(since: string, assets: string): string {
  return `/api/v1/sync.json?${new URLSearchParams({ since, assets }).toString()}`;
}

/** Parses a sync response body. Returns an error message for a body that is not the documented shape. */
export function parseSyncPage(body: string): SyncPage | { error: string } {
  let parsed: unknown;
  try {
    parsed = JSON.parse(body);
  } catch {
    return { error: `RWGPS responded 200 with a sync body that is not JSON (${body.length} bytes)` };
  }
  const root = parsed as { items?: unknown; meta?: { rwgps_datetime?: unknown; next_sync_url?: unknown } } | null;
  if (typeof root !== 'object' || root === null || !Array.isArray(root.items)) {
    return { error: 'RWGPS responded 200 with a sync body without an "items" array' };
  }
  const rwgpsDatetime = root.meta?.rwgps_datetime;
  if (typeof rwgpsDatetime !== 'string' || Number.isNaN(Date.parse(rwgpsDatetime))) {
    return { error: 'RWGPS responded 200 with a sync body without a valid meta.rwgps_datetime' };
  }

  const entries: SyncEntry[] = [];
  let invalid = 0;
  for (const raw of root.items as unknown[]) {
    const entry = raw as Record<string, unknown> | null;
    const type = entry?.item_type;
    const id = entry?.item_id;
    const action = entry?.action;
    if (
      (type !== 'route' && type !== 'trip') ||
      typeof id !== 'number' ||
      !Number.isSafeInteger(id) ||
      id <= 0 ||
      typeof action !== 'string' ||
      !ACTIONS.has(action)
    ) {
      invalid++;
      continue;
    }
    entries.push({ itemType: type, itemId: id, action: action as SyncAction, datetime: typeof entry?.datetime === 'string' ? entry.datetime : '' });
  }
  const next = root.meta?.next_sync_url;
  return { entries, invalid, rwgpsDatetime, nextSyncUrl: typeof next === 'string' && next !== '' ? next : null };
}

export type Continuation = { kind: 'done' } | { kind: 'next'; url: URL } | { kind: 'stuck'; message: string };

/**
 * Decides whether `page` continues on another page. RWGPS documents
 * next_sync_url as the URL of the next sync, whose `since` is the page's
 * rwgps_datetime: that one is for later, not for now. A next_sync_url whose
 * `since` is earlier than rwgps_datetime means the listing was cut short, so
 * it is followed at once; if its `since` does not move past the current one,
 * following it would loop, and the sync fails without moving the cursor.
 * NOTE: RWGPS does not document paginated sync responses. This rule is an
 * assumption, exercised only by the fake's syncPageSize switch.
 */
export function continuation(page: SyncPage, currentSince: string): Continuation {
  if (page.nextSyncUrl === null) return { kind: 'done' };
  let next: URL;
  try {
    next = new URL(page.nextSyncUrl);
  } catch {
    return { kind: 'done' };
  }
  const nextSince = Date.parse(next.searchParams.get('since') ?? '');
  if (Number.isNaN(nextSince) || nextSince >= Date.parse(page.rwgpsDatetime)) return { kind: 'done' };
  if (nextSince <= Date.parse(currentSince)) {
    return { kind: 'stuck', message: `RWGPS sync.json pointed to a next page that does not advance past since=${currentSince}` };
  }
  return { kind: 'next', url: next };
}
