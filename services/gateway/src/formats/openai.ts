/**
 * OpenAI tool calls: the `tool_calls` array, an assistant message holding one, a
 * single tool call object, or a whole ChatCompletion response (`choices[0].message`).
 * Each item is `{id, type: "function", function: {name, arguments}}` with `arguments`
 * a JSON string (an object is accepted). A message whose server did not parse its
 * tools (Hermes `<tool_call>` left in `content`) is read as Hermes text.
 */
import { ModelFormat as ProtoModelFormat } from "../../../../generated/toolplane/gateway/v1/gateway.js";
import { anyInfrastructureFailure, type ModelFormat, type ParsedCall, type ParsedTurn } from "./format.js";
import { argumentsObject, formatError, isPlainObject, parseJson } from "./text.js";
import { parseLenientToolCalls } from "./tool-call-json.js";

/** The message of a ChatCompletion response (first choice), or the value itself. */
function messageOf(value: unknown): unknown {
  if (!isPlainObject(value) || !Array.isArray(value.choices)) return value;
  const choice = value.choices[0];
  return isPlainObject(choice) && isPlainObject(choice.message) ? choice.message : value;
}

function parseOpenAi(text: string): ParsedTurn {
  const trimmed = text.trim();
  if (trimmed === "") return { kind: "no_call" };
  const parsed = parseJson(trimmed);
  if (!parsed.ok) {
    // Raw generation instead of JSON: the Hermes form is what Qwen models write.
    if (text.includes("<tool_call>") || text.includes("<function=")) return parseLenientToolCalls(text);
    return formatError(trimmed, parsed.error);
  }
  let items: unknown = messageOf(parsed.value);
  if (isPlainObject(items)) {
    if (isPlainObject(items.function)) {
      items = [items];
    } else if (items.tool_calls === undefined || items.tool_calls === null) {
      const content = items.content;
      if (typeof content === "string" && (content.includes("<tool_call>") || content.includes("<function="))) {
        return parseLenientToolCalls(content);
      }
      if ("choices" in items) return formatError(trimmed, "the response has no choices[0].message");
      return { kind: "no_call" };
    } else {
      items = items.tool_calls;
    }
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

export const openAi: ModelFormat = {
  name: "openai",
  protoEnum: ProtoModelFormat.MODEL_FORMAT_OPENAI,
  defaultFidelity: "strict",
  parse: (text) => parseOpenAi(text),
  render: (calls) =>
    anyInfrastructureFailure(calls)
      ? { kind: "infrastructure" }
      : {
          kind: "observation",
          text: JSON.stringify(calls.map((call) => ({ role: "tool", tool_call_id: call.callId, content: call.text }))),
          showImages: true,
        },
};
