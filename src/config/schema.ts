// A small declarative checker for the JSON config. Each rule names its key
// path, so every error can say which key is wrong, what was found and what
// was expected.

export class ConfigError extends Error {
  constructor(
    readonly file: string,
    readonly key: string,
    readonly detail: string,
  ) {
    super(`${file}: ${key === '' ? '' : `${key}: `}${detail}`);
    this.name = 'ConfigError';
  }
}

export type Rule =
  | { type: 'string'; default?: string; required?: boolean; secret?: boolean; nonEmpty?: boolean }
  | { type: 'url'; default?: string; required?: boolean; protocols: string[] }
  | { type: 'integer'; default: number; min: number; max: number }
  | { type: 'number'; default: number; min: number; max: number }
  | { type: 'boolean'; default: boolean }
  | { type: 'enum'; default: string; values: readonly string[] }
  | { type: 'object'; fields: Record<string, Rule> }
  | { type: 'array'; items: Rule; minItems: number };

export interface CheckContext {
  file: string;
  env: NodeJS.ProcessEnv;
  /** Key paths of secrets written in the file itself rather than named by `<key>Env`. */
  inlineSecrets?: string[];
}

function describe(value: unknown, secret: boolean): string {
  if (secret && value !== undefined && value !== null && value !== '') return '(a hidden value)';
  if (value === undefined) return 'nothing';
  // Objects and arrays are summarised, not printed: they may hold a secret
  // (a "clients" object with a clientSecret in it, for example).
  if (Array.isArray(value)) return `an array of ${value.length} entr${value.length === 1 ? 'y' : 'ies'}`;
  if (typeof value === 'object' && value !== null) {
    const keys = Object.keys(value);
    return keys.length === 0 ? 'an empty object' : `an object with keys ${keys.join(', ')}`;
  }
  const text = JSON.stringify(value);
  return text.length > 60 ? `${text.slice(0, 57)}...` : text;
}

function fail(ctx: CheckContext, key: string, expected: string, value: unknown, secret = false): never {
  throw new ConfigError(ctx.file, key, `expected ${expected}, found ${describe(value, secret)}`);
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/**
 * Checks `value` against `rule` and returns it with defaults filled in.
 * A string rule marked secret also accepts `<key>Env` in the same object,
 * naming an environment variable that holds the value; that is handled by
 * the object case because it needs the sibling keys.
 */
export function check(rule: Rule, value: unknown, key: string, ctx: CheckContext): unknown {
  switch (rule.type) {
    case 'string': {
      if (value === undefined) {
        if (rule.required) fail(ctx, key, 'a string', value);
        return rule.default ?? null;
      }
      if (typeof value !== 'string') fail(ctx, key, 'a string', value, rule.secret);
      if (rule.nonEmpty && value.trim() === '') fail(ctx, key, 'a non-empty string', value);
      return value;
    }
    case 'url': {
      if (value === undefined) {
        if (rule.required) fail(ctx, key, `a URL (${rule.protocols.join(' or ')})`, value);
        return rule.default ?? null;
      }
      const expected = `a ${rule.protocols.join(' or ')} URL without a trailing slash`;
      if (typeof value !== 'string') fail(ctx, key, expected, value);
      let url: URL;
      try {
        url = new URL(value);
      } catch {
        fail(ctx, key, expected, value);
      }
      if (!rule.protocols.includes(url.protocol.replace(':', ''))) fail(ctx, key, expected, value);
      if (url.search !== '' || url.hash !== '' || url.username !== '' || url.password !== '') {
        fail(ctx, key, `${expected}, query, fragment or credentials`, value);
      }
      return value.replace(/\/+$/, '');
    }
    case 'integer': {
      if (value === undefined) return rule.default;
      const expected = `an integer from ${rule.min} to ${rule.max}`;
      if (typeof value !== 'number' || !Number.isInteger(value)) fail(ctx, key, expected, value);
      if (value < rule.min || value > rule.max) fail(ctx, key, expected, value);
      return value;
    }
    case 'number': {
      if (value === undefined) return rule.default;
      const expected = `a number from ${rule.min} to ${rule.max}`;
      if (typeof value !== 'number' || !Number.isFinite(value)) fail(ctx, key, expected, value);
      if (value < rule.min || value > rule.max) fail(ctx, key, expected, value);
      return value;
    }
    case 'boolean': {
      if (value === undefined) return rule.default;
      if (typeof value !== 'boolean') fail(ctx, key, 'true or false', value);
      return value;
    }
    case 'enum': {
      if (value === undefined) return rule.default;
      const expected = `one of ${rule.values.map((v) => JSON.stringify(v)).join(', ')}`;
      if (typeof value !== 'string' || !rule.values.includes(value)) fail(ctx, key, expected, value);
      return value;
    }
    case 'array': {
      if (value === undefined) value = [];
      if (!Array.isArray(value)) fail(ctx, key, 'an array', value);
      if (value.length < rule.minItems) {
        fail(ctx, key, `an array with at least ${rule.minItems} entry`, value);
      }
      return value.map((item, index) => check(rule.items, item, `${key}[${index}]`, ctx));
    }
    case 'object':
      return checkObject(rule.fields, value, key, ctx);
  }
}

function checkObject(fields: Record<string, Rule>, value: unknown, key: string, ctx: CheckContext) {
  if (value === undefined) value = {};
  // A value in place of an object that holds a secret may be that secret.
  const holdsSecret = Object.values(fields).some((rule) => rule.type === 'string' && rule.secret === true);
  if (!isPlainObject(value)) fail(ctx, key === '' ? '(top level)' : key, 'an object', value, holdsSecret);
  const prefix = key === '' ? '' : `${key}.`;

  for (const name of Object.keys(value)) {
    if (name.startsWith('//')) continue; // JSON has no comments; "//" keys serve as them
    const envOf = name.endsWith('Env') ? name.slice(0, -3) : null;
    const secretSibling = envOf !== null ? fields[envOf] : undefined;
    const isSecretEnvKey = secretSibling?.type === 'string' && secretSibling.secret === true;
    if (!(name in fields) && !isSecretEnvKey) {
      const known = Object.keys(fields).join(', ');
      throw new ConfigError(ctx.file, `${prefix}${name}`, `unknown key; known keys here: ${known}`);
    }
  }

  const result: Record<string, unknown> = {};
  for (const [name, rule] of Object.entries(fields)) {
    let fieldValue = value[name];
    if (rule.type === 'string' && rule.secret) {
      fieldValue = resolveSecret(value, name, `${prefix}${name}`, ctx);
      if (fieldValue === undefined && !rule.required) {
        result[name] = rule.default ?? null;
        continue;
      }
      if (fieldValue === undefined) {
        throw new ConfigError(
          ctx.file,
          `${prefix}${name}`,
          `missing; set "${name}" or name an environment variable in "${name}Env"`,
        );
      }
    }
    result[name] = check(rule, fieldValue, `${prefix}${name}`, ctx);
  }
  return result;
}

function resolveSecret(
  container: Record<string, unknown>,
  name: string,
  key: string,
  ctx: CheckContext,
): unknown {
  const inline = container[name];
  const envName = container[`${name}Env`];
  if (envName === undefined) {
    if (inline !== undefined) ctx.inlineSecrets?.push(key);
    return inline;
  }
  if (inline !== undefined) {
    throw new ConfigError(ctx.file, key, `set either "${name}" or "${name}Env", not both`);
  }
  if (typeof envName !== 'string' || !/^[A-Za-z_][A-Za-z0-9_]*$/.test(envName)) {
    fail(ctx, `${key}Env`, 'the name of an environment variable', envName);
  }
  const fromEnv = ctx.env[envName];
  if (fromEnv === undefined || fromEnv === '') {
    throw new ConfigError(ctx.file, `${key}Env`, `environment variable ${envName} is not set or empty`);
  }
  return fromEnv;
}
