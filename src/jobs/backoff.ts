// Retry delays: exponential backoff with full jitter, never sooner than the
// server's Retry-After.
//
// The ceiling for attempt n (1-based) is min(max, base * 2^(n-1)); the delay
// is drawn uniformly from [0, ceiling]. Full jitter spreads the retries of
// many jobs that failed together (an RWGPS outage) instead of sending them
// back in waves.

export interface BackoffOptions {
  baseMs: number;
  maxMs: number;
}

export function backoffCeiling(attempt: number, options: BackoffOptions): number {
  const exponent = Math.min(Math.max(attempt - 1, 0), 40);
  return Math.min(options.maxMs, options.baseMs * 2 ** exponent);
}

/**
 * Returns the delay before the next attempt. `retryAfterMs`, when given, is a
 * floor; it is capped at `maxMs` so that a huge Retry-After cannot stall a
 * job for longer than the longest backoff.
 */
export function backoffDelay(
  attempt: number,
  options: BackoffOptions,
  retryAfterMs?: number,
  random: () => number = Math.random,
): number {
  const jittered = Math.floor(random() * (backoffCeiling(attempt, options) + 1));
  if (retryAfterMs === undefined) return jittered;
  return Math.max(jittered, Math.min(retryAfterMs, options.maxMs));
}

/**
 * Parses a Retry-After header: delta-seconds or an HTTP date. Returns
 * milliseconds from `now`, or undefined for a missing or nonsense value.
 * A date in the past means "now" (0).
 */
export function parseRetryAfter(value: string | null | undefined, now = Date.now()): number | undefined {
  if (value === null || value === undefined) return undefined;
  const text = value.trim();
  if (/^\d+$/.test(text)) {
    const seconds = Number(text);
    return Number.isSafeInteger(seconds) ? seconds * 1000 : undefined;
  }
  // HTTP dates always name a weekday and GMT; Date.parse alone also accepts
  // plain numbers and other loose forms that Retry-After does not allow.
  if (!/^[A-Za-z]{3},? .*GMT$/.test(text)) return undefined;
  const at = Date.parse(text);
  if (Number.isNaN(at)) return undefined;
  return Math.max(0, at - now);
}
