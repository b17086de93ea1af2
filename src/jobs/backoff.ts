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

// The three date forms HTTP allows (RFC 9110, section 5.6.7): IMF-fixdate,
// the obsolete RFC 850 form and asctime. asctime has no zone but means GMT.
const IMF_FIXDATE = /^[A-Z][a-z]{2}, \d{2} [A-Z][a-z]{2} \d{4} \d{2}:\d{2}:\d{2} GMT$/;
const RFC850_DATE = /^[A-Z][a-z]{5,8}, \d{2}-[A-Z][a-z]{2}-\d{2} \d{2}:\d{2}:\d{2} GMT$/;
const ASCTIME_DATE = /^[A-Z][a-z]{2} [A-Z][a-z]{2} [ \d]\d \d{2}:\d{2}:\d{2} \d{4}$/;

/**
 * Parses a Retry-After header: delta-seconds or an HTTP date. Returns
 * milliseconds from `now`, or undefined for a missing or nonsense value.
 * A date in the past means "now" (0). A number of seconds too large to
 * represent returns Number.MAX_SAFE_INTEGER, so callers cap it like any
 * other long wait instead of ignoring it.
 */
export function parseRetryAfter(value: string | null | undefined, now = Date.now()): number | undefined {
  if (value === null || value === undefined) return undefined;
  const text = value.trim();
  if (/^\d+$/.test(text)) {
    const ms = Number(text) * 1000;
    return Number.isSafeInteger(ms) ? ms : Number.MAX_SAFE_INTEGER;
  }
  let at: number;
  if (IMF_FIXDATE.test(text) || RFC850_DATE.test(text)) at = Date.parse(text);
  else if (ASCTIME_DATE.test(text)) at = Date.parse(`${text} GMT`);
  else return undefined;
  if (Number.isNaN(at)) return undefined;
  return Math.max(0, at - now);
}
