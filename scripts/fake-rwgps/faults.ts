// Fault rules: which requests get an injected fault, and the checks on rules
// given by a test or sent as JSON to the control API.

import { FakeInputError, requireObject, requireString, validateDelay } from './validate.ts';

export type Fault =
  | { kind: 'status'; status: number; retryAfter?: string; body?: string }
  | { kind: 'slow'; delayMs: number }
  | { kind: 'stall' }
  | { kind: 'reset' }
  | { kind: 'redirect'; location: string; status?: number };

export interface FaultRule {
  method?: string;
  /** Exact URL path (without query) or a pattern tested against it. */
  path: string | RegExp;
  /** Number of requests the rule applies to: default 1, Infinity allowed. */
  times?: number;
  fault: Fault;
}

export interface ActiveFaultRule {
  method: string | undefined;
  path: string | RegExp;
  remaining: number;
  fault: Fault;
}

export function faultRuleMatches(rule: ActiveFaultRule, method: string, path: string): boolean {
  if (rule.method !== undefined && rule.method !== method.toUpperCase()) return false;
  if (typeof rule.path === 'string') return rule.path === path;
  rule.path.lastIndex = 0; // a global or sticky pattern would otherwise resume from its last match
  return rule.path.test(path);
}

// Converts a fault rule sent as JSON. There `pathPattern`, a regular expression
// source, may replace the exact `path`, and `times` may be the string "Infinity".
export function faultRuleFromJson(value: unknown): FaultRule {
  const body = requireObject(value);
  const path = body.pathPattern === undefined ? body.path : new RegExp(requireString(body.pathPattern, 'pathPattern'));
  const times = body.times === 'Infinity' ? Infinity : body.times;
  return { method: body.method as string | undefined, path: path as string | RegExp, times: times as number | undefined, fault: body.fault as Fault };
}

export function validateFaultRule(rule: FaultRule): ActiveFaultRule {
  const body = requireObject(rule);
  if (typeof body.path !== 'string' && !(body.path instanceof RegExp)) {
    throw new FakeInputError('invalid fault rule path: expected a string or a RegExp');
  }
  const method = body.method === undefined ? undefined : requireString(body.method, 'fault rule method').toUpperCase();
  const times = body.times ?? 1;
  if (typeof times !== 'number' || !(times >= 1) || (!Number.isInteger(times) && times !== Infinity)) {
    throw new FakeInputError(`invalid fault rule times ${JSON.stringify(times)}: expected a positive integer or Infinity`);
  }
  return { method, path: body.path, remaining: times, fault: validateFault(body.fault) };
}

export function validateFault(value: unknown): Fault {
  const fault = requireObject(value);
  switch (fault.kind) {
    case 'status': {
      const status = fault.status;
      if (typeof status !== 'number' || !Number.isInteger(status) || status < 200 || status > 599) {
        throw new FakeInputError(`invalid fault status ${JSON.stringify(status)}: expected an integer from 200 to 599`);
      }
      return {
        kind: 'status',
        status,
        ...(fault.retryAfter === undefined ? {} : { retryAfter: requireString(fault.retryAfter, 'fault retryAfter') }),
        ...(fault.body === undefined ? {} : { body: requireString(fault.body, 'fault body') }),
      };
    }
    case 'slow':
      return { kind: 'slow', delayMs: validateDelay(fault.delayMs, 'fault delayMs') };
    case 'stall':
      return { kind: 'stall' };
    case 'reset':
      return { kind: 'reset' };
    case 'redirect': {
      const status = fault.status ?? 302;
      if (typeof status !== 'number' || !Number.isInteger(status) || status < 300 || status > 399) {
        throw new FakeInputError(`invalid redirect status ${JSON.stringify(status)}: expected an integer from 300 to 399`);
      }
      return { kind: 'redirect', location: requireString(fault.location, 'fault location'), status };
    }
    default:
      throw new FakeInputError(`invalid fault kind ${JSON.stringify(fault.kind)}: expected status, slow, stall, reset or redirect`);
  }
}
