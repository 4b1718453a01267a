/**
 * Model output parsers and observation formatters for the tool-call formats the
 * gateway serves (see docs/gateway.md and the tool protocol). Everything here is
 * a pure function over strings: no I/O, no exceptions, whatever the input (the
 * parsers are fuzzed), so a model's garbage can never take the gateway down.
 */

export type ModelFormatName = "deepeyes-v2" | "deepeyes-v1" | "hermes" | "openai";

/** One tool call found in model text. `arguments` is always a plain object. */
export interface ParsedCall {
  /** The call id the model gave (OpenAI) or a positional one ("call_0"). */
  callId: string;
  name: string;
  arguments: Record<string, unknown>;
}

export type ParsedTurn =
  /** The model answered; the episode ends. */
  | { kind: "answer"; answer: string }
  /** Calls to run, in the order the model wrote them. */
  | { kind: "calls"; calls: ParsedCall[] }
  /** A malformed call; `message` is the exact text the model is shown. */
  | { kind: "parse_error"; message: string }
  /** Neither a call nor an answer. */
  | { kind: "no_call" };

/** Tool names of the DeepEyesV2 `<tool_call>` channel. */
const DEEPEYES_V2_SEARCH_TOOLS = new Set(["search", "image_search"]);
export const ZOOM_TOOL = "image_zoom_in_tool";
export const ZOOM_INVALID = "Error: ZOOM IN ARGUMENTS ARE INVALID";

/**
 * The prompt DeepEyes v1 appends after every zoom result, inside the tool response,
 * so the model keeps the format it was trained with.
 */
export const DEEPEYES_V1_USER_PROMPT =
  "\nThink first, call **image_zoom_in_tool** if needed, then answer. Format strictly as:  <think>...</think>  <tool_call>...</tool_call> (if tools needed)  <answer>...</answer> ";

/** All non-overlapping matches of `<tag>...</tag>` (shortest content), in order. */
function blocks(text: string, tag: string): { content: string; end: number }[] {
  const open = `<${tag}>`;
  const close = `</${tag}>`;
  const found: { content: string; end: number }[] = [];
  let from = 0;
  for (;;) {
    const start = text.indexOf(open, from);
    if (start < 0) break;
    const stop = text.indexOf(close, start + open.length);
    if (stop < 0) break;
    found.push({ content: text.slice(start + open.length, stop), end: stop + close.length });
    from = stop + close.length;
  }
  return found;
}

function lastAnswer(text: string): string | undefined {
  const answers = blocks(text, "answer");
  const last = answers[answers.length - 1];
  // As the reference client: an empty answer tag does not end the episode.
  return last !== undefined && last.content !== "" ? last.content : undefined;
}

const FENCE_OPEN = "```python";
const FENCE_CLOSE = "\n```";
const WHITESPACE = /\s/;

/**
 * The last ```python fenced block, exactly what the DeepEyesV2 reference's
 * regex /```python\s*\n(.*?)\n```/ (dot-all, every match, keep the last)
 * extracts, but in linear time: the regex backtracks quadratically on text
 * with many unclosed fences, and model text is adversarial input.
 */
export function lastPythonFence(block: string): string | undefined {
  let last: string | undefined;
  let from = 0;
  for (;;) {
    const open = block.indexOf(FENCE_OPEN, from);
    if (open < 0) return last;
    // \s*\n: the content starts after the last newline of the whitespace run (greedy), or an earlier one.
    let end = open + FENCE_OPEN.length;
    let lastNewline = -1;
    let previousNewline = -1;
    while (end < block.length && WHITESPACE.test(block[end] as string)) {
      if (block[end] === "\n") {
        previousNewline = lastNewline;
        lastNewline = end;
      }
      end += 1;
    }
    if (lastNewline < 0) {
      from = open + FENCE_OPEN.length;
      continue;
    }
    const close = block.indexOf(FENCE_CLOSE, lastNewline + 1);
    if (close >= 0) {
      last = block.slice(lastNewline + 1, close);
      from = close + FENCE_CLOSE.length;
      continue;
    }
    // No closing after the run: the run's own last newline can close a fence opened one newline earlier.
    if (previousNewline >= 0 && block.startsWith(FENCE_CLOSE, lastNewline)) {
      last = block.slice(previousNewline + 1, lastNewline);
    }
    // Either way no closing fence remains for any later opening.
    return last;
  }
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

function errorMessage(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

type JsonResult = { ok: true; value: unknown } | { ok: false; error: string };

/** Deeper JSON than any tool call needs; checked so later recursive walks cannot overflow on hostile text. */
export const MAX_JSON_DEPTH = 40;

/** True when `value` nests objects/arrays deeper than `maxDepth` (iterative: safe on hostile input). */
export function nestsDeeperThan(value: unknown, maxDepth: number): boolean {
  const pending: [unknown, number][] = [[value, 1]];
  while (pending.length > 0) {
    const [item, depth] = pending.pop() as [unknown, number];
    if (typeof item !== "object" || item === null) continue;
    if (depth > maxDepth) return true;
    for (const child of Object.values(item)) pending.push([child, depth + 1]);
  }
  return false;
}

function parseJson(text: string): JsonResult {
  try {
    const value = JSON.parse(text) as unknown;
    if (nestsDeeperThan(value, MAX_JSON_DEPTH)) {
      return { ok: false, error: `the JSON nests deeper than ${MAX_JSON_DEPTH} levels` };
    }
    return { ok: true, value };
  } catch (error) {
    return { ok: false, error: errorMessage(error) };
  }
}

/** `arguments` may be an object, a JSON string of one (some models stringify), or absent. */
function argumentsObject(raw: unknown): Record<string, unknown> | undefined {
  if (raw === undefined || raw === null) return {};
  if (isPlainObject(raw)) return raw;
  if (typeof raw === "string") {
    if (raw.trim() === "") return {};
    const parsed = parseJson(raw);
    return parsed.ok && isPlainObject(parsed.value) ? parsed.value : undefined;
  }
  return undefined;
}

function formatError(action: string, detail: string): ParsedTurn {
  return { kind: "parse_error", message: `Error: Invalid tool call format: ${action}. Error: ${detail}` };
}

/** One `<tool_call>` body as `{"name": ..., "arguments": {...}}`, or the model-visible error. */
function parseHermesCall(body: string, index: number): ParsedCall | { error: ParsedTurn } {
  const action = body.trim();
  const parsed = parseJson(action);
  if (!parsed.ok) return { error: formatError(action, parsed.error) };
  if (!isPlainObject(parsed.value)) return { error: formatError(action, "the tool call must be a JSON object") };
  const name = parsed.value.name;
  if (typeof name !== "string" || name === "") {
    return { error: formatError(action, 'the tool call needs a string "name"') };
  }
  const args = argumentsObject(parsed.value.arguments);
  if (args === undefined) return { error: formatError(action, '"arguments" must be a JSON object') };
  return { callId: `call_${index}`, name, arguments: args };
}

function parseDeepEyesV2(text: string): ParsedTurn {
  const answer = lastAnswer(text);
  if (answer !== undefined) return { kind: "answer", answer };
  const code = blocks(text, "code");
  const toolCalls = blocks(text, "tool_call");
  const lastCode = code[code.length - 1];
  const lastToolCall = toolCalls[toolCalls.length - 1];
  // The model stops at its first closing tag, so the block that closes last is the call of this turn.
  if (lastCode !== undefined && (lastToolCall === undefined || lastCode.end > lastToolCall.end)) {
    const source = lastPythonFence(lastCode.content);
    if (source === undefined) {
      return formatError(lastCode.content.trim(), "no ```python code block inside <code></code>");
    }
    return { kind: "calls", calls: [{ callId: "call_0", name: "code", arguments: { code: source } }] };
  }
  if (lastToolCall === undefined) return { kind: "no_call" };
  const action = lastToolCall.content.trim();
  const call = parseHermesCall(lastToolCall.content, 0);
  if ("error" in call) return call.error;
  if (!DEEPEYES_V2_SEARCH_TOOLS.has(call.name)) {
    return { kind: "parse_error", message: `Error: Invalid tool call name: ${action}.` };
  }
  if (call.name === "image_search") {
    const parsed = parseJson(action);
    // The reference rejects any "arguments" key on image_search, even an empty one.
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

function isBox(value: unknown): value is [number, number, number, number] {
  return Array.isArray(value) && value.length === 4 && value.every((n) => typeof n === "number" && Number.isFinite(n));
}

function parseDeepEyesV1(text: string): ParsedTurn {
  const answer = lastAnswer(text);
  if (answer !== undefined) return { kind: "answer", answer };
  const found = blocks(text, "tool_call");
  if (found.length === 0) return { kind: "no_call" };
  const calls: ParsedCall[] = [];
  for (const [index, block] of found.entries()) {
    const call = parseHermesCall(block.content, index);
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

function parseHermes(text: string): ParsedTurn {
  const found = blocks(text, "tool_call");
  if (found.length === 0) return { kind: "no_call" };
  const calls: ParsedCall[] = [];
  for (const [index, block] of found.entries()) {
    const call = parseHermesCall(block.content, index);
    if ("error" in call) return call.error;
    calls.push(call);
  }
  return { kind: "calls", calls };
}

/**
 * OpenAI tool calls: either the `tool_calls` array itself or an assistant message
 * holding one. Each item is `{id, type: "function", function: {name, arguments}}`
 * with `arguments` a JSON string.
 */
function parseOpenAi(text: string): ParsedTurn {
  const trimmed = text.trim();
  if (trimmed === "") return { kind: "no_call" };
  const parsed = parseJson(trimmed);
  if (!parsed.ok) return formatError(trimmed, parsed.error);
  let items: unknown = parsed.value;
  if (isPlainObject(items)) {
    if (items.tool_calls === undefined || items.tool_calls === null) return { kind: "no_call" };
    items = items.tool_calls;
  }
  if (!Array.isArray(items)) return formatError(trimmed, "expected a tool_calls array");
  if (items.length === 0) return { kind: "no_call" };
  const calls: ParsedCall[] = [];
  for (const [index, item] of items.entries()) {
    const fn = isPlainObject(item) ? item.function : undefined;
    if (!isPlainObject(item) || !isPlainObject(fn)) {
      return formatError(JSON.stringify(item) ?? "null", 'each tool call needs a "function" object');
    }
    if (typeof fn.name !== "string" || fn.name === "") {
      return formatError(JSON.stringify(item), 'the function needs a string "name"');
    }
    const args = argumentsObject(fn.arguments);
    if (args === undefined) return formatError(JSON.stringify(item), '"arguments" must be a JSON object');
    const callId = typeof item.id === "string" && item.id !== "" ? item.id : `call_${index}`;
    calls.push({ callId, name: fn.name, arguments: args });
  }
  return { kind: "calls", calls };
}

/** Parses one turn of model text. Never throws. */
export function parseTurn(format: ModelFormatName, text: string): ParsedTurn {
  try {
    switch (format) {
      case "deepeyes-v2":
        return parseDeepEyesV2(text);
      case "deepeyes-v1":
        return parseDeepEyesV1(text);
      case "hermes":
        return parseHermes(text);
      case "openai":
        return parseOpenAi(text);
    }
  } catch (error) {
    // Unreachable by construction; kept so a parser bug is a model-visible parse error, not a crash.
    return { kind: "parse_error", message: `Error: Invalid tool call format: ${errorMessage(error)}` };
  }
}

// ---- observation text of single tool results (ToolResult.text) ----

/** DeepEyesV2's code observation; `imageCount` placeholders, the Images line absent when 0. */
export function codeObservation(stdout: string, stderr: string, imageCount: number): string {
  const text = `Code execution result:\nstdout:\n\`\`\`\n${stdout}\n\`\`\`\n\nstderr:\n\`\`\`\n${stderr}\n\`\`\``;
  return imageCount > 0 ? `${text}\n\nImages:\n${"<image>".repeat(imageCount)}` : text;
}

export interface SearchHit {
  title: string;
  url: string;
  snippet: string;
  date: string;
}

/** Scraped video pages carry this line; the reference client drops it from every entry. */
const PLAYER_NOTICE = "Your browser can't play this video.";

function withoutPlayerNotice(entry: string): string {
  return entry.includes(PLAYER_NOTICE) ? entry.replaceAll(PLAYER_NOTICE, "") : entry;
}

/** DeepEyesV2's web search observation body (without the tool_response wrapper). */
export function searchObservation(query: string, hits: SearchHit[]): string {
  const entries = hits.map((hit, index) => {
    const date = hit.date !== "" ? `\nDate published: ${hit.date}` : "";
    const snippet = hit.snippet !== "" ? `\n${hit.snippet}` : "";
    return withoutPlayerNotice(`${index + 1}. [${hit.title}](${hit.url})${date}\n${snippet}`);
  });
  return `A Google search for '${query}' found ${hits.length} results:\n\n## Web Results\n${entries.join("\n\n")}`;
}

/** DeepEyesV2's reverse image search observation body: one `<image>` per thumbnail shown. */
export function imageSearchObservation(titles: string[]): string {
  const entries = titles.map((title, index) => withoutPlayerNotice(`${index + 1}. <image>\n[${title}] \n`));
  return `A Google image search for the image found ${titles.length} results:\n\n## Web Results\n${entries.join("\n\n")}`;
}

/** The text a model sees for a failed call whose tool has no own error text. */
export function modelErrorText(message: string): string {
  return `Error: ${message}`;
}

// ---- observation of a whole step, in the model's format ----

export interface RenderedCall {
  callId: string;
  name: string;
  /** ToolResult.text (empty for infrastructure failures, which are never shown). */
  text: string;
  /** True when `text` is a model-visible error rather than the tool's output. */
  isError: boolean;
}

function toolResponse(text: string): string {
  return `<tool_response>\n${text}\n</tool_response>`;
}

/**
 * Joins the results of one step into the text appended for the model. Callers
 * only use this when no call failed for infrastructure reasons.
 */
export function stepObservation(format: ModelFormatName, calls: RenderedCall[]): string {
  switch (format) {
    case "deepeyes-v2":
      // Code results and errors are shown bare; search results inside a tool response.
      return calls
        .map((call) => (call.isError || call.name === "code" ? call.text : toolResponse(call.text)))
        .join("\n");
    case "deepeyes-v1": {
      const failed = calls.find((call) => call.isError);
      if (failed) return failed.text;
      return `<tool_response>${calls.map((call) => call.text).join("")}${DEEPEYES_V1_USER_PROMPT}</tool_response>`;
    }
    case "hermes":
      return calls.map((call) => toolResponse(call.text)).join("\n");
    case "openai":
      return JSON.stringify(calls.map((call) => ({ role: "tool", tool_call_id: call.callId, content: call.text })));
  }
}
