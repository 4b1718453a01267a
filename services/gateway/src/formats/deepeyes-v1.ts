/**
 * DeepEyes v1: `<tool_call>{"name": "image_zoom_in_tool", "arguments": {"bbox_2d": [...]}}</tool_call>`
 * crops the original image; `<answer>` ends the episode.
 *
 * Reference: Visual-Agent/DeepEyes @ 6c5e79671dbff958a6f9d44848ba2ca87854f0b0,
 * verl/workers/agent/envs/mm_process_engine/visual_toolbox_v2.py (`VisualToolBoxV2.execute`,
 * `maybe_resize_bbox`, `validate_bbox`) and prompt.py (`USER_PROMPT_V2`).
 */
import { ModelFormat as ProtoModelFormat } from "../../../../generated/toolplane/gateway/v1/gateway.js";
import {
  anyInfrastructureFailure,
  type CallHints,
  type ModelFormat,
  type ParsedCall,
  type ParsedTurn,
  type ParseOptions,
  type RenderedCall,
  type StepRender,
} from "./format.js";
import { ZOOM_INVALID, ZOOM_TOOL } from "./observations.js";
import { loadReferenceToolCall, type PyValue, pyNumber, pyStr, pySubscript, pyTypeName } from "./python.js";
import { blocks, lastAnswer, lastBlock } from "./text.js";
import { parseJsonCall } from "./tool-call-json.js";

/**
 * The prompt DeepEyes v1 appends after every zoom result, inside the tool response,
 * so the model keeps the format it was trained with.
 */
export const DEEPEYES_V1_USER_PROMPT =
  "\nThink first, call **image_zoom_in_tool** if needed, then answer. Format strictly as:  <think>...</think>  <tool_call>...</tool_call> (if tools needed)  <answer>...</answer> ";

const REFERENCE_HINTS: CallHints = { referenceZoom: true, imageResize: "none" };

/** Where `maybe_resize_bbox(*bbox)` raises before any arithmetic. */
const BOX_METHOD = "VisualToolBoxV2.maybe_resize_bbox()";
/** CPython names the function with its module for a failed `*` unpacking. */
const BOX_MODULE = "verl.workers.agent.envs.mm_process_engine.visual_toolbox_v2";
const BOX_PARAMETERS = ["left", "top", "right", "bottom"];

/** CPython's "missing N required positional argument(s): 'a', 'b', and 'c'". */
function missingArguments(names: string[]): string {
  const quoted = names.map((name) => `'${name}'`);
  const list =
    quoted.length === 1
      ? quoted[0]
      : quoted.length === 2
        ? `${quoted[0]} and ${quoted[1]}`
        : `${quoted.slice(0, -1).join(", ")}, and ${quoted[quoted.length - 1]}`;
  const noun = names.length === 1 ? "argument" : "arguments";
  return `${BOX_METHOD} missing ${names.length} required positional ${noun}: ${list}`;
}

/** `*bbox` unpacked: the items, or the TypeError text. */
function unpackBox(bbox: PyValue): number[] | string {
  let items: PyValue[];
  if (Array.isArray(bbox)) items = bbox;
  else if (typeof bbox === "string") items = [...bbox];
  else if (bbox !== null && typeof bbox === "object" && "entries" in bbox) items = [...bbox.entries.keys()];
  else return `${BOX_MODULE}.${BOX_METHOD} argument after * must be an iterable, not ${pyTypeName(bbox)}`;
  if (items.length < 4) return missingArguments(BOX_PARAMETERS.slice(items.length));
  if (items.length > 4) return `${BOX_METHOD} takes 5 positional arguments but ${items.length + 1} were given`;
  // max(0, left), max(0, top), min(width, right), min(height, bottom): the comparison raises for non-numbers.
  const numbers: number[] = [];
  for (const [index, item] of items.entries()) {
    const value = pyNumber(item);
    if (value === undefined)
      return `'${index < 2 ? ">" : "<"}' not supported between instances of '${pyTypeName(item)}' and 'int'`;
    numbers.push(value);
  }
  return numbers;
}

/** Python's `round()` of a float: half to even. */
function pyRound(value: number): number {
  const floor = Math.floor(value);
  const fraction = value - floor;
  if (fraction < 0.5) return floor;
  if (fraction > 0.5) return floor + 1;
  return floor % 2 === 0 ? floor : floor + 1;
}

/** Python's `max(bound, value)`: the value only when it compares greater (never a NaN, unlike Math.max). */
function pyMax(bound: number, value: number): number {
  // biome-ignore lint/complexity/useMathMinMax: Math.max gives NaN for a NaN value, Python keeps the bound.
  return value > bound ? value : bound;
}

/** Python's `min(bound, value)`. */
function pyMin(bound: number, value: number): number {
  // biome-ignore lint/complexity/useMathMinMax: as pyMax.
  return value < bound ? value : bound;
}

function validBox(left: number, top: number, right: number, bottom: number): boolean {
  if (!(left < right && bottom > top)) return false;
  const height = bottom - top;
  const width = right - left;
  return Math.max(height, width) / Math.min(height, width) <= 100 && Math.min(height, width) > 30;
}

/**
 * `maybe_resize_bbox` then PIL's `crop` rounding: the integer crop box the reference
 * cuts from an image of `width` x `height`, or undefined for "ZOOM IN ARGUMENTS ARE INVALID".
 * Comparisons as Python's `max`/`min` make them (a NaN never replaces the bound).
 */
export function referenceZoomBox(
  box: readonly number[],
  width: number,
  height: number,
): [number, number, number, number] | undefined {
  const [l, t, r, b] = box as [number, number, number, number];
  const left = pyMax(0, l);
  const top = pyMax(0, t);
  const right = pyMin(width, r);
  const bottom = pyMin(height, b);
  if (!validBox(left, top, right, bottom)) return undefined;
  let result = [left, top, right, bottom];
  const boxHeight = bottom - top;
  const boxWidth = right - left;
  // Unreachable after validBox (short side > 30), kept as the reference has it.
  if (boxHeight < 28 || boxWidth < 28) {
    const centerX = (left + right) / 2;
    const centerY = (top + bottom) / 2;
    const ratio = 28 / Math.min(boxHeight, boxWidth);
    const halfHeight = Math.ceil(boxHeight * ratio * 0.5);
    const halfWidth = Math.ceil(boxWidth * ratio * 0.5);
    result = [
      Math.floor(centerX - halfWidth),
      Math.floor(centerY - halfHeight),
      Math.ceil(centerX + halfWidth),
      Math.ceil(centerY + halfHeight),
    ];
    if (!validBox(...(result as [number, number, number, number]))) return undefined;
  }
  return result.map(pyRound) as [number, number, number, number];
}

function parseReference(text: string): ParsedTurn {
  const answer = lastAnswer(text);
  if (answer !== undefined) return { kind: "answer", answer };
  const action = lastBlock(text, "tool_call");
  if (!action) {
    return text.includes("<tool_call>")
      ? { kind: "episode_end", reason: "no_tool_call", observation: "" }
      : { kind: "no_call" };
  }
  const loaded = loadReferenceToolCall(action);
  if ("error" in loaded) return loaded.error;
  const toolCall = loaded.value;
  const raised = (error: string): ParsedTurn => ({ kind: "parse_error", message: `Error: ${error}` });
  const name = pySubscript(toolCall, "name");
  if ("error" in name) return raised(name.error);
  const args = pySubscript(toolCall, "arguments");
  if ("error" in args) return raised(args.error);
  if (name.value !== ZOOM_TOOL) return raised(`Unknown tool name: ${pyStr(name.value)}`);
  const bbox = pySubscript(args.value, "bbox_2d");
  if ("error" in bbox) return raised(bbox.error);
  const box = unpackBox(bbox.value);
  if (typeof box === "string") return raised(box);
  return {
    kind: "calls",
    calls: [{ callId: "call_0", name: ZOOM_TOOL, arguments: { bbox_2d: box }, hints: REFERENCE_HINTS }],
  };
}

function isBox(value: unknown): value is [number, number, number, number] {
  return Array.isArray(value) && value.length === 4 && value.every((n) => typeof n === "number" && Number.isFinite(n));
}

/** This project's stricter reading: every call runs, any other tool is an invalid name. */
function parseStrict(text: string): ParsedTurn {
  const answer = lastAnswer(text);
  if (answer !== undefined) return { kind: "answer", answer };
  const found = blocks(text, "tool_call");
  if (found.length === 0) return { kind: "no_call" };
  const calls: ParsedCall[] = [];
  for (const [index, block] of found.entries()) {
    const call = parseJsonCall(block.content, index);
    if ("error" in call) return call.error;
    if (call.name !== ZOOM_TOOL) {
      return { kind: "parse_error", message: `Error: Invalid tool call name: ${block.content.trim()}.` };
    }
    const bbox = call.arguments.bbox_2d;
    if (!isBox(bbox)) return { kind: "parse_error", message: ZOOM_INVALID };
    const label = call.arguments.label;
    calls.push({
      callId: call.callId,
      name: ZOOM_TOOL,
      arguments: typeof label === "string" ? { bbox_2d: [...bbox], label } : { bbox_2d: [...bbox] },
    });
  }
  return { kind: "calls", calls };
}

function render(calls: RenderedCall[]): StepRender {
  if (anyInfrastructureFailure(calls)) return { kind: "infrastructure" };
  // A failed zoom shows only its error, without any image.
  const failed = calls.find((call) => call.isError || call.status !== "ok");
  if (failed) return { kind: "observation", text: failed.text, showImages: false };
  const text = `<tool_response>${calls.map((call) => call.text).join("")}${DEEPEYES_V1_USER_PROMPT}</tool_response>`;
  return { kind: "observation", text, showImages: true };
}

export const deepEyesV1: ModelFormat = {
  name: "deepeyes-v1",
  protoEnum: ProtoModelFormat.MODEL_FORMAT_DEEPEYES_V1,
  defaultFidelity: "reference",
  parse: (text: string, options: ParseOptions) =>
    options.fidelity === "reference" ? parseReference(text) : parseStrict(text),
  render,
};
