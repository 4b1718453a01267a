import assert from "node:assert/strict";
import { describe, it } from "node:test";
import fc from "fast-check";
import { Fidelity, modelFormatToJSON } from "../../../../generated/toolplane/gateway/v1/gateway.js";
import {
  codeObservation,
  DEEPEYES_V1_USER_PROMPT,
  type Fidelity as FidelityName,
  FORMATS as FORMATS_REGISTERED,
  fidelityOf,
  formatByName,
  formatByProto,
  formatEnumNames,
  imageSearchObservation,
  lastPythonFence,
  type ModelFormat,
  type ParsedTurn,
  parseTurn as parseAny,
  type RenderedCall,
  referenceZoomBox,
  searchObservation,
} from "./index.js";

const FORMATS = ["deepeyes-v2", "deepeyes-v1", "hermes", "openai"];

/** These cases pin the strict behaviour; the reference one is pinned by test/e2e/conformance. */
function parseTurn(format: string, text: string, fidelity: FidelityName = "strict"): ParsedTurn {
  return parseAny(format, text, { fidelity });
}

function stepObservation(format: string, calls: Omit<RenderedCall, "status">[]): string {
  const rendered = formatByName(format)?.render(
    calls.map((call) => ({ ...call, status: call.isError ? "model_error" : "ok" })),
    { fidelity: "strict", sampleIndex: "" },
  );
  assert.equal(rendered?.kind, "observation");
  return rendered?.kind === "observation" ? rendered.text : "";
}

describe("deepeyes-v2 parser (strict)", () => {
  it("runs only the last python fence of the last <code> block", () => {
    const text = [
      "<think>first try</think>",
      "<code>\n```python\nprint('old')\n```\n</code>",
      "then <code>\n```python\nx = 1\n```\nand\n```python\nprint(x + 1)\n```\n</code>",
    ].join("\n");
    assert.deepEqual(parseTurn("deepeyes-v2", text), {
      kind: "calls",
      calls: [{ callId: "call_0", name: "code", arguments: { code: "print(x + 1)" } }],
    });
  });

  it("an answer ends the episode, whatever else the text holds", () => {
    assert.deepEqual(parseTurn("deepeyes-v2", "<think>done</think><answer>A</answer>"), {
      kind: "answer",
      answer: "A",
    });
    assert.deepEqual(parseTurn("deepeyes-v2", "<answer>first</answer> <answer>42</answer>"), {
      kind: "answer",
      answer: "42",
    });
    assert.deepEqual(parseTurn("deepeyes-v2", "<answer></answer>"), { kind: "no_call" });
  });

  it("parses search and image_search tool calls", () => {
    assert.deepEqual(
      parseTurn(
        "deepeyes-v2",
        '<tool_call>\n{"name": "search", "arguments": {"query": "Eiffel tower height"}}\n</tool_call>',
      ),
      { kind: "calls", calls: [{ callId: "call_0", name: "search", arguments: { query: "Eiffel tower height" } }] },
    );
    assert.deepEqual(parseTurn("deepeyes-v2", '<tool_call>\n{"name": "image_search"}\n</tool_call>'), {
      kind: "calls",
      calls: [{ callId: "call_0", name: "image_search", arguments: {} }],
    });
  });

  it("the block that closes last is the call of the turn", () => {
    const text =
      '<code>\n```python\nprint(1)\n```\n</code> <tool_call>{"name": "search", "arguments": {"query": "q"}}</tool_call>';
    const parsed = parseTurn("deepeyes-v2", text);
    assert.equal(parsed.kind === "calls" && parsed.calls[0]?.name, "search");
  });

  it("returns the exact model-visible errors", () => {
    assert.deepEqual(parseTurn("deepeyes-v2", '<tool_call>\n{"name": "calculator", "arguments": {}}\n</tool_call>'), {
      kind: "parse_error",
      message: 'Error: Invalid tool call name: {"name": "calculator", "arguments": {}}.',
    });
    assert.deepEqual(parseTurn("deepeyes-v2", '<tool_call>{"name": "image_search", "arguments": {}}</tool_call>'), {
      kind: "parse_error",
      message: 'Error: Invalid tool call parameters for image search: {"name": "image_search", "arguments": {}}.',
    });
    const broken = parseTurn("deepeyes-v2", "<tool_call>{name: search}</tool_call>");
    assert.equal(broken.kind, "parse_error");
    assert.match(
      broken.kind === "parse_error" ? broken.message : "",
      /^Error: Invalid tool call format: \{name: search\}\. Error: /,
    );
    assert.deepEqual(parseTurn("deepeyes-v2", "<code>print(1)</code>"), {
      kind: "parse_error",
      message: "Error: Invalid tool call format: print(1). Error: no ```python code block inside <code></code>",
    });
  });

  it("text without a complete block is no call", () => {
    assert.deepEqual(parseTurn("deepeyes-v2", "I think the answer is 4."), { kind: "no_call" });
    assert.deepEqual(parseTurn("deepeyes-v2", "<code>\n```python\nprint(1)\n```"), { kind: "no_call" });
  });
});

describe("deepeyes-v1 parser (strict)", () => {
  it("parses zoom calls with absolute pixel boxes", () => {
    const text =
      '<think>zoom</think>\n<tool_call>\n{"name": "image_zoom_in_tool", "arguments": {"bbox_2d": [10, 20, 110, 220], "label": "sign"}}\n</tool_call>';
    assert.deepEqual(parseTurn("deepeyes-v1", text), {
      kind: "calls",
      calls: [
        { callId: "call_0", name: "image_zoom_in_tool", arguments: { bbox_2d: [10, 20, 110, 220], label: "sign" } },
      ],
    });
  });

  it("a malformed box is the DeepEyes zoom error", () => {
    for (const box of ["[1, 2, 3]", '["a", 2, 3, 4]', "null"]) {
      const text = `<tool_call>{"name": "image_zoom_in_tool", "arguments": {"bbox_2d": ${box}}}</tool_call>`;
      assert.deepEqual(parseTurn("deepeyes-v1", text), {
        kind: "parse_error",
        message: "Error: ZOOM IN ARGUMENTS ARE INVALID",
      });
    }
  });

  it("another tool name is an invalid name", () => {
    assert.deepEqual(parseTurn("deepeyes-v1", '<tool_call>{"name": "image_rotate_tool"}</tool_call>'), {
      kind: "parse_error",
      message: 'Error: Invalid tool call name: {"name": "image_rotate_tool"}.',
    });
  });
});

describe("hermes and openai parsers", () => {
  it("hermes takes every tool call in order and accepts stringified arguments", () => {
    const text =
      '<tool_call>\n{"name": "search", "arguments": {"query": "a"}}\n</tool_call>\n<tool_call>\n{"name": "code", "arguments": "{\\"code\\": \\"1+1\\"}"}\n</tool_call>';
    assert.deepEqual(parseTurn("hermes", text), {
      kind: "calls",
      calls: [
        { callId: "call_0", name: "search", arguments: { query: "a" } },
        { callId: "call_1", name: "code", arguments: { code: "1+1" } },
      ],
    });
  });

  it("openai accepts the tool_calls array or a message holding it", () => {
    const calls = [{ id: "call_abc", type: "function", function: { name: "search", arguments: '{"query":"x"}' } }];
    const expected = { kind: "calls", calls: [{ callId: "call_abc", name: "search", arguments: { query: "x" } }] };
    assert.deepEqual(parseTurn("openai", JSON.stringify(calls)), expected);
    assert.deepEqual(parseTurn("openai", JSON.stringify({ role: "assistant", tool_calls: calls })), expected);
    assert.deepEqual(parseTurn("openai", JSON.stringify({ role: "assistant", content: "hi" })), { kind: "no_call" });
    assert.equal(parseTurn("openai", "[{").kind, "parse_error");
  });
});

describe("parsers never throw", () => {
  const fragments = fc.constantFrom(
    "<code>",
    "</code>",
    "<tool_call>",
    "</tool_call>",
    "<answer>",
    "</answer>",
    "```python\n",
    "\n```",
    '{"name": "search", "arguments": {"query": "q"}}',
    '{"name": "image_zoom_in_tool", "arguments": {"bbox_2d": [1,2,3,4]}}',
    '[{"id":"1","function":{"name":"code","arguments":"{}"}}]',
    '{"tool_calls": null}',
    "{",
    "]",
    "\\u0000",
    "null",
  );
  const modelText = fc.array(fc.oneof(fragments, fc.string()), { maxLength: 12 }).map((parts) => parts.join(""));

  for (const format of FORMATS) {
    it(`${format}: any text parses to a well-formed turn`, () => {
      fc.assert(
        fc.property(modelText, (text) => {
          const parsed = parseTurn(format, text);
          assert.ok(["answer", "calls", "parse_error", "no_call", "episode_end"].includes(parsed.kind));
          if (parsed.kind === "calls") {
            assert.ok(parsed.calls.length > 0);
            for (const call of parsed.calls) {
              assert.equal(typeof call.name, "string");
              assert.ok(
                typeof call.arguments === "object" && call.arguments !== null && !Array.isArray(call.arguments),
              );
            }
          }
          if (parsed.kind === "parse_error") assert.match(parsed.message, /^Error: /);
        }),
        { numRuns: 2000 },
      );
    });
  }
});

describe("python fence extraction", () => {
  const referenceRegex = (block: string): string | undefined => {
    const fence = /```python\s*\n([\s\S]*?)\n```/g;
    let last: string | undefined;
    for (let match = fence.exec(block); match !== null; match = fence.exec(block)) last = match[1];
    return last;
  };

  it("agrees with the reference regex", () => {
    const pieces = fc.constantFrom("```python", "```", "\n", " ", "\t", "x", "print(1)", "\u00a0", "`");
    fc.assert(
      fc.property(fc.array(pieces, { maxLength: 30 }), (parts) => {
        const block = parts.join("");
        assert.equal(lastPythonFence(block), referenceRegex(block));
      }),
      { numRuns: 20_000 },
    );
  });

  it("stays linear on adversarial text (many unclosed fences, long whitespace runs)", () => {
    // Each fence closes on the next one's "\n```": the same answer the regex gives for any repeat count.
    assert.equal(referenceRegex("```python\n".repeat(50)), "```python");
    assert.equal(lastPythonFence("```python\n".repeat(50_000)), "```python");
    assert.equal(lastPythonFence(`\`\`\`python${"\n".repeat(200_000)}x`), undefined);
    assert.equal(lastPythonFence(`${"```python ".repeat(50_000)}\nx`), undefined);
    const parsed = parseTurn("deepeyes-v2", `<code>${"```python\n".repeat(50_000)}</code>`);
    assert.deepEqual(parsed, {
      kind: "calls",
      calls: [{ callId: "call_0", name: "code", arguments: { code: "```python" } }],
    });
  });
});

describe("observation text", () => {
  it("code: stdout and stderr fences, Images line only when there are images", () => {
    assert.equal(
      codeObservation("4\n", "", 0),
      "Code execution result:\nstdout:\n```\n4\n\n```\n\nstderr:\n```\n\n```",
    );
    assert.equal(
      codeObservation("", "warn", 2),
      "Code execution result:\nstdout:\n```\n\n```\n\nstderr:\n```\nwarn\n```\n\nImages:\n<image><image>",
    );
  });

  it("search: numbered markdown links, optional date, snippet after a blank line", () => {
    const text = searchObservation("eiffel", [
      { title: "Eiffel Tower", url: "https://e.example/1", snippet: "324 m tall.", date: "2024-01-02" },
      { title: "Paris", url: "https://e.example/2", snippet: "", date: "" },
    ]);
    assert.equal(
      text,
      "A Google search for 'eiffel' found 2 results:\n\n## Web Results\n1. [Eiffel Tower](https://e.example/1)\nDate published: 2024-01-02\n\n324 m tall.\n\n2. [Paris](https://e.example/2)\n",
    );
  });

  it("search entries drop the scraped video player notice, as the reference client does", () => {
    const text = searchObservation("clip", [
      { title: "A clip", url: "u", snippet: "Your browser can't play this video. It shows a cat.", date: "" },
    ]);
    assert.equal(
      text,
      "A Google search for 'clip' found 1 results:\n\n## Web Results\n1. [A clip](u)\n\n It shows a cat.",
    );
  });

  it("image search: one <image> per result", () => {
    assert.equal(
      imageSearchObservation(["A cat", "A dog"]),
      "A Google image search for the image found 2 results:\n\n## Web Results\n1. <image>\n[A cat] \n\n\n2. <image>\n[A dog] \n",
    );
  });

  it("step observation per format", () => {
    const search = { callId: "c1", name: "search", text: "found", isError: false };
    const code = { callId: "c2", name: "code", text: "Code execution result:", isError: false };
    assert.equal(stepObservation("deepeyes-v2", [search]), "<tool_response>\nfound\n</tool_response>");
    assert.equal(stepObservation("deepeyes-v2", [code]), "Code execution result:");
    assert.equal(stepObservation("deepeyes-v2", [{ ...search, text: "Error: boom", isError: true }]), "Error: boom");
    assert.equal(
      stepObservation("hermes", [search, code]),
      "<tool_response>\nfound\n</tool_response>\n<tool_response>\nCode execution result:\n</tool_response>",
    );
    assert.equal(
      stepObservation("deepeyes-v1", [{ callId: "c", name: "image_zoom_in_tool", text: "<image>", isError: false }]),
      `<tool_response><image>${DEEPEYES_V1_USER_PROMPT}</tool_response>`,
    );
    assert.deepEqual(JSON.parse(stepObservation("openai", [search])), [
      { role: "tool", tool_call_id: "c1", content: "found" },
    ]);
  });
});

describe("the format registry", () => {
  it("holds each format once, with a distinct proto enum, found by name and by enum", () => {
    const names = FORMATS_REGISTERED.map((format) => format.name);
    assert.deepEqual(names, ["deepeyes-v2", "deepeyes-v1", "hermes", "openai"]);
    assert.equal(new Set(FORMATS_REGISTERED.map((format) => format.protoEnum)).size, FORMATS_REGISTERED.length);
    for (const format of FORMATS_REGISTERED) {
      assert.equal(formatByProto(format.protoEnum), format);
      assert.equal(formatByName(format.name), format);
    }
    assert.equal(formatEnumNames(modelFormatToJSON), "DEEPEYES_V2, DEEPEYES_V1, HERMES, OPENAI");
  });

  it("the DeepEyes formats default to the reference, Hermes and OpenAI have one behaviour", () => {
    assert.equal(fidelityOf(formatByName("deepeyes-v2") as ModelFormat, undefined), "reference");
    assert.equal(fidelityOf(formatByName("deepeyes-v1") as ModelFormat, Fidelity.FIDELITY_UNSPECIFIED), "reference");
    assert.equal(fidelityOf(formatByName("deepeyes-v1") as ModelFormat, Fidelity.FIDELITY_STRICT), "strict");
    assert.equal(fidelityOf(formatByName("hermes") as ModelFormat, undefined), "strict");
  });
});

describe("reference parsing attaches how each call must run", () => {
  it("deepeyes-v2 code: reference indentation, 200 s cell, DeepEyesV2 resize, image_1 only", () => {
    const parsed = parseAny("deepeyes-v2", "<code>\n```python\nprint(1)\n```\n</code>");
    assert.deepEqual(parsed, {
      kind: "calls",
      calls: [
        {
          callId: "call_0",
          name: "code",
          arguments: { code: "print(1)" },
          hints: {
            referenceIndentation: true,
            defaultTimeoutMs: 202_000,
            imageResize: "deepeyes-v2",
            boundInputImages: 1,
          },
        },
      ],
    });
  });

  it("deepeyes-v1 zoom: the reference box check and plain crop", () => {
    const parsed = parseAny(
      "deepeyes-v1",
      '<tool_call>{"name": "image_zoom_in_tool", "arguments": {"bbox_2d": [1, 2.5, true, 4]}}</tool_call>',
    );
    assert.deepEqual(parsed, {
      kind: "calls",
      calls: [
        {
          callId: "call_0",
          name: "image_zoom_in_tool",
          arguments: { bbox_2d: [1, 2.5, 1, 4] },
          hints: { referenceZoom: true, imageResize: "none" },
        },
      ],
    });
  });

  it("referenceZoomBox: clamp, short side > 30, round half to even", () => {
    assert.deepEqual(referenceZoomBox([100, 50, 300, 150], 640, 480), [100, 50, 300, 150]);
    assert.equal(referenceZoomBox([100, 50, 300, 80], 640, 480), undefined);
    assert.deepEqual(referenceZoomBox([100, 50, 300, 81], 640, 480), [100, 50, 300, 81]);
    assert.deepEqual(referenceZoomBox([-5, -5, 700, 500], 640, 480), [0, 0, 640, 480]);
    assert.deepEqual(referenceZoomBox([Number.NaN, 0, 100, Number.NaN], 640, 480), [0, 0, 100, 480]);
    assert.deepEqual(referenceZoomBox([0.5, 1.5, 100.5, 101.5], 640, 480), [0, 2, 100, 102]);
  });
});
