import type { ClientConfig } from '../config/config.ts';
import { parseRetryAfter } from '../jobs/backoff.ts';
import type { ItemType, TokenKind } from '../store/schema.ts';
import { RequestRateLimiter } from './rate-limit.ts';

// HTTP calls to the RWGPS API with a user's token.
//
// Tokens go only to rwgps.baseUrl's origin: URLs are built from the base URL
// and the item type and id, never from a notification's item_url, and every
// request, the first one and each redirect, is checked against that origin.
// A path such as `//other-host/x` resolves to another origin, so the check
// runs on the resolved URL.

export interface Credentials {
  token: string;
  kind: TokenKind;
  /** The API client the user connected through; Basic tokens need its API key. */
  client: ClientConfig;
}

/** A classified response; the body of an `ok` one is text, or bytes for `fetchItem`. */
export type Classified<Body = string> =
  | { kind: 'ok'; status: number; body: Body }
  | { kind: 'not_found'; status: number }
  | { kind: 'forbidden'; status: number }
  | { kind: 'unauthorized'; status: number; message: string }
  | { kind: 'retry'; status: number | null; message: string; retryAfterMs?: number }
  | { kind: 'permanent'; status: number | null; message: string };

export interface RwgpsClientOptions {
  baseUrl: string;
  requestTimeoutMs: number;
  /** Largest response body read, in bytes; larger bodies are a permanent error. */
  maxBodyBytes?: number;
  /** Request starts per second across all callers of this client; 0 or absent means no limit. */
  maxRequestsPerSecond?: number;
  /** Called after every request that reached an outcome, for metrics and outage logging. */
  onRequest?: (outcome: RequestOutcome) => void;
}

export interface RequestOutcome {
  /** HTTP status of the last response, or null for a timeout or connection error. */
  status: number | null;
  kind: Classified['kind'];
  /** Whole exchange, redirects and body included. */
  durationMs: number;
  message?: string;
}

const DEFAULT_MAX_BODY_BYTES = 128 * 1024 * 1024;
const MAX_REDIRECTS = 3;
// How long a 429 without a usable Retry-After holds back the whole client.
const DEFAULT_RATE_LIMITED_PAUSE_MS = 1000;
// A Retry-After longer than this pauses the client only this long; the job
// that got the 429 still waits the full Retry-After through its backoff.
const MAX_RATE_LIMITED_PAUSE_MS = 60_000;

export class RwgpsClient {
  readonly #origin: string;
  readonly #baseUrl: string;
  readonly #timeoutMs: number;
  readonly #maxBodyBytes: number;
  readonly #limiter: RequestRateLimiter;
  readonly #onRequest: ((outcome: RequestOutcome) => void) | undefined;

  constructor(options: RwgpsClientOptions) {
    this.#onRequest = options.onRequest;
    this.#baseUrl = options.baseUrl;
    this.#origin = new URL(options.baseUrl).origin;
    this.#timeoutMs = options.requestTimeoutMs;
    this.#maxBodyBytes = options.maxBodyBytes ?? DEFAULT_MAX_BODY_BYTES;
    this.#limiter = new RequestRateLimiter(options.maxRequestsPerSecond ?? 0);
  }

  itemPath(type: ItemType, id: number): string {
    return `/api/v1/${type === 'route' ? 'routes' : 'trips'}/${id}.json`;
  }

  /**
   * GETs an item. The body stays bytes: an item can be several megabytes,
   * and the store keeps it as sent, so it is never decoded to a string.
   */
  fetchItem(type: ItemType, id: number, credentials: Credentials, signal?: AbortSignal): Promise<Classified<Buffer>> {
    return this.getBytes(this.itemPath(type, id), credentials, signal);
  }

  /**
   * GETs an API path (with its query), or an absolute URL on the RWGPS
   * origin, and classifies the response. A target on another origin is a
   * permanent error and no request is sent. The timeout covers the whole
   * exchange, body included, so a body that stalls after the headers counts
   * as a timeout. Time spent waiting for the rate limit before the first
   * request does not count.
   */
  async get(target: string | URL, credentials: Credentials, signal?: AbortSignal): Promise<Classified> {
    const result = await this.getBytes(target, credentials, signal);
    return result.kind === 'ok' ? { ...result, body: result.body.toString('utf8') } : result;
  }

  /** Like `get`, with the body of an `ok` response as bytes. */
  async getBytes(target: string | URL, credentials: Credentials, signal?: AbortSignal): Promise<Classified<Buffer>> {
    await this.#limiter.acquire(signal);
    const started = performance.now();
    const result = await this.#get(target, credentials, signal);
    this.#onRequest?.({
      status: result.status,
      kind: result.kind,
      durationMs: performance.now() - started,
      ...('message' in result ? { message: result.message } : {}),
    });
    return result;
  }

  async #get(target: string | URL, credentials: Credentials, signal?: AbortSignal): Promise<Classified<Buffer>> {
    const timeout = AbortSignal.timeout(this.#timeoutMs);
    const combined = signal ? AbortSignal.any([signal, timeout]) : timeout;
    let url: URL;
    try {
      url = new URL(target, `${this.#baseUrl}/`);
    } catch {
      return { kind: 'permanent', status: null, message: `invalid RWGPS request URL ${JSON.stringify(String(target).slice(0, 200))}` };
    }

    try {
      for (let hop = 0; ; hop++) {
        if (url.origin !== this.#origin) {
          return { kind: 'permanent', status: null, message: `request to ${url.origin} not sent: tokens are only sent to ${this.#origin}` };
        }
        if (hop > 0) await this.#limiter.acquire(combined);
        const response = await fetch(url, {
          headers: authHeaders(credentials),
          redirect: 'manual',
          signal: combined,
        });
        if (response.status >= 300 && response.status < 400) {
          await response.body?.cancel();
          const location = response.headers.get('location');
          const next = location === null ? null : new URL(location, url);
          if (next === null || next.origin !== this.#origin) {
            return {
              kind: 'permanent',
              status: response.status,
              message: `RWGPS redirected to ${next === null ? 'nowhere' : next.origin}; tokens are only sent to ${this.#origin}`,
            };
          }
          if (hop >= MAX_REDIRECTS) {
            return { kind: 'permanent', status: response.status, message: `more than ${MAX_REDIRECTS} redirects` };
          }
          url = next;
          continue;
        }
        return await this.#classify(response, combined);
      }
    } catch (error) {
      if (timeout.aborted) {
        return { kind: 'retry', status: null, message: `request timed out after ${this.#timeoutMs} ms` };
      }
      if (signal?.aborted) throw error;
      return { kind: 'retry', status: null, message: `request failed: ${describeFetchError(error)}` };
    }
  }

  async #classify(response: Response, signal: AbortSignal): Promise<Classified<Buffer>> {
    const status = response.status;
    if (status >= 200 && status < 300) {
      const body = await readBody(response, this.#maxBodyBytes, signal);
      if (body === null) {
        return { kind: 'permanent', status, message: `response body larger than ${this.#maxBodyBytes} bytes` };
      }
      return { kind: 'ok', status, body };
    }

    const message = `RWGPS responded with status ${status}${await errorDetail(response)}`;
    if (status === 404) return { kind: 'not_found', status };
    if (status === 403) return { kind: 'forbidden', status };
    if (status === 401) return { kind: 'unauthorized', status, message };
    if (status === 429 || status >= 500) {
      const retryAfterMs = parseRetryAfter(response.headers.get('retry-after'));
      if (status === 429) {
        this.#limiter.pause(Math.min(retryAfterMs ?? DEFAULT_RATE_LIMITED_PAUSE_MS, MAX_RATE_LIMITED_PAUSE_MS));
      }
      return { kind: 'retry', status, message, ...(retryAfterMs === undefined ? {} : { retryAfterMs }) };
    }
    return { kind: 'permanent', status, message };
  }
}

function authHeaders(credentials: Credentials): Record<string, string> {
  const headers: Record<string, string> = { accept: 'application/json', 'user-agent': 'rwgps-sync' };
  if (credentials.kind === 'oauth') {
    headers.authorization = `Bearer ${credentials.token}`;
  } else {
    headers['x-rwgps-api-key'] = credentials.client.apiKey;
    headers['x-rwgps-auth-token'] = credentials.token;
  }
  return headers;
}

/**
 * Reads a body into one Buffer, or returns null once it passes `limit` bytes.
 * With a Content-Length and no Content-Encoding, each chunk is copied into a
 * buffer of that size as it arrives, so the chunks can be collected while
 * the body is read and no second full-size copy is made at the end.
 */
async function readBody(response: Response, limit: number, signal: AbortSignal): Promise<Buffer | null> {
  if (!response.body) return Buffer.alloc(0);
  const reader = response.body.getReader();
  const declared = response.headers.has('content-encoding') ? NaN : Number(response.headers.get('content-length') ?? NaN);
  // fetch decompresses an encoded body, so its Content-Length is not the size read.
  let whole = Number.isSafeInteger(declared) && declared >= 0 && declared <= limit ? Buffer.allocUnsafe(declared) : null;
  const chunks: Uint8Array[] = [];
  let size = 0;
  for (;;) {
    signal.throwIfAborted();
    const { done, value } = await reader.read();
    if (done) break;
    if (size + value.byteLength > limit) {
      await reader.cancel();
      return null;
    }
    if (whole !== null && size + value.byteLength <= whole.length) {
      whole.set(value, size);
    } else {
      if (whole !== null) {
        // More bytes than Content-Length said: keep what came so far as the first chunk.
        chunks.push(whole.subarray(0, size));
        whole = null;
      }
      chunks.push(value);
    }
    size += value.byteLength;
  }
  if (whole !== null) return size === whole.length ? whole : whole.subarray(0, size);
  return Buffer.concat(chunks, size);
}

/** Returns ": <message>" from an RWGPS error body, short and without echoing anything large. */
async function errorDetail(response: Response): Promise<string> {
  try {
    const text = (await response.text()).slice(0, 2000);
    const parsed = JSON.parse(text) as { error?: unknown };
    if (typeof parsed.error === 'string') return `: ${parsed.error.slice(0, 200)}`;
  } catch {
    // The body is not the documented {"error": "..."}; the status says enough.
  }
  return '';
}

function describeFetchError(error: unknown): string {
  if (!(error instanceof Error)) return String(error);
  const cause = (error as { cause?: { code?: string; message?: string } }).cause;
  if (cause?.code) return `${error.message} (${cause.code})`;
  if (cause?.message) return `${error.message} (${cause.message})`;
  return error.message;
}
