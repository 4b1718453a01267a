import {
  CoordinateUnit,
  FlipOp_Axis,
  ImageFormat,
  Operation,
  OutputOptions,
  ResizeOp_Fit,
} from "../../../generated/toolplane/image/v1/image.js";
import { InvalidArgumentError } from "./errors.js";

/**
 * Image operations as JSON (the gateway's image_process tool, JavaScript's
 * image.process): one source for the kind list and one strict parser, so an
 * operation added to the proto is reachable from every path and a misspelled
 * field is rejected on every path.
 */

export type OperationKind = keyof Operation;

/** The kinds in proto order, read from the generated message: the proto's `oneof op` is the only list. */
export const OPERATION_KINDS: readonly OperationKind[] = Object.freeze(
  Object.keys(Operation.fromPartial({})) as OperationKind[],
);

/** Enum fields a caller may write by their short name ("pixels" for COORDINATE_UNIT_PIXELS). */
const ENUM_FIELDS: Record<string, Record<string, string | number>> = {
  unit: CoordinateUnit,
  fit: ResizeOp_Fit,
  axis: FlipOp_Axis,
  format: ImageFormat,
};

/** "COORDINATE_UNIT_" from the enum's UNSPECIFIED value, as the proto style guide names it. */
function enumPrefix(values: Record<string, string | number>): string {
  const unspecified = Object.keys(values).find((name) => name.endsWith("_UNSPECIFIED")) ?? "";
  return unspecified.slice(0, -"UNSPECIFIED".length);
}

const ENUM_PREFIXES: Record<string, string> = Object.fromEntries(
  Object.entries(ENUM_FIELDS).map(([field, values]) => [field, enumPrefix(values)]),
);

const camelCase = (key: string) => key.replace(/_([a-z0-9])/g, (_match, letter: string) => letter.toUpperCase());

/** snake_case keys to the proto JSON (camelCase) names and short enum names to full ones. */
function normalise(value: unknown, key = ""): unknown {
  if (Array.isArray(value)) return value.map((item) => normalise(item));
  if (typeof value === "object" && value !== null) {
    return Object.fromEntries(
      Object.entries(value).map(([name, inner]) => [camelCase(name), normalise(inner, camelCase(name))]),
    );
  }
  const prefix = ENUM_PREFIXES[key];
  if (prefix !== undefined && typeof value === "string") {
    const upper = value.toUpperCase();
    return upper.startsWith(prefix) ? upper : `${prefix}${upper}`;
  }
  return value;
}

/**
 * ts-proto's fromJSON ignores unknown fields and maps unknown enum names to -1:
 * both would silently do something other than what was asked, so both are
 * rejected with the path of the offending field.
 */
function checkParsed(input: unknown, parsed: unknown, path: string): string | undefined {
  if (parsed === -1) return `${path} has an unknown value ${JSON.stringify(input)}`;
  if (Array.isArray(input)) {
    if (!Array.isArray(parsed)) return `${path} must not be a list`;
    for (const [index, item] of input.entries()) {
      const problem = checkParsed(item, parsed[index], `${path}[${index}]`);
      if (problem) return problem;
    }
    return undefined;
  }
  if (typeof input !== "object" || input === null) return undefined;
  if (typeof parsed !== "object" || parsed === null) return `${path} must be a number, string or boolean`;
  for (const [key, inner] of Object.entries(input)) {
    if (!(key in parsed)) {
      return `${path} has an unknown field ${JSON.stringify(key)} (known: ${Object.keys(parsed).join(", ")})`;
    }
    const problem = checkParsed(inner, (parsed as Record<string, unknown>)[key], `${path}.${key}`);
    if (problem) return problem;
  }
  return undefined;
}

const isObject = (value: unknown): value is Record<string, unknown> =>
  typeof value === "object" && value !== null && !Array.isArray(value);

/** One operation from JSON (proto JSON names or snake_case, enums by full or short name); `field` names it in errors. */
export function parseOperation(raw: unknown, field: string): Operation {
  const names = isObject(raw) ? Object.keys(raw) : [];
  if (names.length !== 1 || !(OPERATION_KINDS as readonly string[]).includes(camelCase(names[0] as string))) {
    const got = isObject(raw) ? `got ${names.length} key(s)${names.length ? `: ${names.join(", ")}` : ""}` : "";
    throw new InvalidArgumentError(
      `${field} must be an object with exactly one of: ${OPERATION_KINDS.join(", ")}${got ? ` (${got})` : ""}`,
    );
  }
  const normalised = normalise(raw);
  const operation = Operation.fromJSON(normalised);
  const problem = checkParsed(normalised, operation, field);
  if (problem) throw new InvalidArgumentError(problem);
  return operation;
}

/** Output options from JSON, as strictly as operations. */
export function parseOutputOptions(raw: unknown, field: string): OutputOptions {
  if (!isObject(raw)) throw new InvalidArgumentError(`${field} must be an object`);
  const normalised = normalise(raw);
  const output = OutputOptions.fromJSON(normalised);
  const problem = checkParsed(normalised, output, field);
  if (problem) throw new InvalidArgumentError(problem);
  return output;
}
