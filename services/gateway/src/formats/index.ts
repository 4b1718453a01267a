/**
 * The registry of model formats Step serves. Adding a format is one module in this
 * folder (a `ModelFormat`) and one line in FORMATS.
 */
import {
  Fidelity as ProtoFidelity,
  type ModelFormat as ProtoModelFormat,
} from "../../../../generated/toolplane/gateway/v1/gateway.js";
import { errorMessage } from "../../../runtime/src/error-message.js";
import { deepEyesV1 } from "./deepeyes-v1.js";
import { deepEyesV2 } from "./deepeyes-v2.js";
import type { Fidelity, ModelFormat, ParsedTurn, ParseOptions } from "./format.js";
import { hermes } from "./hermes.js";
import { openAi } from "./openai.js";

export const FORMATS: readonly ModelFormat[] = [deepEyesV2, deepEyesV1, hermes, openAi];

const BY_PROTO = new Map(FORMATS.map((format) => [format.protoEnum, format]));
const BY_NAME = new Map(FORMATS.map((format) => [format.name, format]));

export function formatByProto(value: ProtoModelFormat): ModelFormat | undefined {
  return BY_PROTO.get(value);
}

export function formatByName(name: string): ModelFormat | undefined {
  return BY_NAME.get(name);
}

/** "DEEPEYES_V2, DEEPEYES_V1, ..." for messages, from the registry. */
export function formatEnumNames(enumName: (value: ProtoModelFormat) => string): string {
  return FORMATS.map((format) => enumName(format.protoEnum).replace(/^MODEL_FORMAT_/, "")).join(", ");
}

/** The fidelity a request asks for, or the format's default. */
export function fidelityOf(format: ModelFormat, requested: ProtoFidelity | undefined): Fidelity {
  if (requested === ProtoFidelity.FIDELITY_REFERENCE) return "reference";
  if (requested === ProtoFidelity.FIDELITY_STRICT) return "strict";
  return format.defaultFidelity;
}

/**
 * Parses one turn with a format. Never throws: the parsers are total by construction
 * (and fuzzed); a parser bug would still be a model-visible parse error, not a crash.
 */
export function parseWith(format: ModelFormat, text: string, options: ParseOptions): ParsedTurn {
  try {
    return format.parse(text, options);
  } catch (error) {
    return { kind: "parse_error", message: `Error: Invalid tool call format: ${errorMessage(error)}` };
  }
}

/** Parses one turn of model text in the named format (tests, tools), with the format's defaults. */
export function parseTurn(name: string, text: string, options: Partial<ParseOptions> = {}): ParsedTurn {
  const format = formatByName(name);
  if (format === undefined) return { kind: "parse_error", message: `Error: unknown format ${name}` };
  return parseWith(format, text, {
    fidelity: options.fidelity ?? format.defaultFidelity,
    sampleIndex: options.sampleIndex ?? "",
  });
}

export { DEEPEYES_V1_USER_PROMPT, referenceZoomBox } from "./deepeyes-v1.js";
export type * from "./format.js";
export * from "./observations.js";
export { lastPythonFence, nestsDeeperThan } from "./text.js";
