// A client-wide limit on requests to RWGPS.
//
// Requests start one at a time in arrival order, and never more than
// maxPerSecond within any one second. The start times of the last
// maxPerSecond requests are kept, so a timer that fires late (a busy event
// loop) cannot let a burst through. Within that, a token bucket holding a
// tenth of a second's requests spreads them out. Time lost to a late timer
// refills the bucket, so late timers do not lower the rate below the limit.
// A 429 pauses every request of the client, not only the job that received
// it, until its Retry-After has passed.

export class RequestRateLimiter {
  readonly #maxPerSecond: number;
  readonly #bucketSize: number;
  #tokens: number;
  #refilledAt = performance.now();
  /** Start times of the last maxPerSecond requests, oldest at #oldest. */
  readonly #starts: number[] = [];
  #oldest = 0;
  #pausedUntil = 0;
  #queue: Promise<void> = Promise.resolve();

  /** `maxPerSecond` 0 means no limit, but pauses after a 429 still apply. */
  constructor(maxPerSecond: number) {
    this.#maxPerSecond = maxPerSecond;
    this.#bucketSize = Math.max(1, Math.ceil(maxPerSecond / 10));
    this.#tokens = this.#bucketSize;
  }

  /** Waits until this request may start. Rejects with the signal's reason if it aborts first. */
  acquire(signal?: AbortSignal): Promise<void> {
    const turn = this.#queue.then(() => this.#waitForSlot(signal));
    // The next request waits for this one's turn, whether it starts or aborts.
    this.#queue = turn.catch(() => {});
    return turn;
  }

  /** Holds back every later request for `ms` milliseconds, as after a 429. */
  pause(ms: number): void {
    this.#pausedUntil = Math.max(this.#pausedUntil, performance.now() + ms);
  }

  async #waitForSlot(signal?: AbortSignal): Promise<void> {
    for (;;) {
      signal?.throwIfAborted();
      const now = performance.now();
      const wait = Math.max(this.#pausedUntil - now, this.#bucketWait(now), this.#windowWait(now));
      if (wait <= 0) break;
      await delay(wait, signal);
    }
    if (this.#maxPerSecond === 0) return;
    const now = performance.now();
    this.#tokens -= 1;
    if (this.#starts.length < this.#maxPerSecond) {
      this.#starts.push(now);
    } else {
      this.#starts[this.#oldest] = now;
      this.#oldest = (this.#oldest + 1) % this.#maxPerSecond;
    }
  }

  // Refills the bucket and returns the milliseconds until it contains one token.
  #bucketWait(now: number): number {
    if (this.#maxPerSecond === 0) return 0;
    this.#tokens = Math.min(this.#bucketSize, this.#tokens + ((now - this.#refilledAt) * this.#maxPerSecond) / 1000);
    this.#refilledAt = now;
    return this.#tokens >= 1 ? 0 : ((1 - this.#tokens) * 1000) / this.#maxPerSecond;
  }

  // Milliseconds until the oldest of the last maxPerSecond starts is one second old.
  #windowWait(now: number): number {
    if (this.#maxPerSecond === 0 || this.#starts.length < this.#maxPerSecond) return 0;
    return this.#starts[this.#oldest]! + 1000 - now;
  }
}

function delay(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
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
