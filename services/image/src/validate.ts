import { InvalidArgumentError } from "../../runtime/src/index.js";

/**
 * Argument checks for the edge of the service. Every message names the field
 * (as the proto spells it, with its position in the pipeline) and the allowed
 * range, so a caller, or a model reading the error, knows exactly what to fix.
 */

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
