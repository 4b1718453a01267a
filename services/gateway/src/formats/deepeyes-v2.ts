/**
 * DeepEyesV2: `<code>` with a ```python fence runs in the trajectory's kernel,
 * `<tool_call>` holds search or image_search, `<answer>` ends the episode.
 *
 * Reference: Visual-Agent/DeepEyesV2 @ 0373e6e0c923110fd6ff807b30474d8184785562,
 * reinforcement_learning/verl/workers/agent/envs/deepeyesv2/deepeyesv2.py
 * (`DeepEyesV2_ENV.execute`, `request_search`, `request_jupyter_execution`,
 * `maybe_resize_image`, `fix_python_indentation`) and prompt.py.
 */
import { ModelFormat as ProtoModelFormat } from "../../../../generated/toolplane/gateway/v1/gateway.js";
import {
  anyInfrastructureFailure,
  type CallHints,
  type ModelFormat,
  type ParsedTurn,
  type ParseOptions,
  type RenderedCall,
  type StepRender,
} from "./format.js";
import { isPyDict, loadReferenceToolCall, pyStr, pySubscript } from "./python.js";
import {
  blocks,
  formatError,
  isPlainObject,
  lastAnswer,
  lastBlock,
  lastPythonFence,
  parseJson,
  toolResponse,
} from "./text.js";
import { parseJsonCall } from "./tool-call-json.js";

const SEARCH_TOOLS = new Set(["search", "image_search"]);

/** The reference sandbox's cell timeout (`request_jupyter_execution(code_timeout=200)`). */
const REFERENCE_CODE_TIMEOUT_MS = 200_000;
/** Our call deadline: the cell's 200 s plus the sandbox's stop-and-answer margin (tools.ts codeTimeoutMs). */
const REFERENCE_CODE_CALL_MS = REFERENCE_CODE_TIMEOUT_MS + 2_000;

const CODE_HINTS: CallHints = {
  referenceIndentation: true,
  defaultTimeoutMs: REFERENCE_CODE_CALL_MS,
  imageResize: "deepeyes-v2",
  // The reference's INITIALIZATION_CODE_TEMPLATE binds image_1 only.
  boundInputImages: 1,
};
/** Search images (thumbnails) are shown as loaded: the reference resizes code images only. */
const SEARCH_HINTS: CallHints = { imageResize: "none", anyQuery: true };

function code(source: string, hints?: CallHints): ParsedTurn {
  return {
    kind: "calls",
    calls: [{ callId: "call_0", name: "code", arguments: { code: source }, ...(hints && { hints }) }],
  };
}

/** `execute()` of the reference, up to the backend request. */
function parseReference(text: string, options: ParseOptions): ParsedTurn {
  const answer = lastAnswer(text);
  if (answer !== undefined) return { kind: "answer", answer };
  const hasCode = text.includes("<code>");
  if (!hasCode && !text.includes("<tool_call>")) return { kind: "no_call" };
  if (hasCode) {
    // `'<code>' in action_string` wins over any tool call, even one that closes later.
    const block = lastBlock(text, "code");
    const source = block === undefined ? undefined : lastPythonFence(block);
    if (!source) return { kind: "episode_end", reason: "no_code", observation: "" };
    return code(source, CODE_HINTS);
  }
  const action = lastBlock(text, "tool_call");
  if (!action) return { kind: "episode_end", reason: "no_tool_call", observation: "" };
  const loaded = loadReferenceToolCall(action);
  if ("error" in loaded) return loaded.error;
  const { value: toolCall, stripped } = loaded;
  // Raised inside the reference's second try: `Error: {e} for {self.data_index}`.
  const raised = (error: string): ParsedTurn => ({
    kind: "parse_error",
    message: `Error: ${error} for ${options.sampleIndex}`,
  });
  const name = pySubscript(toolCall, "name");
  if ("error" in name) return raised(name.error);
  // Reached only for a dict (the subscript above raised otherwise): `tool_call.get("arguments", None)`.
  const args = isPyDict(toolCall) ? (toolCall.get("arguments") ?? null) : null;
  if (typeof name.value !== "string" || !SEARCH_TOOLS.has(name.value)) {
    return { kind: "parse_error", message: `Error: Invalid tool call name: ${stripped}.` };
  }
  if (name.value === "image_search") {
    if (args !== null) {
      return { kind: "parse_error", message: `Error: Invalid tool call parameters for image search: ${stripped}.` };
    }
    return { kind: "calls", calls: [{ callId: "call_0", name: "image_search", arguments: {}, hints: SEARCH_HINTS }] };
  }
  const query = pySubscript(args, "query");
  if ("error" in query) return raised(query.error);
  // The query is formatted with str() in the observation; the backend gets the same text.
  return {
    kind: "calls",
    calls: [{ callId: "call_0", name: "search", arguments: { query: pyStr(query.value) }, hints: SEARCH_HINTS }],
  };
}

/** This project's stricter reading: the block that closes last is the call, errors name their cause. */
function parseStrict(text: string): ParsedTurn {
  const answer = lastAnswer(text);
  if (answer !== undefined) return { kind: "answer", answer };
  const codeBlocks = blocks(text, "code");
  const toolCalls = blocks(text, "tool_call");
  const lastCode = codeBlocks[codeBlocks.length - 1];
  const lastToolCall = toolCalls[toolCalls.length - 1];
  // The model stops at its first closing tag, so the block that closes last is the call of this turn.
  if (lastCode !== undefined && (lastToolCall === undefined || lastCode.end > lastToolCall.end)) {
    const source = lastPythonFence(lastCode.content);
    if (source === undefined) {
      return formatError(lastCode.content.trim(), "no ```python code block inside <code></code>");
    }
    return code(source);
  }
  if (lastToolCall === undefined) return { kind: "no_call" };
  const action = lastToolCall.content.trim();
  const call = parseJsonCall(lastToolCall.content, 0);
  if ("error" in call) return call.error;
  if (!SEARCH_TOOLS.has(call.name)) {
    return { kind: "parse_error", message: `Error: Invalid tool call name: ${action}.` };
  }
  if (call.name === "image_search") {
    const parsed = parseJson(action);
    // Any "arguments" key on image_search is refused, even an empty one.
    if (parsed.ok && isPlainObject(parsed.value) && parsed.value.arguments !== undefined) {
      return { kind: "parse_error", message: `Error: Invalid tool call parameters for image search: ${action}.` };
    }
    return { kind: "calls", calls: [{ callId: "call_0", name: "image_search", arguments: {} }] };
  }
  if (typeof call.arguments.query !== "string" || call.arguments.query.trim() === "") {
    return formatError(action, 'search needs a non-empty string argument "query"');
  }
  return { kind: "calls", calls: [{ callId: "call_0", name: "search", arguments: { query: call.arguments.query } }] };
}

function renderReference(calls: RenderedCall[]): StepRender {
  const call = calls[0];
  if (call === undefined) return { kind: "observation", text: "", showImages: false };
  if (call.name === "code") {
    // `exec_ret['status'] != 'success'`: only the sandbox failing; the model's own exceptions are output.
    if (call.status === "infra_error")
      return { kind: "episode_end", reason: "code_failed", observation: "Code execution error" };
    return { kind: "observation", text: call.text, showImages: true };
  }
  // The reference's search returns results or 'Error'; any failure ends the episode.
  if (call.status !== "ok") return { kind: "episode_end", reason: "search_failed", observation: "Search error" };
  return { kind: "observation", text: toolResponse(call.text), showImages: true };
}

function renderStrict(calls: RenderedCall[]): StepRender {
  if (anyInfrastructureFailure(calls)) return { kind: "infrastructure" };
  // Code results and errors are shown bare; search results inside a tool response.
  const text = calls
    .map((call) => (call.isError || call.name === "code" ? call.text : toolResponse(call.text)))
    .join("\n");
  return { kind: "observation", text, showImages: true };
}

export const deepEyesV2: ModelFormat = {
  name: "deepeyes-v2",
  protoEnum: ProtoModelFormat.MODEL_FORMAT_DEEPEYES_V2,
  defaultFidelity: "reference",
  parse: (text, options) => (options.fidelity === "reference" ? parseReference(text, options) : parseStrict(text)),
  render: (calls, options) => (options.fidelity === "reference" ? renderReference(calls) : renderStrict(calls)),
};
