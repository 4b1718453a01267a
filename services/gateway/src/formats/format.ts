import type { ModelFormat as ProtoModelFormat } from "../../../../generated/toolplane/gateway/v1/gateway.js";

/**
 * What one model format is to the gateway: how to read a turn of the model's text
 * and how to write the observation of the calls it made. Each format is one module
 * in this folder, listed once in `index.ts`.
 */
export interface ModelFormat {
  /** Lower-case name used in docs, logs and tests, e.g. "deepeyes-v2". */
  name: string;
  /** The proto enum value that selects it in StepRequest.format. */
  protoEnum: ProtoModelFormat;
  /** Fidelity when the request leaves it unspecified. */
  defaultFidelity: Fidelity;
  /** Parses one turn. Pure and total: never throws, whatever the text (the parsers are fuzzed). */
  parse(text: string, options: ParseOptions): ParsedTurn;
  /** The observation of a step whose calls all ran (or failed), in call order. */
  render(calls: RenderedCall[], options: ParseOptions): StepRender;
}

/** `reference`: as the format's reference environment, byte for byte; `strict`: this project's stricter rules. */
export type Fidelity = "reference" | "strict";

export interface ParseOptions {
  fidelity: Fidelity;
  /** The reference's sample index, quoted by some DeepEyesV2 error texts. */
  sampleIndex: string;
}

/**
 * How the gateway runs one parsed call when its format's reference environment did
 * things its own way. Every field is optional: absent means the gateway's default.
 */
export interface CallHints {
  /** Python code: strip, re-indent by `:` and run autopep8 (aggressive 2), even on valid code. */
  referenceIndentation?: boolean;
  /** Deadline of the call when the request sets none (ms). */
  defaultTimeoutMs?: number;
  /** How the call's images are resized for the model (default `qwen-vl`). */
  imageResize?: ImageResize;
  /** A code session created by this call binds only the first n input images. */
  boundInputImages?: number;
  /** search: send the query as given, empty included (the backend decides). */
  anyQuery?: boolean;
  /** image_zoom_in_tool: DeepEyes v1's own box check (short side > 30 px) and a plain crop, no enlargement. */
  referenceZoom?: boolean;
}

/**
 * `qwen-vl`: this project's rule for every tool image (aspect ratio > 200 squashed to
 * 150, short side < 32 px upscaled); `deepeyes-v2`: the DeepEyesV2 client's own
 * arithmetic (`maybe_resize_image`); `none`: shown as the tool returned it.
 */
export type ImageResize = "qwen-vl" | "deepeyes-v2" | "none";

/** One tool call found in model text. `arguments` is always a plain object. */
export interface ParsedCall {
  /** The call id the model gave (OpenAI) or a positional one ("call_0"). */
  callId: string;
  name: string;
  arguments: Record<string, unknown>;
  hints?: CallHints;
}

/** Why the reference environment ends the episode (StepResponse.episode_end_reason). */
export type EpisodeEndReason = "no_code" | "no_tool_call" | "code_failed" | "search_failed";

export type ParsedTurn =
  /** The model answered; the episode ends. */
  | { kind: "answer"; answer: string }
  /** Calls to run, in the order the model wrote them. */
  | { kind: "calls"; calls: ParsedCall[] }
  /** A malformed call; `message` is the exact text the model is shown. */
  | { kind: "parse_error"; message: string }
  /** The reference ends the episode on this text; `observation` is what it shows (often nothing). */
  | { kind: "episode_end"; reason: EpisodeEndReason; observation: string }
  /** Neither a call nor an answer. */
  | { kind: "no_call" };

/** One call's result as the format sees it. */
export interface RenderedCall {
  callId: string;
  name: string;
  /** ToolResult.text (empty for infrastructure failures, which are never shown). */
  text: string;
  /** True when `text` is a model-visible error rather than the tool's output. */
  isError: boolean;
  status: "ok" | "model_error" | "infra_error";
}

export type StepRender =
  /** Append `text` (and, when `showImages`, the calls' images) and continue. */
  | { kind: "observation"; text: string; showImages: boolean }
  /** The reference ends the episode after these calls. */
  | { kind: "episode_end"; reason: EpisodeEndReason; observation: string }
  /** A call failed for infrastructure reasons and the format has nothing to show: the gateway's INFRA_ERROR. */
  | { kind: "infrastructure" };

/** True when any call failed for infrastructure reasons. */
export function anyInfrastructureFailure(calls: RenderedCall[]): boolean {
  return calls.some((call) => call.status === "infra_error");
}
