import { InvalidArgumentError, type ToolplaneErrorOptions } from "./errors.js";

/**
 * Argument checks for the edge of a service, in one wording (as sharp's
 * `invalidParameterError`): every message names the field, as the proto or the
 * tool's schema spells it, and the allowed range or limit, so a caller, or a
 * model reading the error, knows exactly what to fix.
 */

/** The one wording of a limit: "<subject>, over the limit of <limit>[ (<VARIABLE>)]". */
export function overLimit(subject: string, limit: number | string, variable?: string): string {
  return `${subject}, over the limit of ${limit}${variable ? ` (${variable})` : ""}`;
}

/**
 * INVALID_ARGUMENT for a value over its limit: `limitError("calls", 1025, 1024, "items")`
 * says "calls has 1025 items, over the limit of 1024".
 */
export function limitError(
  field: string,
  actual: number,
  limit: number,
  unit: string,
  shown?: string,
  options: ToolplaneErrorOptions & { variable?: string } = {},
): InvalidArgumentError {
  const { variable, ...errorOptions } = options;
  const subject = shown === undefined ? `${field} has ${actual} ${unit}` : `${field} is ${shown} = ${actual} ${unit}`;
  return new InvalidArgumentError(overLimit(subject, limit, variable), errorOptions);
}

export function requireFinite(field: string, value: number): number {
  if (!Number.isFinite(value)) throw new InvalidArgumentError(`${field} must be finite, got ${value}`);
  return value;
}

export interface RangeOptions {
  /** The lower bound itself is not allowed. */
  minExclusive?: boolean;
}

/** A finite number within [min, max] (or (min, max] with minExclusive). */
export function requireRange(
  field: string,
  value: number,
  min: number,
  max: number,
  options: RangeOptions = {},
): number {
  requireFinite(field, value);
  const belowMin = options.minExclusive ? value <= min : value < min;
  if (belowMin || value > max) {
    const range = `${options.minExclusive ? "(" : "["}${min}, ${max}]`;
    throw new InvalidArgumentError(`${field} must be in ${range}, got ${value}`);
  }
  return value;
}

/** A whole number within [min, max]. */
export function requireInteger(field: string, value: number, min: number, max: number): number {
  if (!Number.isInteger(value) || value < min || value > max) {
    throw new InvalidArgumentError(`${field} must be an integer in [${min}, ${max}], got ${value}`);
  }
  return value;
}

/**
 * Length in code points: how a model (and a person) counts characters. An emoji
 * or a CJK extension character is one, where `String.length` counts two UTF-16
 * units. Every "characters" limit is counted this way.
 */
export function codePointLength(text: string): number {
  let count = 0;
  for (const _ of text) count += 1;
  return count;
}

/** Keys that name or reach an object's prototype: refused in arguments (docs/security.md, "Hostile input"). */
const PROTOTYPE_KEYS = new Set(["__proto__", "constructor", "prototype"]);

/**
 * Checks a tool call's arguments, as JSON.parse (or a format's parser) built
 * them, before any code reads them: INVALID_ARGUMENT naming the path when they
 * nest deeper than `maxDepth`, when a key is `__proto__`, `constructor` or
 * `prototype`, or when an object is not a plain one (its prototype was set).
 * Iterative, so hostile nesting cannot overflow the stack.
 */
export function requireSafeArguments<T extends object>(value: T, field: string, maxDepth: number): T {
  const pending: Array<[unknown, string, number]> = [[value, field, 1]];
  while (pending.length > 0) {
    const [item, path, depth] = pending.pop() as [unknown, string, number];
    if (typeof item !== "object" || item === null) continue;
    if (depth > maxDepth) throw new InvalidArgumentError(`${field} nests deeper than the limit of ${maxDepth} levels`);
    const isArray = Array.isArray(item);
    const prototype = Object.getPrototypeOf(item);
    if (prototype !== null && prototype !== (isArray ? Array.prototype : Object.prototype)) {
      throw new InvalidArgumentError(`${path} is not a plain JSON ${isArray ? "array" : "object"}`);
    }
    for (const [key, child] of Object.entries(item)) {
      if (!isArray && PROTOTYPE_KEYS.has(key)) {
        throw new InvalidArgumentError(`${path} has the key "${key}", which is not allowed in arguments`);
      }
      pending.push([child, isArray ? `${path}[${key}]` : `${path}.${key}`, depth + 1]);
    }
  }
  return value;
}
