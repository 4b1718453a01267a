/**
 * The body of a `<tool_call>` block, read strictly (`{"name", "arguments"}`) or as
 * leniently as the tool parsers of the servers models run on:
 * - vLLM hermes (vllm-project/vllm @ 00854322d23051d43e752a81b3a72247d8604294,
 *   vllm/entrypoints/openai/tool_parsers/hermes_tool_parser.py): an unclosed trailing
 *   `<tool_call>` (`<tool_call>(.*?)</tool_call>|<tool_call>(.*)`);
 * - SGLang (sgl-project/sglang @ 72a0fbe513cb83dabfb3800eca50deecf99d8ba2,
 *   python/sglang/srt/function_call/base_format_detector.py `parse_base_json`):
 *   `"parameters"` in place of `"arguments"`, a JSON list of calls in one block;
 * - Qwen3-Coder XML (sglang @ 1d8d19dcaf62f58011b06b8982886b412f8f8ff2,
 *   python/sglang/srt/function_call/qwen3_coder_detector.py):
 *   `<function=name><parameter=p>value</parameter></function>`.
 */
import type { ParsedCall, ParsedTurn } from "./format.js";
import { argumentsObject, formatError, isPlainObject, parseJson } from "./text.js";

type CallOrError = ParsedCall | { error: ParsedTurn };

/** One `<tool_call>` body as `{"name": ..., "arguments": {...}}`, or the model-visible error. */
export function parseJsonCall(body: string, index: number): CallOrError {
  const action = body.trim();
  const parsed = parseJson(action);
  if (!parsed.ok) return { error: formatError(action, parsed.error) };
  if (!isPlainObject(parsed.value)) return { error: formatError(action, "the tool call must be a JSON object") };
  return callFromObject(action, parsed.value, index, false);
}

function callFromObject(action: string, value: Record<string, unknown>, index: number, lenient: boolean): CallOrError {
  const name = value.name;
  if (typeof name !== "string" || name === "") {
    return { error: formatError(action, 'the tool call needs a string "name"') };
  }
  // SGLang: `act.get("parameters") or act.get("arguments", {})`, an empty "parameters" falls through.
  const parameters = value.parameters;
  const raw =
    lenient && parameters !== undefined && parameters !== null && !isEmpty(parameters) ? parameters : value.arguments;
  const args = argumentsObject(raw);
  if (args === undefined) return { error: formatError(action, '"arguments" must be a JSON object') };
  return { callId: `call_${index}`, name, arguments: args };
}

function isEmpty(value: unknown): boolean {
  if (value === "" || value === 0 || value === false) return true;
  if (Array.isArray(value)) return value.length === 0;
  return isPlainObject(value) && Object.keys(value).length === 0;
}

/** Every `<tool_call>` body in order, the last one possibly unclosed (generation stopped before the close). */
export function toolCallBodies(text: string): string[] {
  const open = "<tool_call>";
  const close = "</tool_call>";
  const bodies: string[] = [];
  let from = 0;
  for (;;) {
    const start = text.indexOf(open, from);
    if (start < 0) return bodies;
    const stop = text.indexOf(close, start + open.length);
    if (stop < 0) {
      bodies.push(text.slice(start + open.length));
      return bodies;
    }
    bodies.push(text.slice(start + open.length, stop));
    from = stop + close.length;
  }
}

const XML_ENTITIES: Record<string, string> = { amp: "&", lt: "<", gt: ">", quot: '"', apos: "'", "#39": "'" };

function htmlUnescape(text: string): string {
  return text.replace(/&(#x[0-9a-fA-F]+|#\d+|[a-z]+);/g, (whole, entity: string) => {
    if (entity.startsWith("#x")) return safeCodePoint(Number.parseInt(entity.slice(2), 16)) ?? whole;
    if (entity.startsWith("#")) return safeCodePoint(Number.parseInt(entity.slice(1), 10)) ?? whole;
    return XML_ENTITIES[entity] ?? whole;
  });
}

function safeCodePoint(code: number): string | undefined {
  return Number.isInteger(code) && code >= 0 && code <= 0x10ffff ? String.fromCodePoint(code) : undefined;
}

/** Qwen3-Coder's `_safe_val`: unescaped, then JSON when it parses, else the text itself. */
function xmlValue(raw: string): unknown {
  const text = htmlUnescape(raw.trim());
  const parsed = parseJson(text);
  return parsed.ok ? parsed.value : text;
}

/** The text of `<tag=...` up to `</tag>` or the end, in order (Qwen3-Coder's two-branch regexes). */
function xmlSections(text: string, tag: string): string[] {
  const open = `<${tag}=`;
  const close = `</${tag}>`;
  const sections: string[] = [];
  let from = 0;
  for (;;) {
    const start = text.indexOf(open, from);
    if (start < 0) return sections;
    const stop = text.indexOf(close, start + open.length);
    if (stop < 0) {
      sections.push(text.slice(start + open.length));
      return sections;
    }
    sections.push(text.slice(start + open.length, stop));
    from = stop + close.length;
  }
}

/** Qwen3-Coder's `<function=name>` calls of one block. */
function parseXmlCalls(body: string, firstIndex: number): CallOrError[] {
  const calls: CallOrError[] = [];
  for (const section of xmlSections(body, "function")) {
    const split = section.indexOf(">");
    const name = split < 0 ? "" : section.slice(0, split).trim();
    if (name === "") {
      calls.push({ error: formatError(body.trim(), "<function=...> needs a name followed by >") });
      continue;
    }
    const args: Record<string, unknown> = {};
    for (const parameter of xmlSections(section.slice(split + 1), "parameter")) {
      const at = parameter.indexOf(">");
      if (at < 0) continue;
      const key = parameter.slice(0, at).trim();
      Object.defineProperty(args, key, {
        value: xmlValue(parameter.slice(at + 1).replace(/^\n+|\n+$/g, "")),
        enumerable: true,
        writable: true,
        configurable: true,
      });
    }
    calls.push({ callId: `call_${firstIndex + calls.length}`, name, arguments: args });
  }
  return calls;
}

/** One block read leniently: JSON object, JSON list of objects, or Qwen3-Coder XML. */
function parseLenientBody(body: string, firstIndex: number): CallOrError[] {
  if (body.includes("<function=")) return parseXmlCalls(body, firstIndex);
  const action = body.trim();
  if (action === "") return [{ error: formatError(action, "the <tool_call> block is empty") }];
  const parsed = parseJson(action);
  if (!parsed.ok) return [{ error: formatError(action, parsed.error) }];
  const items = Array.isArray(parsed.value) ? parsed.value : [parsed.value];
  if (items.length === 0) return [{ error: formatError(action, "the tool call list is empty") }];
  return items.map((item, offset) =>
    isPlainObject(item)
      ? callFromObject(action, item, firstIndex + offset, true)
      : { error: formatError(action, "each tool call must be a JSON object") },
  );
}

/**
 * Every call of a Hermes-style turn, leniently; a turn that holds `<tool_call>` (or
 * Qwen3-Coder's `<function=`) but yields no valid call is a parse error, never "no call".
 */
export function parseLenientToolCalls(text: string): ParsedTurn {
  const bodies = toolCallBodies(text);
  if (bodies.length === 0) {
    if (!text.includes("<function=")) return { kind: "no_call" };
    bodies.push(text);
  }
  const calls: ParsedCall[] = [];
  for (const body of bodies) {
    for (const call of parseLenientBody(body, calls.length)) {
      if ("error" in call) return call.error;
      calls.push(call);
    }
  }
  if (calls.length === 0) return formatError(text.trim(), "no tool call found in the <tool_call> block");
  return { kind: "calls", calls };
}
