import type { Config } from './config/config.ts';
import { errorMessage, type Logger } from './log.ts';
import type { Store } from './store/db.ts';
import { pruneHistory } from './store/retention.ts';

// Background upkeep of the database while `serve` runs:
//
// - WAL checkpoints every database.checkpointIntervalMs. A PASSIVE
//   checkpoint while work is going on (it never waits and never blocks a
//   writer); a TRUNCATE checkpoint when nothing was written since the last
//   tick, which empties the -wal file. SQLite's automatic checkpoint (every
//   1000 pages) and journal_size_limit keep the file bounded under load;
//   these ticks catch up after bursts and shrink it when idle.
// - Retention every retention.intervalMs, in small batches.

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

  // One task at a time, so a slow prune and a checkpoint never overlap.
  const schedule = (task: () => Promise<void>) => {
    if (stopped) return;
    running = running.then(task);
  };

  const checkpointTimer = setInterval(() => schedule(checkpointTick), config.database.checkpointIntervalMs);
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
      clearInterval(pruneTimer);
      clearTimeout(firstPrune);
      await running;
    },
  };
}
