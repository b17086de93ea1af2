// A client-wide limit on requests to RWGPS.
//
// Requests are spaced evenly, 1000 / maxPerSecond milliseconds apart, so no
// window of one second holds more than maxPerSecond request starts. A 429
// pauses every request of the client, not only the job that received it,
// until its Retry-After has passed.

export class RequestRateLimiter {
  readonly #intervalMs: number;
  #nextSlotAt = 0;
  #pausedUntil = 0;

  /** `maxPerSecond` 0 means no limit; pauses after a 429 still apply. */
  constructor(maxPerSecond: number) {
    this.#intervalMs = maxPerSecond > 0 ? 1000 / maxPerSecond : 0;
  }

  /** Waits for this request's slot. Rejects with the signal's reason if it aborts first. */
  async acquire(signal?: AbortSignal): Promise<void> {
    const now = performance.now();
    const slot = Math.max(now, this.#nextSlotAt, this.#pausedUntil);
    this.#nextSlotAt = slot + this.#intervalMs;
    if (slot > now) await delay(slot - now, signal);
  }

  /** Holds back every later request for `ms` milliseconds, as after a 429. */
  pause(ms: number): void {
    this.#pausedUntil = Math.max(this.#pausedUntil, performance.now() + ms);
  }
}

function delay(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) {
      reject(signal.reason);
      return;
    }
    const onAbort = () => {
      clearTimeout(timer);
      reject(signal!.reason);
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}
