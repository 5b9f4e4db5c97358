// A strict JSON parser that keeps object member order and the exact text of numbers.
// JSON.parse cannot be used for headers: it reorders integer-like keys ("0", "12"), which changes
// tensor order, silently keeps the last of duplicate keys, and rounds integers beyond 2^53.

import { formatError } from "../errors.js";
import { quote } from "./printable.js";

export type JsonValue = string | JsonNumber | boolean | null | JsonValue[] | JsonObject;

/** A number kept as its source text; convert with {@link toSafeInteger}. */
export class JsonNumber {
  constructor(readonly raw: string) {}
}

/** An object whose members keep their order of appearance. Duplicate keys are rejected at parse time. */
export class JsonObject {
  readonly entries: [string, JsonValue][] = [];
  private readonly index = new Map<string, JsonValue>();

  get(key: string): JsonValue | undefined {
    return this.index.get(key);
  }

  has(key: string): boolean {
    return this.index.has(key);
  }

  /** @internal used by the parser */
  add(key: string, value: JsonValue): boolean {
    if (this.index.has(key)) return false;
    this.index.set(key, value);
    this.entries.push([key, value]);
    return true;
  }
}

const MAX_DEPTH = 128; // serde_json's recursion limit

/** Parses JSON text. @throws ERR_CT_FORMAT on any syntax error, duplicate key or lone surrogate. */
export function parseJson(text: string, what = "JSON"): JsonValue {
  let pos = 0;
  const fail = (msg: string): never => {
    throw formatError(`invalid ${what}: ${msg} at character ${pos}`);
  };
  const ws = () => {
    for (;;) {
      const c = text.charCodeAt(pos);
      if (c === 0x20 || c === 0x0a || c === 0x0d || c === 0x09) pos++;
      else return;
    }
  };
  const value = (depth: number): JsonValue => {
    ws();
    const c = text[pos];
    // serde_json's remaining_depth starts at 128 and may not reach 0: at most 127 nested containers.
    if ((c === "{" || c === "[") && depth + 1 >= MAX_DEPTH) fail("nesting too deep");
    if (c === "{") return object(depth);
    if (c === "[") return array(depth);
    if (c === '"') return string();
    if (c === "-" || (c !== undefined && c >= "0" && c <= "9")) return number();
    if (text.startsWith("true", pos)) {
      pos += 4;
      return true;
    }
    if (text.startsWith("false", pos)) {
      pos += 5;
      return false;
    }
    if (text.startsWith("null", pos)) {
      pos += 4;
      return null;
    }
    return fail(c === undefined ? "unexpected end" : `unexpected character ${quote(c)}`);
  };
  const object = (depth: number): JsonObject => {
    const obj = new JsonObject();
    pos++;
    ws();
    if (text[pos] === "}") {
      pos++;
      return obj;
    }
    for (;;) {
      ws();
      if (text[pos] !== '"') fail("expected a string key");
      const key = string();
      ws();
      if (text[pos] !== ":") fail("expected ':'");
      pos++;
      const v = value(depth + 1);
      if (!obj.add(key, v)) fail(`duplicate key ${quote(key)}`);
      ws();
      if (text[pos] === ",") {
        pos++;
        continue;
      }
      if (text[pos] === "}") {
        pos++;
        return obj;
      }
      fail("expected ',' or '}'");
    }
  };
  const array = (depth: number): JsonValue[] => {
    const arr: JsonValue[] = [];
    pos++;
    ws();
    if (text[pos] === "]") {
      pos++;
      return arr;
    }
    for (;;) {
      arr.push(value(depth + 1));
      ws();
      if (text[pos] === ",") {
        pos++;
        continue;
      }
      if (text[pos] === "]") {
        pos++;
        return arr;
      }
      fail("expected ',' or ']'");
    }
  };
  const NUMBER = /-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?/y;
  const number = (): JsonNumber => {
    NUMBER.lastIndex = pos;
    const m = NUMBER.exec(text);
    if (!m) return fail("invalid number");
    pos += m[0].length;
    return new JsonNumber(m[0]);
  };
  const string = (): string => {
    pos++; // opening quote
    let out = "";
    let start = pos;
    for (;;) {
      const c = text.charCodeAt(pos);
      if (Number.isNaN(c)) fail("unterminated string");
      if (c === 0x22) {
        out += text.slice(start, pos);
        pos++;
        return out;
      }
      if (c < 0x20) fail("control character in string");
      if (c !== 0x5c) {
        pos++;
        continue;
      }
      out += text.slice(start, pos);
      const e = text[pos + 1];
      pos += 2;
      switch (e) {
        case '"':
          out += '"';
          break;
        case "\\":
          out += "\\";
          break;
        case "/":
          out += "/";
          break;
        case "b":
          out += "\b";
          break;
        case "f":
          out += "\f";
          break;
        case "n":
          out += "\n";
          break;
        case "r":
          out += "\r";
          break;
        case "t":
          out += "\t";
          break;
        case "u": {
          const unit = hex4();
          if (unit >= 0xd800 && unit <= 0xdbff) {
            if (text[pos] !== "\\" || text[pos + 1] !== "u") fail("lone surrogate escape");
            pos += 2;
            const low = hex4();
            if (low < 0xdc00 || low > 0xdfff) fail("lone surrogate escape");
            out += String.fromCharCode(unit, low);
          } else if (unit >= 0xdc00 && unit <= 0xdfff) {
            fail("lone surrogate escape");
          } else {
            out += String.fromCharCode(unit);
          }
          break;
        }
        default:
          fail("invalid escape");
      }
      start = pos;
    }
  };
  const hex4 = (): number => {
    const h = text.slice(pos, pos + 4);
    if (!/^[0-9a-fA-F]{4}$/.test(h)) fail("invalid \\u escape");
    pos += 4;
    return parseInt(h, 16);
  };

  const result = value(0);
  ws();
  if (pos !== text.length) fail("trailing characters after JSON value");
  return result;
}

/** A non-negative integer that is exactly representable, or undefined. */
export function toSafeInteger(v: JsonValue | undefined): number | undefined {
  if (!(v instanceof JsonNumber) || !/^(0|[1-9][0-9]*)$/.test(v.raw)) return undefined;
  const n = Number(v.raw);
  return Number.isSafeInteger(n) ? n : undefined;
}
