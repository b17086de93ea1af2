// Input checks shared by the model, the fault rules and the control API. Each
// throws FakeInputError, which the control API returns as 400.

import type { Visibility } from './types.ts';

/** Invalid input to a model or control method. The control API returns it as 400. */
export class FakeInputError extends Error {
  override name = 'FakeInputError';
}

const VISIBILITIES: readonly Visibility[] = ['public', 'friends_only', 'private'];
// Bounds a typo in a test so it cannot build a response of gigabytes.
const MAX_TRACK_POINTS = 1_000_000;

export function requireObject(value: unknown): Record<string, unknown> {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw new FakeInputError('invalid input: expected a JSON object');
  return value as Record<string, unknown>;
}

export function requireString(value: unknown, label: string): string {
  if (typeof value !== 'string' || value === '') throw new FakeInputError(`invalid ${label}: expected a non-empty string`);
  return value;
}

export function requireId(value: unknown, label: string): number {
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value <= 0) {
    throw new FakeInputError(`invalid ${label} ${JSON.stringify(value)}: expected a positive integer`);
  }
  return value;
}

export function requireVisibility(value: unknown): Visibility {
  if (!VISIBILITIES.includes(value as Visibility)) {
    throw new FakeInputError(`invalid visibility ${JSON.stringify(value)}: expected public, friends_only or private`);
  }
  return value as Visibility;
}

export function requireTrackPoints(value: unknown): number {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < 0 || value > MAX_TRACK_POINTS) {
    throw new FakeInputError(`invalid trackPoints ${JSON.stringify(value)}: expected an integer from 0 to ${MAX_TRACK_POINTS}`);
  }
  return value;
}

export function validateDelay(value: unknown, label: string): number {
  if (typeof value !== 'number' || !Number.isFinite(value) || value < 0) {
    throw new FakeInputError(`invalid ${label} ${JSON.stringify(value)}: expected a non-negative number of milliseconds`);
  }
  return value;
}

export function errorMessage(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
