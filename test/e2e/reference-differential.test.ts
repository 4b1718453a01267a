/**
 * Differential conformance: the reference environments' own Python code and our
 * reference-fidelity parsers read the same generated model text, and must agree on
 * every observation byte, every episode end, the code each would run and the search
 * each would send; the DeepEyes v1 crop box likewise. The reference code is not part
 * of this repository: point TOOLPLANE_REFERENCE_DEEPEYESV2 and TOOLPLANE_REFERENCE_DEEPEYES
 * at checkouts of Visual-Agent/DeepEyesV2 @ 0373e6e0c923110fd6ff807b30474d8184785562 and
 * Visual-Agent/DeepEyes @ 6c5e79671dbff958a6f9d44848ba2ca87854f0b0 to run it (autopep8 and
 * Pillow are needed, as for the sandbox).
 */
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { join } from "node:path";
import { describe, it } from "node:test";
import fc from "fast-check";
import { type ParsedTurn, parseTurn, referenceZoomBox } from "../../services/gateway/src/formats/index.js";
import { distRoot } from "../support/processes.js";
import { SAMPLE_INDEX } from "./conformance-cases.js";

const V2_DIR = process.env.TOOLPLANE_REFERENCE_DEEPEYESV2 ?? "";
const V1_DIR = process.env.TOOLPLANE_REFERENCE_DEEPEYES ?? "";
const SKIP =
  V2_DIR === "" || V1_DIR === ""
    ? "TOOLPLANE_REFERENCE_DEEPEYESV2 and TOOLPLANE_REFERENCE_DEEPEYES are not set (checkouts of the reference repositories); the conformance table covers the same ground"
    : false;
const RUNS = Number(process.env.TOOLPLANE_FUZZ_RUNS ?? 3000);

/** The harness's source sits beside this test's source, outside dist/. */
const HARNESS = join(distRoot, "..", "test", "support", "reference_env.py");

interface ReferenceAnswer {
  observation?: string;
  done?: boolean | null;
  code?: string[];
  search?: string[];
  box?: number[] | null;
  fixed?: string;
}

function reference(requests: object[]): ReferenceAnswer[] {
  if (requests.length === 0) return [];
  const run = spawnSync("/usr/bin/python3", [HARNESS, V2_DIR, V1_DIR], {
    input: requests.map((request) => JSON.stringify(request)).join("\n"),
    encoding: "utf8",
    maxBuffer: 256 * 1024 * 1024,
  });
  assert.equal(run.status, 0, run.stderr);
  return run.stdout
    .trim()
    .split("\n")
    .map((line) => JSON.parse(line) as ReferenceAnswer);
}

const jsonPieces = fc.constantFrom(
  ..." \n\x1c\u00a0{}[]:,\"'\\".split(""),
  '{"name": "search", "arguments": {"query": "x"}}',
  '{"name": "image_search"}',
  '{"name": "image_search", "arguments": null}',
  '{"name": "search"}',
  '"name"',
  '"arguments"',
  '"query"',
  ", ",
  "null",
  "1",
  "-2",
  "1.5",
  "1e3",
  "NaN",
  "true",
  '"search"',
  '"image_search"',
  "\\u00e9",
  "😀",
  "[]",
  "{}",
  '{"name": "image_zoom_in_tool", "arguments": {"bbox_2d": [100, 50, 300, 150]}}',
  '"image_zoom_in_tool"',
  '"bbox_2d"',
  "[1, 2, 3, 4]",
  '{"name": "image_zoom_in_tool", "arguments": {"bbox_2d": ',
  '{"name": "search", "arguments": ',
  '{"name": ',
);
const json = fc.array(jsonPieces, { maxLength: 10 }).map((parts) => parts.join(""));
const codePieces = fc.constantFrom(
  "```python\n",
  "```python ",
  "\n```",
  "```",
  "\n",
  " ",
  "print(1)",
  "x = 1\n",
  "    y = 2\n",
  "if x:\n",
  "else:\n",
);
const code = fc.array(codePieces, { maxLength: 10 }).map((parts) => parts.join(""));
const prose = fc.constantFrom(
  "",
  "<think>hm</think>\n",
  "<answer></answer>",
  "<answer>x</answer>",
  "<code>",
  "<tool_call>",
  "</tool_call>",
  "</code>",
);
const turn = fc
  .array(
    fc.oneof(
      prose,
      json,
      json.map((body) => `<tool_call>${body}</tool_call>`),
      code.map((body) => `<code>${body}</code>`),
    ),
    { minLength: 1, maxLength: 4 },
  )
  .map((parts) => parts.join(""));

/** What our parse implies the reference must have done. */
function disagreement(
  format: string,
  ours: ParsedTurn,
  ref: ReferenceAnswer,
  fixed: string | undefined,
): string | undefined {
  switch (ours.kind) {
    case "answer":
    case "no_call":
    case "episode_end":
      return ref.done === true && ref.observation === "" && ref.code?.length === 0 && ref.search?.length === 0
        ? undefined
        : `${ours.kind}: the reference showed ${JSON.stringify(ref.observation)} (done ${ref.done})`;
    case "parse_error":
      return ref.done === false && ref.observation === ours.message
        ? undefined
        : `error ${JSON.stringify(ref.observation)}`;
    case "calls": {
      const call = ours.calls[0];
      if (format === "deepeyes-v1") {
        const shown = `<tool_response><image>{USER_PROMPT}</tool_response>`;
        return ref.observation === shown || ref.observation === "Error: ZOOM IN ARGUMENTS ARE INVALID"
          ? undefined
          : "zoom";
      }
      if (call?.name === "code") return ref.code?.[0] === fixed ? undefined : `code ${JSON.stringify(ref.code)}`;
      if (call?.name === "image_search") return ref.search?.[0] === "<image_search>" ? undefined : "image_search";
      return ref.search?.[0] === call?.arguments.query ? undefined : `search ${JSON.stringify(ref.search)}`;
    }
  }
}

describe("reference parsers against the reference environments' own code", () => {
  it("agree on generated DeepEyesV2 and DeepEyes v1 turns", { skip: SKIP }, () => {
    const texts = fc.sample(turn, { numRuns: RUNS, seed: 12 });
    for (const format of ["deepeyes-v2", "deepeyes-v1"]) {
      const ours = texts.map((text) => parseTurn(format, text, { fidelity: "reference", sampleIndex: SAMPLE_INDEX }));
      const codes = ours.flatMap((parsed) =>
        parsed.kind === "calls" && parsed.calls[0]?.name === "code" ? [String(parsed.calls[0].arguments.code)] : [],
      );
      const fixes = reference(codes.map((source) => ({ fix: source }))).map((answer) => answer.fixed);
      const answers = reference(texts.map((text) => ({ format, text })));
      let fixIndex = 0;
      for (const [index, text] of texts.entries()) {
        const parsed = ours[index] as ParsedTurn;
        const fixed = parsed.kind === "calls" && parsed.calls[0]?.name === "code" ? fixes[fixIndex++] : undefined;
        const problem = disagreement(format, parsed, answers[index] as ReferenceAnswer, fixed);
        assert.equal(problem, undefined, `${format} ${JSON.stringify(text)}: ours ${JSON.stringify(parsed)}`);
      }
    }
  });

  it("agree on DeepEyes v1 crop boxes", { skip: SKIP }, () => {
    const corner = fc.oneof(
      fc.integer({ min: -100, max: 800 }),
      fc.double({ min: -100, max: 800, noNaN: true }),
      fc.integer({ min: 0, max: 640 }).map((value) => value + 0.5),
      fc.constantFrom(Number.NaN, 640, 480),
    );
    const boxes = fc.sample(fc.tuple(corner, corner, corner, corner), { numRuns: RUNS, seed: 5 });
    const answers = reference(boxes.map((box) => ({ box: box.map((value) => (Number.isNaN(value) ? "NaN" : value)) })));
    for (const [index, box] of boxes.entries()) {
      assert.deepEqual(referenceZoomBox(box, 640, 480) ?? null, answers[index]?.box ?? null, JSON.stringify(box));
    }
  });
});
