// Small HTTP helpers for the fake's server: JSON responses, request bodies and
// the record of each request.

import type { IncomingMessage, ServerResponse } from 'node:http';
import { errorMessage, FakeInputError } from './validate.ts';

export interface RecordedRequest {
  method: string;
  path: string;
  query: Record<string, string>;
  headers: Record<string, string>;
  at: number;
}

export interface ApiResponse {
  status: number;
  /** JSON text, or its UTF-8 bytes when they are cached. */
  body: string | Buffer;
  headers?: Record<string, string>;
}

const MAX_CONTROL_BODY_BYTES = 1024 * 1024;

export function jsonResponse(status: number, value: unknown): ApiResponse {
  return { status, body: JSON.stringify(value) };
}

export function sendResponse(response: ServerResponse, answer: ApiResponse): void {
  if (response.destroyed || response.headersSent) return;
  const body = typeof answer.body === 'string' ? Buffer.from(answer.body) : answer.body;
  response.writeHead(answer.status, {
    'content-type': 'application/json; charset=utf-8',
    'content-length': String(body.length),
    ...answer.headers,
  });
  response.end(body);
}

export function recordRequest(method: string, url: URL, request: IncomingMessage): RecordedRequest {
  const headers: Record<string, string> = {};
  for (const [name, value] of Object.entries(request.headers)) {
    if (value !== undefined) headers[name] = Array.isArray(value) ? value.join(', ') : value;
  }
  return { method, path: url.pathname, query: Object.fromEntries(url.searchParams), headers, at: Date.now() };
}

export function headerValue(request: IncomingMessage, name: string): string | undefined {
  const value = request.headers[name];
  return Array.isArray(value) ? value[0] : value;
}

export async function readJson(request: IncomingMessage): Promise<unknown> {
  const text = await readText(request);
  try {
    return JSON.parse(text) as unknown;
  } catch (error) {
    throw new FakeInputError(`invalid JSON body: ${errorMessage(error)}`);
  }
}

export async function readText(request: IncomingMessage): Promise<string> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of request) {
    const buffer = chunk as Buffer;
    size += buffer.length;
    if (size > MAX_CONTROL_BODY_BYTES) throw new FakeInputError(`request body too large: the limit is ${MAX_CONTROL_BODY_BYTES} bytes`);
    chunks.push(buffer);
  }
  return Buffer.concat(chunks).toString('utf8');
}
