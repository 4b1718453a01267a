// The dependency-free module: formats stay pure and import no gRPC.
import { errorMessage } from "../../../runtime/src/error-message.js";
/**
 * Text scanning shared by the format parsers: tag blocks, the answer, the last
 * python fence, lenient JSON. Linear time on any input: model text is adversarial.
 */

/** All non-overlapping matches of `<tag>...</tag>` (shortest content), in order. */
export function blocks(text: string, tag: string): { content: string; end: number }[] {
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

/** The content of the last `<tag>...</tag>` (Python's `re.findall(...)[-1]`), if any. */
export function lastBlock(text: string, tag: string): string | undefined {
  const found = blocks(text, tag);
  return found[found.length - 1]?.content;
}

/** The last answer; as the reference clients, an empty last answer does not end the episode. */
export function lastAnswer(text: string): string | undefined {
  const last = lastBlock(text, "answer");
  return last !== undefined && last !== "" ? last : undefined;
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

export function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

export type JsonResult = { ok: true; value: unknown } | { ok: false; error: string };

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

export function parseJson(text: string): JsonResult {
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
export function argumentsObject(raw: unknown): Record<string, unknown> | undefined {
  if (raw === undefined || raw === null) return {};
  if (isPlainObject(raw)) return raw;
  if (typeof raw === "string") {
    if (raw.trim() === "") return {};
    const parsed = parseJson(raw);
    return parsed.ok && isPlainObject(parsed.value) ? parsed.value : undefined;
  }
  return undefined;
}

/** This project's wording of a malformed call. */
export function formatError(action: string, detail: string): { kind: "parse_error"; message: string } {
  return { kind: "parse_error", message: `Error: Invalid tool call format: ${action}. Error: ${detail}` };
}

/** `<tool_response>\n{text}\n</tool_response>`. */
export function toolResponse(text: string): string {
  return `<tool_response>\n${text}\n</tool_response>`;
}
