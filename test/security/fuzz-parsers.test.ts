import assert from "node:assert/strict";
import { describe, it } from "node:test";
import fc from "fast-check";
import { type Fidelity, type ParsedTurn, parseTurn } from "../../services/gateway/src/formats/index.js";

/**
 * Property-based fuzzing of the Step parsers: whatever a model writes, a parser
 * returns exactly one well-formed outcome (a call, an answer, a model-visible
 * error, or nothing) and never throws. Runs are bounded so `make test` stays fast;
 * raise TOOLPLANE_FUZZ_RUNS for a longer hunt.
 */
const RUNS = Number(process.env.TOOLPLANE_FUZZ_RUNS ?? 1500);
const FORMATS = ["deepeyes-v2", "deepeyes-v1", "hermes", "openai"];
const FIDELITIES: Fidelity[] = ["reference", "strict"];

const fragments = [
  "<code>",
  "</code>",
  "```python\n",
  "```py\n",
  "```\n",
  "```",
  "<tool_call>",
  "</tool_call>",
  "<answer>",
  "</answer>",
  "<think>",
  "</think>",
  '{"name": "search", "arguments": {"query": "x"}}',
  '{"name": "image_search"}',
  '{"name": "image_zoom_in_tool", "arguments": {"bbox_2d": [1, 2, 3, 4]}}',
  '{"name": "image_zoom_in_tool", "arguments": {"bbox_2d": [NaN, 1e999, -1, "a"]}}',
  '[{"id": "c1", "type": "function", "function": {"name": "search", "arguments": "{\\"query\\": \\"q\\"}"}}]',
  '{"tool_calls": [{"function": {"name": "code", "arguments": {}}}]}',
  "{",
  "}",
  "[",
  "]",
  '"',
  "\\",
  "\u0000",
  "\ud800",
  "print(1)\n",
  "    x = 1\n",
  "\tif True:\n",
  "null",
  "__proto__",
  '{"__proto__": {"polluted": true}}',
  '{"constructor": {"prototype": {"polluted": true}}}',
];

const modelish = fc
  .array(
    fc.oneof(fc.constantFrom(...fragments), fc.string({ maxLength: 12 }), fc.string({ unit: "binary", maxLength: 6 })),
    {
      maxLength: 40,
    },
  )
  .map((parts) => parts.join(""));

const deepJson = fc
  .integer({ min: 1, max: 20_000 })
  .map((depth) => `<tool_call>${"[".repeat(depth)}${"]".repeat(depth)}</tool_call>`);
const deepObject = fc
  .integer({ min: 1, max: 5_000 })
  .map(
    (depth) => `<tool_call>{"name": "search", "arguments": ${'{"a":'.repeat(depth)}1${"}".repeat(depth)}}</tool_call>`,
  );

function assertWellFormed(turn: ParsedTurn, text: string): void {
  const context = `for input ${JSON.stringify(text.slice(0, 200))}`;
  switch (turn.kind) {
    case "answer":
      assert.equal(typeof turn.answer, "string", context);
      break;
    case "calls":
      assert.ok(turn.calls.length > 0, `a calls outcome has at least one call ${context}`);
      for (const call of turn.calls) {
        assert.equal(typeof call.name, "string", context);
        assert.ok(call.name.length > 0, context);
        assert.equal(typeof call.callId, "string", context);
        assert.ok(
          call.arguments !== null && typeof call.arguments === "object" && !Array.isArray(call.arguments),
          `arguments must be a plain object ${context}`,
        );
      }
      break;
    case "parse_error":
      assert.equal(typeof turn.message, "string", context);
      assert.ok(turn.message.length > 0, `a parse error tells the model something ${context}`);
      break;
    case "episode_end":
      assert.equal(typeof turn.observation, "string", context);
      break;
    case "no_call":
      break;
    default:
      assert.fail(`unknown outcome ${JSON.stringify(turn)} ${context}`);
  }
}

describe("Step parsers under fuzzing", () => {
  for (const format of FORMATS) {
    for (const fidelity of FIDELITIES) {
      it(`${format} (${fidelity}): never throws, always one well-formed outcome`, () => {
        fc.assert(
          fc.property(fc.oneof(modelish, fc.string({ maxLength: 400 }), deepJson, deepObject), (text) => {
            let turn: ParsedTurn | undefined;
            assert.doesNotThrow(
              () => {
                turn = parseTurn(format, text, { fidelity });
              },
              `parseTurn threw for ${JSON.stringify(text.slice(0, 200))}`,
            );
            assertWellFormed(turn as ParsedTurn, text);
          }),
          { numRuns: RUNS },
        );
      });
    }

    it(`${format}: a prototype-polluting payload pollutes nothing`, () => {
      parseTurn(format, '<tool_call>{"name": "search", "arguments": {"__proto__": {"polluted": true}}}</tool_call>');
      parseTurn(format, '[{"function": {"name": "search", "arguments": "{\\"__proto__\\": {\\"polluted\\": 1}}"}}]');
      assert.equal(({} as Record<string, unknown>).polluted, undefined);
    });
  }

  it("a 5 MB model output is handled without throwing", () => {
    const huge = `${"<think>".repeat(1000)}${"x".repeat(5 * 1024 * 1024)}<code>\n\`\`\`python\nprint(1)\n\`\`\`\n</code>`;
    for (const format of FORMATS) assertWellFormed(parseTurn(format, huge), huge.slice(-300));
  });
});
