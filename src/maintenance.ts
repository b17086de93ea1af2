import type { Config } from './config/config.ts';
import { errorMessage, type Logger } from './log.ts';
import { databaseFileSizes, type Store } from './store/db.ts';
import { pruneHistory } from './store/retention.ts';

// Background upkeep of the database while `serve` runs:
//
// - WAL checkpoints every database.checkpointIntervalMs: PASSIVE while work
//   is going on (it never waits and never blocks a writer), TRUNCATE when
//   nothing was written since the last tick, which empties the -wal file.
// - A size check every 250 ms. SQLite's automatic checkpoint (every 1000
//   pages) cannot reset the WAL while other processes keep overlapping read
//   transactions open (a `status` loop, a backup): the file then grows with
//   every commit. Past WAL_FORCE_CHECKPOINT_BYTES a TRUNCATE checkpoint
//   waits up to FORCED_CHECKPOINT_WAIT_MS for those readers, which lets the
//   WAL start over. A reader that stays longer (VACUUM INTO of a large
//   database) wins, and the check tries again 250 ms later.
// - Retention every retention.intervalMs, in small batches.

export const WAL_FORCE_CHECKPOINT_BYTES = 16 * 1024 * 1024;
// The event loop is blocked while the checkpoint waits, so webhooks wait too.
const FORCED_CHECKPOINT_WAIT_MS = 200;
const WAL_SIZE_CHECK_MS = 250;

export interface MaintenanceDeps {
  store: Store;
  config: Config;
  logger: Logger;
  /** True while jobs are in flight: no TRUNCATE then. */
  busy: () => boolean;
}

export interface Maintenance {
  /** Records that something was written, so the next tick runs PASSIVE, not TRUNCATE. */
  noteWrite(): void;
  /** Clears the timers and waits for a checkpoint or prune in progress. */
  stop(): Promise<void>;
}

export function startMaintenance(deps: MaintenanceDeps): Maintenance {
  const { store, config, logger, busy } = deps;
  let stopped = false;
  let wroteSinceTick = false;
  let running: Promise<void> = Promise.resolve();

  const checkpointTick = async () => {
    const idle = !wroteSinceTick && !busy();
    wroteSinceTick = false;
    try {
      const result = await store.checkpoint(idle ? 'truncate' : 'passive');
      logger.debug('wal checkpoint', { mode: idle ? 'truncate' : 'passive', ...result });
    } catch (error) {
      logger.warn('wal checkpoint failed', { error: errorMessage(error) });
    }
  };

  let forcedFailures = 0;
  const forcedCheckpoint = async () => {
    if (databaseFileSizes(store.path).wal <= WAL_FORCE_CHECKPOINT_BYTES) return;
    try {
      const result = await store.checkpoint('truncate', FORCED_CHECKPOINT_WAIT_MS);
      if (result.busy) {
        // Logged once per streak: a long backup can keep this busy for minutes.
        if (forcedFailures++ === 0) logger.warn('wal checkpoint kept waiting by a long read transaction; will retry every 250 ms', { walPages: result.walPages });
      } else {
        if (forcedFailures > 0) logger.info('wal checkpoint caught up', { attempts: forcedFailures + 1 });
        forcedFailures = 0;
      }
    } catch (error) {
      logger.warn('wal checkpoint failed', { error: errorMessage(error) });
    }
  };

  const pruneTick = async () => {
    const started = Date.now();
    try {
      const pruned = await pruneHistory(store.db, config.retention, { shouldStop: () => stopped });
      if (pruned.jobs + pruned.deliveries + pruned.attempts > 0) {
        logger.info('pruned old history', { ...pruned, durationMs: Date.now() - started });
      }
    } catch (error) {
      logger.warn('pruning old history failed; will try again', { error: errorMessage(error) });
    }
  };

  // One task at a time, so a slow prune and a checkpoint never overlap, and
  // a task already waiting its turn is not queued twice.
  const queued = new Set<() => Promise<void>>();
  const schedule = (task: () => Promise<void>) => {
    if (stopped || queued.has(task)) return;
    queued.add(task);
    running = running.then(() => {
      queued.delete(task);
      return stopped ? undefined : task();
    });
  };

  const checkpointTimer = setInterval(() => schedule(checkpointTick), config.database.checkpointIntervalMs);
  const sizeTimer = setInterval(() => schedule(forcedCheckpoint), WAL_SIZE_CHECK_MS);
  const pruneTimer = setInterval(() => schedule(pruneTick), config.retention.intervalMs);
  // Prune once soon after start, so a service restarted often still prunes.
  const firstPrune = setTimeout(() => schedule(pruneTick), Math.min(5_000, config.retention.intervalMs));

  return {
    noteWrite() {
      wroteSinceTick = true;
    },
    async stop() {
      stopped = true;
      clearInterval(checkpointTimer);
      clearInterval(sizeTimer);
      clearInterval(pruneTimer);
      clearTimeout(firstPrune);
      await running;
    },
  };
}
