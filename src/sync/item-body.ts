import type { ItemType } from '../store/schema.ts';

// Reads the key fields of an item response without building its object
// tree. A 60,000-point trip is about 6 MB of JSON, and JSON.parse would turn
// it into hundreds of thousands of objects only to read three fields.
//
// scanItemBody validates the bytes against the JSON grammar of RFC 8259, as
// JSON.parse does, and notes where the values of the fields it needs start
// and end. Only those short values are decoded. It works on the UTF-8 bytes,
// so no JavaScript string of the whole body is made. Bytes of 0x80 and above
// are accepted inside strings only. Node decodes invalid UTF-8 to U+FFFD
// without swallowing ASCII bytes, so JSON.parse of the decoded text accepts
// exactly the same bodies.

export interface ItemFields {
  ownerId: number | null;
  name: string | null;
  updatedAt: string | null;
}

export type ScanResult = { ok: true; fields: ItemFields } | { ok: false; problem: 'not_json' | 'no_root_object' };

const FIELD_NAMES = ['user_id', 'name', 'updated_at'] as const;
type FieldName = (typeof FIELD_NAMES)[number];

const OBJECT = 1;
const ARRAY = 2;

// Frame tags: what the key being read at that depth means to us.
const TAG_NONE = 0;
const TAG_ROOT_KEY = 1; // a key of the top-level object equal to the item type
const TAG_FIELD = 2; // a key of the item object equal to one of FIELD_NAMES

const textDecoder = new TextDecoder();

/**
 * Validates an item response body and returns the item's `user_id`, `name`
 * and `updated_at`, with the same results as reading them from
 * `JSON.parse(body)[type]`: the last of duplicate keys wins, and a field of
 * another JSON type reads as null.
 */
export function scanItemBody(bytes: Uint8Array, type: ItemType): ScanResult {
  const scanner = new Scanner(bytes, type);
  if (!scanner.scan()) return { ok: false, problem: 'not_json' };
  if (!scanner.rootIsObject) return { ok: false, problem: 'no_root_object' };

  const raw = scanner.fields;
  const ownerId = raw.user_id === undefined ? undefined : decodeValue(bytes, raw.user_id);
  const name = raw.name === undefined ? undefined : decodeValue(bytes, raw.name);
  const updatedAt = raw.updated_at === undefined ? undefined : decodeValue(bytes, raw.updated_at);
  return {
    ok: true,
    fields: {
      ownerId: typeof ownerId === 'number' ? ownerId : null,
      name: typeof name === 'string' ? name : null,
      updatedAt: typeof updatedAt === 'string' ? updatedAt : null,
    },
  };
}

function decodeValue(bytes: Uint8Array, [start, end]: [number, number]): unknown {
  return JSON.parse(textDecoder.decode(bytes.subarray(start, end)));
}

class Scanner {
  /**
   * True when the last value under the item-type key of the top-level object
   * is an object or an array, which JSON.parse's callers saw as an object.
   */
  rootIsObject = false;
  /** Byte ranges of the key fields inside that object. */
  fields: Partial<Record<FieldName, [number, number]>> = {};

  readonly #bytes: Uint8Array;
  readonly #type: string;
  #pos = 0;
  // One entry per open object or array, kept in plain arrays so nesting
  // depth costs no call stack.
  readonly #kinds: number[] = [];
  readonly #tags: number[] = [];
  readonly #fieldOf: (FieldName | null)[] = [];
  readonly #starts: number[] = [];
  /** Offset just past the closing quote of the last string read. */
  #lastStringEnd = 0;

  constructor(bytes: Uint8Array, type: string) {
    this.#bytes = bytes;
    this.#type = type;
  }

  /** Returns false when the bytes are not one JSON value with optional whitespace around it. */
  scan(): boolean {
    const bytes = this.#bytes;
    this.#skipWhitespace();
    for (;;) {
      // A value starts at #pos.
      const start = this.#pos;
      const c = bytes[start];
      if (c === 0x7b /* { */ || c === 0x5b /* [ */) {
        this.#valueStarts(start, true);
        this.#pos++;
        this.#skipWhitespace();
        const close = c === 0x7b ? 0x7d : 0x5d;
        if (bytes[this.#pos] === close) {
          this.#pos++;
          this.#closeContainer();
          this.#valueEnds(start);
        } else if (c === 0x7b) {
          if (!this.#key()) return false;
          continue;
        } else {
          continue;
        }
      } else {
        this.#valueStarts(start, false);
        if (!this.#primitive()) return false;
        this.#valueEnds(start);
      }

      // After a value: a separator, the end of its container, or the end of the body.
      for (;;) {
        this.#skipWhitespace();
        const depth = this.#kinds.length;
        if (depth === 0) return this.#pos === bytes.length;
        const kind = this.#kinds[depth - 1];
        const next = bytes[this.#pos];
        if (next === 0x2c /* , */) {
          this.#pos++;
          this.#skipWhitespace();
          if (kind === OBJECT && !this.#key()) return false;
          break;
        }
        if ((kind === OBJECT && next === 0x7d) || (kind === ARRAY && next === 0x5d)) {
          this.#pos++;
          this.#valueEnds(this.#closeContainer());
          continue;
        }
        return false;
      }
    }
  }

  // Pops the innermost open container and returns the offset where it started.
  #closeContainer(): number {
    this.#kinds.pop();
    this.#tags.pop();
    this.#fieldOf.pop();
    return this.#starts.pop()!;
  }

  #valueStarts(start: number, isContainer: boolean): void {
    const depth = this.#kinds.length;
    // A new value under the item-type key replaces the earlier one, as in JSON.parse.
    if (depth === 1 && this.#tags[0] === TAG_ROOT_KEY) {
      this.rootIsObject = isContainer;
      this.fields = {};
    }
    const c = this.#bytes[start];
    if (c === 0x7b || c === 0x5b) {
      this.#kinds.push(c === 0x7b ? OBJECT : ARRAY);
      this.#tags.push(TAG_NONE);
      this.#fieldOf.push(null);
      this.#starts.push(start);
    }
  }

  #valueEnds(start: number): void {
    // The value just read belongs to the container now on top of the stack.
    const depth = this.#kinds.length;
    if (depth === 2 && this.#tags[0] === TAG_ROOT_KEY && this.#kinds[1] === OBJECT && this.#tags[1] === TAG_FIELD) {
      this.fields[this.#fieldOf[1]!] = [start, this.#pos];
    }
  }

  // Reads `"key" :` inside an object and tags the frame with what the key means.
  #key(): boolean {
    const bytes = this.#bytes;
    const start = this.#pos;
    if (bytes[start] !== 0x22 || !this.#string()) return false;
    this.#skipWhitespace();
    if (bytes[this.#pos] !== 0x3a /* : */) return false;
    this.#pos++;
    this.#skipWhitespace();

    const depth = this.#kinds.length;
    const top = depth - 1;
    this.#tags[top] = TAG_NONE;
    this.#fieldOf[top] = null;
    if (depth === 1) {
      if (this.#keyEquals(start, this.#type)) this.#tags[top] = TAG_ROOT_KEY;
    } else if (depth === 2 && this.#tags[0] === TAG_ROOT_KEY) {
      for (const name of FIELD_NAMES) {
        if (this.#keyEquals(start, name)) {
          this.#tags[top] = TAG_FIELD;
          this.#fieldOf[top] = name;
          break;
        }
      }
    }
    return true;
  }

  // Compares the string token at `start` (quotes included) with an ASCII name.
  #keyEquals(start: number, name: string): boolean {
    const bytes = this.#bytes;
    const end = this.#lastStringEnd;
    let escaped = false;
    for (let i = start + 1; i < end - 1; i++) {
      if (bytes[i] === 0x5c) escaped = true;
    }
    // A key written with escapes, such as "tr\u0069p", is decoded to compare.
    if (escaped) return JSON.parse(textDecoder.decode(bytes.subarray(start, end))) === name;
    if (end - start - 2 !== name.length) return false;
    for (let i = 0; i < name.length; i++) {
      if (bytes[start + 1 + i] !== name.charCodeAt(i)) return false;
    }
    return true;
  }

  // Reads a string token starting at the opening quote.
  #string(): boolean {
    const bytes = this.#bytes;
    let pos = this.#pos + 1;
    for (;;) {
      const c = bytes[pos];
      if (c === undefined || c < 0x20) return false;
      if (c === 0x22) break;
      if (c === 0x5c) {
        const e = bytes[pos + 1];
        if (e === 0x75 /* u */) {
          for (let i = 2; i < 6; i++) {
            if (!isHexDigit(bytes[pos + i])) return false;
          }
          pos += 6;
          continue;
        }
        if (e !== 0x22 && e !== 0x5c && e !== 0x2f && e !== 0x62 && e !== 0x66 && e !== 0x6e && e !== 0x72 && e !== 0x74) return false;
        pos += 2;
        continue;
      }
      pos++;
    }
    this.#pos = pos + 1;
    this.#lastStringEnd = this.#pos;
    return true;
  }

  // Reads a string, number, true, false or null.
  #primitive(): boolean {
    const c = this.#bytes[this.#pos];
    if (c === 0x22) return this.#string();
    if (c === 0x2d || isDigit(c)) return this.#number();
    if (c === 0x74) return this.#literal('true');
    if (c === 0x66) return this.#literal('false');
    if (c === 0x6e) return this.#literal('null');
    return false;
  }

  // -? (0 | [1-9][0-9]*) (.[0-9]+)? ([eE][+-]?[0-9]+)?
  #number(): boolean {
    const bytes = this.#bytes;
    let pos = this.#pos;
    if (bytes[pos] === 0x2d) pos++;
    if (bytes[pos] === 0x30) {
      pos++;
    } else if (isDigit(bytes[pos])) {
      while (isDigit(bytes[pos])) pos++;
    } else {
      return false;
    }
    if (bytes[pos] === 0x2e) {
      pos++;
      if (!isDigit(bytes[pos])) return false;
      while (isDigit(bytes[pos])) pos++;
    }
    if (bytes[pos] === 0x65 || bytes[pos] === 0x45) {
      pos++;
      if (bytes[pos] === 0x2b || bytes[pos] === 0x2d) pos++;
      if (!isDigit(bytes[pos])) return false;
      while (isDigit(bytes[pos])) pos++;
    }
    this.#pos = pos;
    return true;
  }

  #literal(word: string): boolean {
    for (let i = 0; i < word.length; i++) {
      if (this.#bytes[this.#pos + i] !== word.charCodeAt(i)) return false;
    }
    this.#pos += word.length;
    return true;
  }

  #skipWhitespace(): void {
    const bytes = this.#bytes;
    let pos = this.#pos;
    for (;;) {
      const c = bytes[pos];
      if (c !== 0x20 && c !== 0x0a && c !== 0x0d && c !== 0x09) break;
      pos++;
    }
    this.#pos = pos;
  }
}

function isDigit(c: number | undefined): boolean {
  return c !== undefined && c >= 0x30 && c <= 0x39;
}

function isHexDigit(c: number | undefined): boolean {
  return c !== undefined && ((c >= 0x30 && c <= 0x39) || (c >= 0x41 && c <= 0x46) || (c >= 0x61 && c <= 0x66));
}
