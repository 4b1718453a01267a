/**
 * Qwen/Hermes `<tool_call>{"name": ..., "arguments": ...}</tool_call>`, read as
 * leniently as vLLM's and SGLang's tool parsers (see tool-call-json.ts); each result
 * is shown as `<tool_response>\n{text}\n</tool_response>`, joined by newlines.
 */
import { ModelFormat as ProtoModelFormat } from "../../../../generated/toolplane/gateway/v1/gateway.js";
import { anyInfrastructureFailure, type ModelFormat } from "./format.js";
import { toolResponse } from "./text.js";
import { parseLenientToolCalls } from "./tool-call-json.js";

export const hermes: ModelFormat = {
  name: "hermes",
  protoEnum: ProtoModelFormat.MODEL_FORMAT_HERMES,
  defaultFidelity: "strict",
  parse: (text) => parseLenientToolCalls(text),
  render: (calls) =>
    anyInfrastructureFailure(calls)
      ? { kind: "infrastructure" }
      : { kind: "observation", text: calls.map((call) => toolResponse(call.text)).join("\n"), showImages: true },
};
