import { sql, type Kysely } from 'kysely';
import type { Database, ItemType } from './schema.ts';

export interface FetchedItem {
  type: ItemType;
  id: number;
  ownerId: number | null;
  name: string | null;
  updatedAt: string | null;
  /** The response body as RWGPS sent it, stored byte for byte as TEXT. */
  body: Uint8Array;
}

/**
 * Checks that the user is known and not disconnected. An item job can still
 * be running when the operator removes its user, and what it fetched must
 * not put rows back into the library the removal emptied.
 */
async function userConnected(db: Kysely<Database>, userId: number): Promise<boolean> {
  const user = await db.selectFrom('users').select('status').where('id', '=', userId).executeTakeFirst();
  return user !== undefined && user.status !== 'disconnected';
}

/** Checks whether any user has the item in their library. */
async function inAnyLibrary(db: Kysely<Database>, type: ItemType, id: number): Promise<boolean> {
  const row = await db.selectFrom('library').select('user_id').where('item_type', '=', type).where('item_id', '=', id).limit(1).executeTakeFirst();
  return row !== undefined;
}

/**
 * Stores an item RWGPS returned and, when `relation` is given, records it in
 * the user's library. RWGPS returning the item means it exists, so a
 * deletion mark is cleared.
 *
 * When the user was disconnected meanwhile, the library is left alone, and
 * the item is stored only if another user has it in their library. Returns
 * false in that case.
 */
export async function storeItem(
  db: Kysely<Database>,
  item: FetchedItem,
  userId: number,
  relation: 'owner' | 'pinned' | null,
  now = Date.now(),
): Promise<boolean> {
  return db.transaction().execute(async (trx) => {
    const connected = await userConnected(trx, userId);
    if (!connected && !(await inAnyLibrary(trx, item.type, item.id))) return false;
    // The body is bound once, as a blob, and the conflict branch reads it
    // from `excluded`. Binding a JavaScript string would first make a UTF-8
    // copy of it, and every binding is one more copy of a body that can be
    // several megabytes. CAST stores the bytes as TEXT without changing them.
    await trx
      .insertInto('items')
      .values({
        type: item.type,
        id: item.id,
        owner_id: item.ownerId,
        name: item.name,
        updated_at: item.updatedAt,
        body: sql<string>`CAST(${item.body} AS TEXT)`,
        deleted_at: null,
        synced_at: now,
      })
      .onConflict((oc) =>
        oc.columns(['type', 'id']).doUpdateSet((eb) => ({
          owner_id: eb.ref('excluded.owner_id'),
          name: eb.ref('excluded.name'),
          updated_at: eb.ref('excluded.updated_at'),
          body: eb.ref('excluded.body'),
          deleted_at: null,
          synced_at: eb.ref('excluded.synced_at'),
        })),
      )
      .execute();
    if (connected && relation !== null) {
      await trx
        .insertInto('library')
        .values({ user_id: userId, item_type: item.type, item_id: item.id, relation, added_at: now })
        .onConflict((oc) => oc.doNothing())
        .execute();
    }
    return connected;
  });
}

/**
 * Records a delete notification: the item is marked deleted and kept in the
 * owner's library so the deletion is visible. When the user was disconnected
 * meanwhile, only an item another user has is marked, and the library is
 * left alone. Returns false in that case.
 */
export async function recordDeletion(db: Kysely<Database>, userId: number, type: ItemType, id: number, now = Date.now()): Promise<boolean> {
  return db.transaction().execute(async (trx) => {
    const connected = await userConnected(trx, userId);
    if (!connected) {
      if (await inAnyLibrary(trx, type, id)) await markDeleted(trx, type, id, now);
      return false;
    }
    await markDeleted(trx, type, id, now);
    await addToLibrary(trx, userId, type, id, 'owner', now);
    return true;
  });
}

/** Marks an item deleted at RWGPS, keeping its last copy. Unknown items get a row so the deletion is visible. */
export async function markDeleted(db: Kysely<Database>, type: ItemType, id: number, now = Date.now()): Promise<void> {
  await db
    .insertInto('items')
    .values({ type, id, owner_id: null, name: null, updated_at: null, body: null, deleted_at: now, synced_at: now })
    .onConflict((oc) =>
      oc.columns(['type', 'id']).doUpdateSet((eb) => ({
        deleted_at: eb.fn.coalesce('items.deleted_at', eb.val(now)),
        synced_at: now,
      })),
    )
    .execute();
}

/** Records that `userId` owns the item (used for a delete notification of an item never fetched). */
export async function addToLibrary(
  db: Kysely<Database>,
  userId: number,
  type: ItemType,
  id: number,
  relation: 'owner' | 'pinned',
  now = Date.now(),
): Promise<void> {
  await db
    .insertInto('library')
    .values({ user_id: userId, item_type: type, item_id: id, relation, added_at: now })
    .onConflict((oc) => oc.doNothing())
    .execute();
}

/** Takes an item out of a user's library; `relation` null removes both relations. */
export async function removeFromLibrary(
  db: Kysely<Database>,
  userId: number,
  type: ItemType,
  id: number,
  relation: 'owner' | 'pinned' | null,
): Promise<void> {
  let query = db.deleteFrom('library').where('user_id', '=', userId).where('item_type', '=', type).where('item_id', '=', id);
  if (relation !== null) query = query.where('relation', '=', relation);
  await query.execute();
}

export interface LibraryEntry {
  type: ItemType;
  id: number;
  ownerId: number | null;
  relation: 'owner' | 'pinned';
  name: string | null;
  updatedAt: string | null;
  deleted: boolean;
  deletedAt: string | null;
  syncedAt: string | null;
}

export async function listLibrary(db: Kysely<Database>, userId: number): Promise<LibraryEntry[]> {
  const rows = await db
    .selectFrom('library as l')
    .leftJoin('items as i', (join) => join.onRef('i.type', '=', 'l.item_type').onRef('i.id', '=', 'l.item_id'))
    .select(['l.item_type', 'l.item_id', 'l.relation', 'i.owner_id', 'i.name', 'i.updated_at', 'i.deleted_at', 'i.synced_at'])
    .where('l.user_id', '=', userId)
    .orderBy('l.item_type')
    .orderBy('l.item_id')
    .orderBy('l.relation')
    .execute();
  return rows.map((row) => ({
    type: row.item_type,
    id: row.item_id,
    ownerId: row.owner_id ?? (row.relation === 'owner' ? userId : null),
    relation: row.relation,
    name: row.name,
    updatedAt: row.updated_at,
    deleted: row.deleted_at !== null,
    deletedAt: row.deleted_at === null ? null : new Date(row.deleted_at).toISOString(),
    syncedAt: row.synced_at === null ? null : new Date(row.synced_at).toISOString(),
  }));
}

export async function getItemBody(db: Kysely<Database>, type: ItemType, id: number) {
  return db.selectFrom('items').select(['body', 'deleted_at']).where('type', '=', type).where('id', '=', id).executeTakeFirst();
}
