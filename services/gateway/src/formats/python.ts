/**
 * What the DeepEyes reference environments show a model is often a CPython message:
 * `str()` of a `json.JSONDecodeError`, a `KeyError`, a `TypeError`, or `str()` of a
 * parsed JSON value. This module reproduces those texts from our own code, as
 * CPython 3.11 writes them (the C scanner of Lib/json, `_json.c`, that `json.loads`
 * uses; `str.strip`; `repr` of str, int, float, list and dict).
 *
 * Values keep Python's view of JSON: ints and floats apart (`1` vs `1.0`), ints of any
 * size, dict keys in insertion order (JavaScript objects reorder integer-like keys).
 */

import { errorMessage } from "../../../runtime/src/error-message.js";
import type { ParsedTurn } from "./format.js";

export type PyValue = null | boolean | PyInt | PyFloat | string | PyValue[] | PyDict;

export class PyInt {
  constructor(readonly value: bigint) {}
}

export class PyFloat {
  constructor(readonly value: number) {}
}

export class PyDict {
  constructor(readonly entries: Map<string, PyValue>) {}
  get(key: string): PyValue | undefined {
    return this.entries.get(key);
  }
  has(key: string): boolean {
    return this.entries.has(key);
  }
}

/** Python's `type(value).__name__`. */
export function pyTypeName(value: PyValue): string {
  if (value === null) return "NoneType";
  if (typeof value === "boolean") return "bool";
  if (typeof value === "string") return "str";
  if (value instanceof PyInt) return "int";
  if (value instanceof PyFloat) return "float";
  if (Array.isArray(value)) return "list";
  return "dict";
}

export function isPyDict(value: PyValue | undefined): value is PyDict {
  return value instanceof PyDict;
}

/** A number in Python's sense: int, float or bool (bool is an int subclass). */
export function pyNumber(value: PyValue): number | undefined {
  if (typeof value === "boolean") return value ? 1 : 0;
  if (value instanceof PyInt) return Number(value.value);
  if (value instanceof PyFloat) return value.value;
  return undefined;
}

/** The value as plain JSON-like JavaScript (what tools take as arguments). */
export function toJs(value: PyValue): unknown {
  if (value instanceof PyInt) return Number(value.value);
  if (value instanceof PyFloat) return value.value;
  if (Array.isArray(value)) return value.map(toJs);
  if (value instanceof PyDict) return Object.fromEntries([...value.entries].map(([key, item]) => [key, toJs(item)]));
  return value;
}

// ---- str.strip -------------------------------------------------------------------------

/** Characters for which CPython's `str.isspace()` is true (bidirectional WS/B/S or category Zs). */
const PY_WHITESPACE = new Set([
  0x09, 0x0a, 0x0b, 0x0c, 0x0d, 0x1c, 0x1d, 0x1e, 0x1f, 0x20, 0x85, 0xa0, 0x1680, 0x2000, 0x2001, 0x2002, 0x2003,
  0x2004, 0x2005, 0x2006, 0x2007, 0x2008, 0x2009, 0x200a, 0x2028, 0x2029, 0x202f, 0x205f, 0x3000,
]);

export function pyIsSpace(char: string): boolean {
  return PY_WHITESPACE.has(char.charCodeAt(0));
}

/** Python's `str.strip()` without arguments (JavaScript's `trim` strips a different set). */
export function pyStrip(text: string): string {
  let start = 0;
  let end = text.length;
  while (start < end && PY_WHITESPACE.has(text.charCodeAt(start))) start += 1;
  while (end > start && PY_WHITESPACE.has(text.charCodeAt(end - 1))) end -= 1;
  return text.slice(start, end);
}

// ---- json.loads --------------------------------------------------------------------------

/** `json.JSONDecodeError` (or the RecursionError the C scanner raises); `message` is its `str()`. */
export class PyJsonError extends Error {}

/** Python indexes strings by code point; JavaScript by UTF-16 unit. */
function codePointIndex(text: string, index: number): number {
  let surrogatePairs = 0;
  for (let i = 0; i < index - 1; i += 1) {
    const unit = text.charCodeAt(i);
    if (unit >= 0xd800 && unit <= 0xdbff) {
      const next = text.charCodeAt(i + 1);
      if (next >= 0xdc00 && next <= 0xdfff) {
        surrogatePairs += 1;
        i += 1;
      }
    }
  }
  return index - surrogatePairs;
}

function decodeError(message: string, doc: string, index: number): PyJsonError {
  const before = doc.slice(0, index);
  const line = before.split("\n").length;
  const pos = codePointIndex(doc, index);
  const lastNewline = before.lastIndexOf("\n");
  const column = pos - (lastNewline < 0 ? -1 : codePointIndex(doc, lastNewline));
  return new PyJsonError(`${message}: line ${line} column ${column} (char ${pos})`);
}

/** CPython's default recursion limit, less the frames below json.loads in the reference (approximate). */
const MAX_PY_JSON_DEPTH = 980;

const isJsonSpace = (char: string | undefined) => char === " " || char === "\t" || char === "\n" || char === "\r";
const isDigit = (char: string | undefined) => char !== undefined && char >= "0" && char <= "9";

/** Raised where a value was expected: `StopIteration(idx)` in the C scanner. */
class ExpectingValue {
  constructor(readonly index: number) {}
}

class Scanner {
  private depth = 0;
  constructor(private readonly s: string) {}

  private skip(index: number): number {
    let i = index;
    while (isJsonSpace(this.s[i])) i += 1;
    return i;
  }

  scan(index: number): [PyValue, number] {
    const s = this.s;
    if (index >= s.length) throw new ExpectingValue(index);
    const char = s[index];
    switch (char) {
      case '"':
        return this.string(index + 1);
      case "{":
        return this.nested("object", () => this.object(index + 1));
      case "[":
        return this.nested("array", () => this.array(index + 1));
      case "n":
        if (s.startsWith("null", index)) return [null, index + 4];
        break;
      case "t":
        if (s.startsWith("true", index)) return [true, index + 4];
        break;
      case "f":
        if (s.startsWith("false", index)) return [false, index + 5];
        break;
      case "N":
        if (s.startsWith("NaN", index)) return [new PyFloat(Number.NaN), index + 3];
        break;
      case "I":
        if (s.startsWith("Infinity", index)) return [new PyFloat(Number.POSITIVE_INFINITY), index + 8];
        break;
      case "-":
        if (s.startsWith("-Infinity", index)) return [new PyFloat(Number.NEGATIVE_INFINITY), index + 9];
        break;
    }
    return this.number(index);
  }

  private nested(kind: "object" | "array", parse: () => [PyValue, number]): [PyValue, number] {
    this.depth += 1;
    if (this.depth > MAX_PY_JSON_DEPTH) {
      throw new PyJsonError(`maximum recursion depth exceeded while decoding a JSON ${kind} from a unicode string`);
    }
    try {
      return parse();
    } finally {
      this.depth -= 1;
    }
  }

  private number(start: number): [PyValue, number] {
    const s = this.s;
    let i = start;
    if (s[i] === "-") {
      i += 1;
      if (i >= s.length) throw new ExpectingValue(start);
    }
    if (s[i] !== undefined && (s[i] as string) >= "1" && (s[i] as string) <= "9") {
      i += 1;
      while (isDigit(s[i])) i += 1;
    } else if (s[i] === "0") {
      i += 1;
    } else {
      throw new ExpectingValue(start);
    }
    let isFloat = false;
    if (s[i] === "." && isDigit(s[i + 1])) {
      isFloat = true;
      i += 2;
      while (isDigit(s[i])) i += 1;
    }
    if (i < s.length - 1 && (s[i] === "e" || s[i] === "E")) {
      const exponentStart = i;
      i += 1;
      if (i < s.length - 1 && (s[i] === "-" || s[i] === "+")) i += 1;
      while (isDigit(s[i])) i += 1;
      if (isDigit(s[i - 1])) isFloat = true;
      else i = exponentStart;
    }
    const text = s.slice(start, i);
    return [isFloat ? new PyFloat(Number(text)) : new PyInt(BigInt(text)), i];
  }

  /** `end` is the index after the opening quote. */
  private string(end: number): [string, number] {
    const s = this.s;
    const begin = end - 1;
    const chunks: string[] = [];
    let i = end;
    for (;;) {
      let next = i;
      for (; next < s.length; next += 1) {
        const unit = s.charCodeAt(next);
        if (unit === 0x22 || unit === 0x5c) break;
        if (unit <= 0x1f) throw decodeError("Invalid control character at", s, next);
      }
      if (next >= s.length) throw decodeError("Unterminated string starting at", s, begin);
      chunks.push(s.slice(i, next));
      if (s[next] === '"') return [chunks.join(""), next + 1];
      next += 1;
      if (next === s.length) throw decodeError("Unterminated string starting at", s, begin);
      const escaped = s[next] as string;
      if (escaped !== "u") {
        const simple: Record<string, string> = {
          '"': '"',
          "\\": "\\",
          "/": "/",
          b: "\b",
          f: "\f",
          n: "\n",
          r: "\r",
          t: "\t",
        };
        const decoded = simple[escaped];
        if (decoded === undefined) throw decodeError("Invalid \\escape", s, next - 1);
        chunks.push(decoded);
        i = next + 1;
        continue;
      }
      next += 1;
      let stop = next + 4;
      if (stop >= s.length) throw decodeError("Invalid \\uXXXX escape", s, next - 1);
      const hex = (from: number, to: number): number => {
        const digits = s.slice(from, to);
        if (!/^[0-9a-fA-F]{4}$/.test(digits)) throw decodeError("Invalid \\uXXXX escape", s, to - 5);
        return Number.parseInt(digits, 16);
      };
      let code = hex(next, stop);
      next = stop;
      if (code >= 0xd800 && code <= 0xdbff && stop + 6 < s.length && s[next] === "\\" && s[next + 1] === "u") {
        stop += 6;
        const low = hex(next + 2, stop);
        if (low >= 0xdc00 && low <= 0xdfff) {
          code = 0x10000 + ((code - 0xd800) << 10) + (low - 0xdc00);
        } else {
          stop -= 6;
        }
      }
      chunks.push(String.fromCodePoint(code));
      i = stop;
    }
  }

  private object(start: number): [PyValue, number] {
    const s = this.s;
    const entries = new Map<string, PyValue>();
    let i = this.skip(start);
    if (s[i] !== "}") {
      for (;;) {
        if (s[i] !== '"') throw decodeError("Expecting property name enclosed in double quotes", s, i);
        const [key, afterKey] = this.string(i + 1);
        i = this.skip(afterKey);
        if (s[i] !== ":") throw decodeError("Expecting ':' delimiter", s, i);
        i = this.skip(i + 1);
        const [value, afterValue] = this.scan(i);
        // Python dicts keep a repeated key at its first position with the last value: so does Map.set.
        entries.set(key, value);
        i = this.skip(afterValue);
        if (s[i] === "}") break;
        if (s[i] !== ",") throw decodeError("Expecting ',' delimiter", s, i);
        i = this.skip(i + 1);
      }
    }
    return [new PyDict(entries), i + 1];
  }

  private array(start: number): [PyValue, number] {
    const s = this.s;
    const items: PyValue[] = [];
    let i = this.skip(start);
    if (s[i] !== "]") {
      for (;;) {
        const [value, after] = this.scan(i);
        items.push(value);
        i = this.skip(after);
        if (s[i] === "]") break;
        if (s[i] !== ",") throw decodeError("Expecting ',' delimiter", s, i);
        i = this.skip(i + 1);
      }
    }
    return [items, i + 1];
  }
}

/** `json.loads(text)` as CPython 3.11 runs it; throws PyJsonError with CPython's exact message. */
/**
 * The DeepEyes environments' `json.loads(action.strip())` of a `<tool_call>` body: the value,
 * or the error both show the model (`Error: Invalid tool call format: ... Error: <json message>`).
 */
export function loadReferenceToolCall(action: string): { value: PyValue; stripped: string } | { error: ParsedTurn } {
  const stripped = pyStrip(action);
  try {
    return { value: pyJsonLoads(stripped), stripped };
  } catch (error) {
    return {
      error: {
        kind: "parse_error",
        message: `Error: Invalid tool call format: ${stripped}. Error: ${errorMessage(error)}`,
      },
    };
  }
}

export function pyJsonLoads(text: string): PyValue {
  if (text.startsWith("\ufeff")) throw decodeError("Unexpected UTF-8 BOM (decode using utf-8-sig)", text, 0);
  const scanner = new Scanner(text);
  let start = 0;
  while (isJsonSpace(text[start])) start += 1;
  let value: PyValue;
  let end: number;
  try {
    [value, end] = scanner.scan(start);
  } catch (error) {
    if (error instanceof ExpectingValue) throw decodeError("Expecting value", text, error.index);
    throw error;
  }
  while (isJsonSpace(text[end])) end += 1;
  if (end !== text.length) throw decodeError("Extra data", text, end);
  return value;
}

// ---- str() and repr() --------------------------------------------------------------------

/** Not printable for `str.isprintable()`: other (C*) and separator (Z*) categories, except the space. */
const NON_PRINTABLE = /[\p{Cc}\p{Cf}\p{Cs}\p{Co}\p{Cn}\p{Zl}\p{Zp}\p{Zs}]/u;

function reprChar(char: string, quote: string): string {
  if (char === quote || char === "\\") return `\\${char}`;
  if (char === "\n") return "\\n";
  if (char === "\r") return "\\r";
  if (char === "\t") return "\\t";
  if (char === " " || !NON_PRINTABLE.test(char)) return char;
  const code = char.codePointAt(0) as number;
  if (code < 0x100) return `\\x${code.toString(16).padStart(2, "0")}`;
  if (code < 0x10000) return `\\u${code.toString(16).padStart(4, "0")}`;
  return `\\U${code.toString(16).padStart(8, "0")}`;
}

/** `repr(str)`: single quotes unless the text holds a single quote and no double quote. */
export function pyReprString(text: string): string {
  const quote = text.includes("'") && !text.includes('"') ? '"' : "'";
  let out = quote;
  for (const char of text) out += reprChar(char, quote);
  return out + quote;
}

/** `repr(float)`: the shortest round-trip digits, scientific below 1e-4 and from 1e16. */
export function pyReprFloat(value: number): string {
  if (Number.isNaN(value)) return "nan";
  if (value === Number.POSITIVE_INFINITY) return "inf";
  if (value === Number.NEGATIVE_INFINITY) return "-inf";
  if (value === 0) return Object.is(value, -0) ? "-0.0" : "0.0";
  const sign = value < 0 ? "-" : "";
  const [mantissa, exponentText] = Math.abs(value).toExponential().split("e") as [string, string];
  const digits = mantissa.replace(".", "");
  const exponent = Number(exponentText);
  const decimalPoint = exponent + 1;
  if (decimalPoint > -4 && decimalPoint <= 16) {
    if (decimalPoint <= 0) return `${sign}0.${"0".repeat(-decimalPoint)}${digits}`;
    if (decimalPoint >= digits.length) return `${sign}${digits}${"0".repeat(decimalPoint - digits.length)}.0`;
    return `${sign}${digits.slice(0, decimalPoint)}.${digits.slice(decimalPoint)}`;
  }
  const fraction = digits.length > 1 ? `.${digits.slice(1)}` : "";
  const exponentSign = exponent < 0 ? "-" : "+";
  return `${sign}${digits[0]}${fraction}e${exponentSign}${String(Math.abs(exponent)).padStart(2, "0")}`;
}

/** `repr(value)`. */
export function pyRepr(value: PyValue): string {
  if (value === null) return "None";
  if (value === true) return "True";
  if (value === false) return "False";
  if (typeof value === "string") return pyReprString(value);
  if (value instanceof PyInt) return value.value.toString();
  if (value instanceof PyFloat) return pyReprFloat(value.value);
  if (Array.isArray(value)) return `[${value.map(pyRepr).join(", ")}]`;
  return `{${[...value.entries].map(([key, item]) => `${pyReprString(key)}: ${pyRepr(item)}`).join(", ")}}`;
}

/** `str(value)`: a string as itself, anything else as its repr. */
export function pyStr(value: PyValue): string {
  return typeof value === "string" ? value : pyRepr(value);
}

/**
 * `str(e)` of the TypeError CPython raises for `value[key]` with a string key on a
 * value that is not a dict (3.11 wording).
 */
export function pySubscriptError(value: PyValue): string {
  if (Array.isArray(value)) return "list indices must be integers or slices, not str";
  if (typeof value === "string") return "string indices must be integers, not 'str'";
  return `'${pyTypeName(value)}' object is not subscriptable`;
}

/** `str(KeyError(key))`. */
export function pyKeyError(key: string): string {
  return pyReprString(key);
}

/**
 * `container[key]` as Python evaluates it on a parsed JSON value: the item, or the
 * `str()` of the exception raised (KeyError or TypeError).
 */
export function pySubscript(container: PyValue, key: string): { value: PyValue } | { error: string } {
  if (!isPyDict(container)) return { error: pySubscriptError(container) };
  const value = container.get(key);
  return value === undefined ? { error: pyKeyError(key) } : { value };
}
