/**
 * The conformance table: model text and the exact observation bytes the reference
 * environments show for it, read from their source at these commits:
 * - Visual-Agent/DeepEyesV2 @ 0373e6e0c923110fd6ff807b30474d8184785562,
 *   reinforcement_learning/verl/workers/agent/envs/deepeyesv2/{deepeyesv2.py,prompt.py}
 *   (CPython 3.11 messages: `json` C scanner, KeyError, TypeError);
 * - Visual-Agent/DeepEyes @ 6c5e79671dbff958a6f9d44848ba2ca87854f0b0,
 *   verl/workers/agent/envs/mm_process_engine/{visual_toolbox_v2.py,prompt.py};
 * - vLLM @ 00854322d23051d43e752a81b3a72247d8604294 hermes_tool_parser.py; SGLang @
 *   72a0fbe513cb83dabfb3800eca50deecf99d8ba2 base_format_detector.py and @
 *   1d8d19dcaf62f58011b06b8982886b412f8f8ff2 qwen3_coder_detector.py (Hermes/OpenAI leniency).
 *
 * `observation` is the content of the turn the reference appends: DeepEyesV2 wraps it in
 * `<|im_end|>\n<|im_start|>user\n` ... `<|im_end|>\n<|im_start|>assistant\n<think>`, DeepEyes
 * v1 in `\n<|im_start|>user\n` ... `<|im_end|>\n<|im_start|>assistant\n` (the caller's template).
 * The input image is 640x480 (see conformance.test.ts); the search corpus is a fixed local one.
 */

export type FormatName = "deepeyes-v2" | "deepeyes-v1" | "hermes" | "openai";
export type Outcome = "TOOL_CALLED" | "ANSWER" | "PARSE_ERROR" | "NO_CALL" | "EPISODE_END";
export type Status = "OK" | "MODEL_ERROR" | "INFRA_ERROR";
export type Reason = "NO_CODE" | "NO_TOOL_CALL" | "CODE_FAILED" | "SEARCH_FAILED";

export interface ConformanceCase {
  name: string;
  format: FormatName;
  /** Default: the format's default (reference for the DeepEyes formats). */
  fidelity?: "reference" | "strict";
  /** `two-images`: a session with two input images; `code-down`: a gateway whose code service is unreachable. */
  session?: "two-images" | "code-down";
  text: string;
  outcome: Outcome;
  observation: string;
  status?: Status;
  reason?: Reason;
  answer?: string;
  /** Sizes of the images returned, in order (default none). */
  images?: [number, number][];
}

/** The reference's `extra_info['index']` of the sample, quoted by some DeepEyesV2 errors. */
export const SAMPLE_INDEX = "fvqa_train_7";

const V1_PROMPT =
  "\nThink first, call **image_zoom_in_tool** if needed, then answer. Format strictly as:  <think>...</think>  <tool_call>...</tool_call> (if tools needed)  <answer>...</answer> ";
const V1_IMAGE = `<tool_response><image>${V1_PROMPT}</tool_response>`;

function code(source: string): string {
  return `<think>Let me run code.</think>\n<code>\n\`\`\`python\n${source}\n\`\`\`\n</code>`;
}

function codeResult(stdout: string, stderr = "", images = 0): string {
  const text = `Code execution result:\nstdout:\n\`\`\`\n${stdout}\n\`\`\`\n\nstderr:\n\`\`\`\n${stderr}\n\`\`\``;
  return images > 0 ? `${text}\n\nImages:\n${"<image>".repeat(images)}` : text;
}

function toolCall(body: string): string {
  return `<think>Search.</think>\n<tool_call>\n${body}\n</tool_call>`;
}

const EIFFEL =
  "1. [Eiffel Tower](https://example.test/eiffel)\nDate published: 2024-03-31\n\nThe Eiffel Tower in Paris is 330 metres tall.";
const FUJI = "1. [Mount Fuji](https://example.test/fuji)\n\nJapan's highest volcano rises 3,776 m.";

function searchResult(query: string, entries: string[]): string {
  return `<tool_response>\nA Google search for '${query}' found ${entries.length} results:\n\n## Web Results\n${entries.join("\n\n")}\n</tool_response>`;
}

const IMAGE_SEARCH =
  "<tool_response>\nA Google image search for the image found 1 results:\n\n## Web Results\n1. <image>\n[Red sign on white] \n\n</tool_response>";

function zoom(bbox: string): string {
  return `<think>Zoom in.</think>\n<tool_call>\n{"name": "image_zoom_in_tool", "arguments": {"bbox_2d": ${bbox}, "label": "sign"}}\n</tool_call>`;
}

function v2Error(message: string): Pick<ConformanceCase, "outcome" | "observation" | "status"> {
  return { outcome: "PARSE_ERROR", observation: message, status: "MODEL_ERROR" };
}

const v1Error = v2Error;

export const CASES: ConformanceCase[] = [
  // ---- DeepEyesV2, reference: execute() -----------------------------------------------------
  {
    name: "v2 answer ends the episode (extract_answer, last match)",
    format: "deepeyes-v2",
    text: "<think>done</think>\n<answer>first</answer><answer>330 metres</answer>",
    outcome: "ANSWER",
    observation: "",
    answer: "330 metres",
  },
  {
    name: "v2 an empty last answer is no answer; no tag: nothing to run",
    format: "deepeyes-v2",
    text: "<answer>a</answer><answer></answer>",
    outcome: "NO_CALL",
    observation: "",
  },
  { name: "v2 plain text", format: "deepeyes-v2", text: "The sign is red.", outcome: "NO_CALL", observation: "" },
  {
    name: "v2 code: template with stdout, empty stderr, no Images line",
    format: "deepeyes-v2",
    text: code("print(image_1.size)"),
    outcome: "TOOL_CALLED",
    observation: codeResult("(640, 480)\n"),
    status: "OK",
  },
  {
    name: "v2 code wins over a tool call that closes later ('<code>' in action_string first)",
    format: "deepeyes-v2",
    text: `${code("print(6 * 7)")}\n<tool_call>{"name": "search", "arguments": {"query": "Mount Fuji"}}</tool_call>`,
    outcome: "TOOL_CALLED",
    observation: codeResult("42\n"),
    status: "OK",
  },
  {
    name: "v2 code wins over a tool call that closes first",
    format: "deepeyes-v2",
    text: `<tool_call>{"name": "search", "arguments": {"query": "Mount Fuji"}}</tool_call>\n${code("print(7 * 7)")}`,
    outcome: "TOOL_CALLED",
    observation: codeResult("49\n"),
    status: "OK",
  },
  {
    name: "v2 the last python fence of the last <code> block runs",
    format: "deepeyes-v2",
    text: "<code>\n```python\nprint('old')\n```\n</code> <code>\n```python\nprint(1)\n```\nthen\n```python\nprint(2)\n```\n</code>",
    outcome: "TOOL_CALLED",
    observation: codeResult("2\n"),
    status: "OK",
  },
  {
    name: "v2 <code> without a python fence ends the episode, nothing shown",
    format: "deepeyes-v2",
    text: "<code>print(1)</code>",
    outcome: "EPISODE_END",
    observation: "",
    status: "MODEL_ERROR",
    reason: "NO_CODE",
  },
  {
    name: "v2 unclosed <code> ends the episode",
    format: "deepeyes-v2",
    text: "<code>\n```python\nprint(1)\n```",
    outcome: "EPISODE_END",
    observation: "",
    status: "MODEL_ERROR",
    reason: "NO_CODE",
  },
  {
    name: "v2 an empty fence ends the episode (`if not code_string`)",
    format: "deepeyes-v2",
    text: "<code>\n```python\n\n```\n</code>",
    outcome: "EPISODE_END",
    observation: "",
    status: "MODEL_ERROR",
    reason: "NO_CODE",
  },
  {
    name: "v2 '<code>' anywhere, even inside a search query, takes the code path",
    format: "deepeyes-v2",
    text: toolCall('{"name": "search", "arguments": {"query": "what does <code> mean"}}'),
    outcome: "EPISODE_END",
    observation: "",
    status: "MODEL_ERROR",
    reason: "NO_CODE",
  },
  {
    name: "v2 valid code is re-indented anyway: the loop swallows the print",
    format: "deepeyes-v2",
    text: code("for i in range(3):\n    pass\nprint(i)"),
    outcome: "TOOL_CALLED",
    observation: codeResult("0\n1\n2\n"),
    status: "OK",
  },
  {
    name: "v2 autopep8 aggressive rewrites `== None` to `is None`",
    format: "deepeyes-v2",
    text: code("import numpy as np\nprint(np.array([1, 2]) == None)"),
    outcome: "TOOL_CALLED",
    observation: codeResult("False\n"),
    status: "OK",
  },
  {
    name: "v2 mis-indented code is re-indented by `:`",
    format: "deepeyes-v2",
    text: code("    x = 3\n    if x > 2:\n    y = x * 2\n    print(y)"),
    outcome: "TOOL_CALLED",
    observation: codeResult("6\n"),
    status: "OK",
  },
  {
    name: "v2 else/elif/except/finally step back one level",
    format: "deepeyes-v2",
    text: code("try:\nprint(1 / 0)\nexcept ZeroDivisionError:\nprint('inf')\nfinally:\nprint('done')"),
    outcome: "TOOL_CALLED",
    observation: codeResult("inf\ndone\n"),
    status: "OK",
  },
  {
    name: "v2 stderr is shown in its own fence",
    format: "deepeyes-v2",
    text: code("import sys\nsys.stderr.write('careful\\n')\nprint('ok')"),
    outcome: "TOOL_CALLED",
    observation: codeResult("ok\n", "careful\n"),
    status: "OK",
  },
  {
    name: "v2 only image_1 is bound (INITIALIZATION_CODE_TEMPLATE)",
    format: "deepeyes-v2",
    session: "two-images",
    text: code("print('image_1' in globals(), 'image_2' in globals())"),
    outcome: "TOOL_CALLED",
    observation: codeResult("True False\n"),
    status: "OK",
  },
  {
    name: "v2 code image 3000x10: maybe_resize_image gives 2400x32",
    format: "deepeyes-v2",
    text: code("from PIL import Image\nImage.new('RGB', (3000, 10), 'red').show()"),
    outcome: "TOOL_CALLED",
    observation: codeResult("", "", 1),
    status: "OK",
    images: [[2400, 32]],
  },
  {
    name: "v2 code image 10x3000: 32x2400",
    format: "deepeyes-v2",
    text: code("from PIL import Image\nImage.new('RGB', (10, 3000), 'red').show()"),
    outcome: "TOOL_CALLED",
    observation: codeResult("", "", 1),
    status: "OK",
    images: [[32, 2400]],
  },
  {
    name: "v2 code image 201x1: ratio min(150, 100.5) -> 100x2 -> 1600x32",
    format: "deepeyes-v2",
    text: code("from PIL import Image\nImage.new('RGB', (201, 1), 'red').show()"),
    outcome: "TOOL_CALLED",
    observation: codeResult("", "", 1),
    status: "OK",
    images: [[1600, 32]],
  },
  {
    name: "v2 code image 20x10: short side to 32 (ceil)",
    format: "deepeyes-v2",
    text: code("from PIL import Image\nImage.new('RGB', (20, 10), 'red').show()"),
    outcome: "TOOL_CALLED",
    observation: codeResult("", "", 1),
    status: "OK",
    images: [[64, 32]],
  },
  {
    name: "v2 code image 31x100: 32x104",
    format: "deepeyes-v2",
    text: code("from PIL import Image\nImage.new('RGB', (31, 100), 'red').show()"),
    outcome: "TOOL_CALLED",
    observation: codeResult("", "", 1),
    status: "OK",
    images: [[32, 104]],
  },
  {
    name: "v2 code sandbox unreachable: 'Code execution error', episode ends",
    format: "deepeyes-v2",
    session: "code-down",
    text: code("print(1)"),
    outcome: "EPISODE_END",
    observation: "Code execution error",
    status: "INFRA_ERROR",
    reason: "CODE_FAILED",
  },
  {
    name: "v2 search: results inside <tool_response>",
    format: "deepeyes-v2",
    text: toolCall('{"name": "search", "arguments": {"query": "Eiffel Tower height"}}'),
    outcome: "TOOL_CALLED",
    observation: searchResult("Eiffel Tower height", [EIFFEL]),
    status: "OK",
  },
  {
    name: "v2 the last of several tool calls runs",
    format: "deepeyes-v2",
    text: `<tool_call>{"name": "calculator"}</tool_call>\n<tool_call>{"name": "search", "arguments": {"query": "Mount Fuji"}}</tool_call>`,
    outcome: "TOOL_CALLED",
    observation: searchResult("Mount Fuji", [FUJI]),
    status: "OK",
  },
  {
    name: "v2 a list query runs, formatted with str()",
    format: "deepeyes-v2",
    text: toolCall('{"name": "search", "arguments": {"query": ["Eiffel", "Tower"]}}'),
    outcome: "TOOL_CALLED",
    observation: searchResult("['Eiffel', 'Tower']", [EIFFEL]),
    status: "OK",
  },
  {
    name: "v2 an empty query is sent; the search refuses it: 'Search error', episode ends",
    format: "deepeyes-v2",
    text: toolCall('{"name": "search", "arguments": {"query": ""}}'),
    outcome: "EPISODE_END",
    observation: "Search error",
    status: "MODEL_ERROR",
    reason: "SEARCH_FAILED",
  },
  {
    name: "v2 duplicate keys: the last value wins",
    format: "deepeyes-v2",
    text: toolCall('{"name": "calculator", "name": "search", "arguments": {"query": "Mount Fuji"}}'),
    outcome: "TOOL_CALLED",
    observation: searchResult("Mount Fuji", [FUJI]),
    status: "OK",
  },
  {
    name: "v2 image_search",
    format: "deepeyes-v2",
    text: toolCall('{"name": "image_search"}'),
    outcome: "TOOL_CALLED",
    observation: IMAGE_SEARCH,
    status: "OK",
    // The thumbnail as the search service returns it: the reference resizes code images only.
    images: [[160, 120]],
  },
  {
    name: 'v2 image_search with "arguments": null runs (args is None)',
    format: "deepeyes-v2",
    text: toolCall('{"name": "image_search", "arguments": null}'),
    outcome: "TOOL_CALLED",
    observation: IMAGE_SEARCH,
    status: "OK",
    // The thumbnail as the search service returns it: the reference resizes code images only.
    images: [[160, 120]],
  },
  {
    name: "v2 image_search with empty arguments",
    format: "deepeyes-v2",
    text: toolCall('{"name": "image_search", "arguments": {}}'),
    ...v2Error('Error: Invalid tool call parameters for image search: {"name": "image_search", "arguments": {}}.'),
  },
  {
    name: "v2 image_search with string arguments",
    format: "deepeyes-v2",
    text: toolCall('{"name": "image_search", "arguments": "image_1"}'),
    ...v2Error(
      'Error: Invalid tool call parameters for image search: {"name": "image_search", "arguments": "image_1"}.',
    ),
  },
  {
    name: "v2 unknown tool name",
    format: "deepeyes-v2",
    text: toolCall('{"name": "calculator", "arguments": {"x": 1}}'),
    ...v2Error('Error: Invalid tool call name: {"name": "calculator", "arguments": {"x": 1}}.'),
  },
  {
    name: "v2 a non-string name is an invalid name",
    format: "deepeyes-v2",
    text: toolCall('{"name": ["search"], "arguments": {"query": "x"}}'),
    ...v2Error('Error: Invalid tool call name: {"name": ["search"], "arguments": {"query": "x"}}.'),
  },
  {
    name: "v2 missing name: KeyError",
    format: "deepeyes-v2",
    text: toolCall('{"arguments": {"query": "x"}}'),
    ...v2Error(`Error: 'name' for ${SAMPLE_INDEX}`),
  },
  {
    name: "v2 search without arguments: None['query']",
    format: "deepeyes-v2",
    text: toolCall('{"name": "search"}'),
    ...v2Error(`Error: 'NoneType' object is not subscriptable for ${SAMPLE_INDEX}`),
  },
  {
    name: "v2 search with null arguments",
    format: "deepeyes-v2",
    text: toolCall('{"name": "search", "arguments": null}'),
    ...v2Error(`Error: 'NoneType' object is not subscriptable for ${SAMPLE_INDEX}`),
  },
  {
    name: "v2 search without query: KeyError",
    format: "deepeyes-v2",
    text: toolCall('{"name": "search", "arguments": {"q": "x"}}'),
    ...v2Error(`Error: 'query' for ${SAMPLE_INDEX}`),
  },
  {
    name: "v2 search with string arguments",
    format: "deepeyes-v2",
    text: toolCall('{"name": "search", "arguments": "Mount Fuji"}'),
    ...v2Error(`Error: string indices must be integers, not 'str' for ${SAMPLE_INDEX}`),
  },
  {
    name: "v2 search with list arguments",
    format: "deepeyes-v2",
    text: toolCall('{"name": "search", "arguments": ["Mount Fuji"]}'),
    ...v2Error(`Error: list indices must be integers or slices, not str for ${SAMPLE_INDEX}`),
  },
  {
    name: "v2 a JSON list",
    format: "deepeyes-v2",
    text: toolCall('[{"name": "search", "arguments": {"query": "x"}}]'),
    ...v2Error(`Error: list indices must be integers or slices, not str for ${SAMPLE_INDEX}`),
  },
  {
    name: "v2 a JSON string",
    format: "deepeyes-v2",
    text: toolCall('"search"'),
    ...v2Error(`Error: string indices must be integers, not 'str' for ${SAMPLE_INDEX}`),
  },
  {
    name: "v2 a JSON number",
    format: "deepeyes-v2",
    text: toolCall("42"),
    ...v2Error(`Error: 'int' object is not subscriptable for ${SAMPLE_INDEX}`),
  },
  {
    name: "v2 bad JSON: missing comma (CPython's message)",
    format: "deepeyes-v2",
    text: toolCall('{"name": "search", "arguments": {"query": "a"} "x": 1}'),
    ...v2Error(
      'Error: Invalid tool call format: {"name": "search", "arguments": {"query": "a"} "x": 1}. Error: Expecting \',\' delimiter: line 1 column 48 (char 47)',
    ),
  },
  {
    name: "v2 bad JSON: single quotes",
    format: "deepeyes-v2",
    text: toolCall("{'name': 'search'}"),
    ...v2Error(
      "Error: Invalid tool call format: {'name': 'search'}. Error: Expecting property name enclosed in double quotes: line 1 column 2 (char 1)",
    ),
  },
  {
    name: "v2 bad JSON: trailing comma",
    format: "deepeyes-v2",
    text: toolCall('{"name": "search", "arguments": {"query": "a",}}'),
    ...v2Error(
      'Error: Invalid tool call format: {"name": "search", "arguments": {"query": "a",}}. Error: Expecting property name enclosed in double quotes: line 1 column 47 (char 46)',
    ),
  },
  {
    name: "v2 bad JSON: extra data",
    format: "deepeyes-v2",
    text: toolCall('{"name": "image_search"}}'),
    ...v2Error(
      'Error: Invalid tool call format: {"name": "image_search"}}. Error: Extra data: line 1 column 25 (char 24)',
    ),
  },
  {
    name: "v2 bad JSON: line and column on a later line",
    format: "deepeyes-v2",
    text: '<tool_call>\n{\n  "name": "search",\n  "arguments": {"query" "a"}\n}\n</tool_call>',
    ...v2Error(
      'Error: Invalid tool call format: {\n  "name": "search",\n  "arguments": {"query" "a"}\n}. Error: Expecting \':\' delimiter: line 3 column 25 (char 46)',
    ),
  },
  {
    name: "v2 bad JSON: positions count code points",
    format: "deepeyes-v2",
    text: toolCall('{"name": "😀😀" "x"}'),
    ...v2Error(
      'Error: Invalid tool call format: {"name": "😀😀" "x"}. Error: Expecting \',\' delimiter: line 1 column 15 (char 14)',
    ),
  },
  {
    name: "v2 bad JSON: invalid escape",
    format: "deepeyes-v2",
    text: toolCall('{"name": "search", "arguments": {"query": "C:\\d"}}'),
    ...v2Error(
      'Error: Invalid tool call format: {"name": "search", "arguments": {"query": "C:\\d"}}. Error: Invalid \\escape: line 1 column 46 (char 45)',
    ),
  },
  {
    name: "v2 a blank tool call: json.loads('')",
    format: "deepeyes-v2",
    text: "<tool_call>\n \n</tool_call>",
    ...v2Error("Error: Invalid tool call format: . Error: Expecting value: line 1 column 1 (char 0)"),
  },
  {
    name: "v2 str.strip() removes \\x1c (JavaScript's trim does not)",
    format: "deepeyes-v2",
    text: '<tool_call>\x1c{"name": "calculator"}\x1c</tool_call>',
    ...v2Error('Error: Invalid tool call name: {"name": "calculator"}.'),
  },
  {
    name: "v2 str.strip() keeps a BOM: json.loads refuses it",
    format: "deepeyes-v2",
    text: '<tool_call>\ufeff{"name": "image_search"}</tool_call>',
    ...v2Error(
      'Error: Invalid tool call format: \ufeff{"name": "image_search"}. Error: Unexpected UTF-8 BOM (decode using utf-8-sig): line 1 column 1 (char 0)',
    ),
  },
  {
    name: "v2 an empty tool call ends the episode (`if not action`)",
    format: "deepeyes-v2",
    text: "<tool_call></tool_call>",
    outcome: "EPISODE_END",
    observation: "",
    status: "MODEL_ERROR",
    reason: "NO_TOOL_CALL",
  },
  {
    name: "v2 an unclosed tool call ends the episode",
    format: "deepeyes-v2",
    text: '<tool_call>\n{"name": "search", "arguments": {"query": "Mount Fuji"}}',
    outcome: "EPISODE_END",
    observation: "",
    status: "MODEL_ERROR",
    reason: "NO_TOOL_CALL",
  },

  // ---- DeepEyesV2, strict ------------------------------------------------------------------
  {
    name: "v2 strict: the block that closes last runs",
    format: "deepeyes-v2",
    fidelity: "strict",
    text: `${code("print(6 * 7)")}\n<tool_call>{"name": "search", "arguments": {"query": "Mount Fuji"}}</tool_call>`,
    outcome: "TOOL_CALLED",
    observation: searchResult("Mount Fuji", [FUJI]),
    status: "OK",
  },
  {
    name: "v2 strict: <code> without a fence is a parse error",
    format: "deepeyes-v2",
    fidelity: "strict",
    text: "<code>print(1)</code>",
    ...v2Error("Error: Invalid tool call format: print(1). Error: no ```python code block inside <code></code>"),
  },
  {
    name: "v2 strict: valid code is left alone",
    format: "deepeyes-v2",
    fidelity: "strict",
    text: code("for i in range(3):\n    pass\nprint(i)"),
    outcome: "TOOL_CALLED",
    observation: codeResult("2\n"),
    status: "OK",
  },
  {
    name: "v2 strict: an empty query is the model's error",
    format: "deepeyes-v2",
    fidelity: "strict",
    text: toolCall('{"name": "search", "arguments": {"query": ""}}'),
    ...v2Error(
      'Error: Invalid tool call format: {"name": "search", "arguments": {"query": ""}}. Error: search needs a non-empty string argument "query"',
    ),
  },
  {
    name: "v2 strict: code sandbox unreachable is INFRA_ERROR, nothing shown",
    format: "deepeyes-v2",
    fidelity: "strict",
    session: "code-down",
    text: code("print(1)"),
    outcome: "TOOL_CALLED",
    observation: "",
    status: "INFRA_ERROR",
  },

  // ---- DeepEyes v1, reference: VisualToolBoxV2.execute() ----------------------------------
  {
    name: "v1 zoom: the crop as cut",
    format: "deepeyes-v1",
    text: zoom("[100, 50, 300, 150]"),
    outcome: "TOOL_CALLED",
    observation: V1_IMAGE,
    status: "OK",
    images: [[200, 100]],
  },
  {
    name: "v1 a short side of 31 px is valid and not enlarged",
    format: "deepeyes-v1",
    text: zoom("[100, 50, 300, 81]"),
    outcome: "TOOL_CALLED",
    observation: V1_IMAGE,
    status: "OK",
    images: [[200, 31]],
  },
  {
    name: "v1 a short side of 30 px is invalid (min > 30)",
    format: "deepeyes-v1",
    text: zoom("[100, 50, 300, 80]"),
    outcome: "TOOL_CALLED",
    observation: "Error: ZOOM IN ARGUMENTS ARE INVALID",
    status: "MODEL_ERROR",
  },
  {
    name: "v1 a tiny box is invalid, not grown",
    format: "deepeyes-v1",
    text: zoom("[500, 400, 514, 408]"),
    outcome: "TOOL_CALLED",
    observation: "Error: ZOOM IN ARGUMENTS ARE INVALID",
    status: "MODEL_ERROR",
  },
  {
    name: "v1 an inverted box is invalid",
    format: "deepeyes-v1",
    text: zoom("[300, 300, 100, 100]"),
    outcome: "TOOL_CALLED",
    observation: "Error: ZOOM IN ARGUMENTS ARE INVALID",
    status: "MODEL_ERROR",
  },
  {
    name: "v1 a box past the image is clamped",
    format: "deepeyes-v1",
    text: zoom("[600, 400, 700, 500]"),
    outcome: "TOOL_CALLED",
    observation: V1_IMAGE,
    status: "OK",
    images: [[40, 80]],
  },
  {
    name: "v1 negative corners clamp to 0",
    format: "deepeyes-v1",
    text: zoom("[-50, -50, 100, 100]"),
    outcome: "TOOL_CALLED",
    observation: V1_IMAGE,
    status: "OK",
    images: [[100, 100]],
  },
  {
    name: "v1 fractional corners: PIL crop rounds half to even",
    format: "deepeyes-v1",
    text: zoom("[101.5, 50.5, 300.5, 151.5]"),
    outcome: "TOOL_CALLED",
    observation: V1_IMAGE,
    status: "OK",
    images: [[198, 102]],
  },
  {
    name: "v1 several tool calls: only the last runs",
    format: "deepeyes-v1",
    text: `${zoom("[300, 300, 100, 100]")}\n${zoom("[100, 50, 300, 150]")}`,
    outcome: "TOOL_CALLED",
    observation: V1_IMAGE,
    status: "OK",
    images: [[200, 100]],
  },
  {
    name: "v1 unknown tool",
    format: "deepeyes-v1",
    text: '<tool_call>\n{"name": "calculator", "arguments": {}}\n</tool_call>',
    ...v1Error("Error: Unknown tool name: calculator"),
  },
  {
    name: "v1 a non-string name is formatted with str()",
    format: "deepeyes-v1",
    text: '<tool_call>\n{"name": ["zoom", 1.0, null], "arguments": {}}\n</tool_call>',
    ...v1Error("Error: Unknown tool name: ['zoom', 1.0, None]"),
  },
  {
    name: "v1 missing name",
    format: "deepeyes-v1",
    text: '<tool_call>\n{"arguments": {"bbox_2d": [1, 2, 3, 4]}}\n</tool_call>',
    ...v1Error("Error: 'name'"),
  },
  {
    name: "v1 missing arguments (looked up before the name is compared)",
    format: "deepeyes-v1",
    text: '<tool_call>\n{"name": "image_zoom_in_tool"}\n</tool_call>',
    ...v1Error("Error: 'arguments'"),
  },
  {
    name: "v1 missing bbox_2d",
    format: "deepeyes-v1",
    text: '<tool_call>\n{"name": "image_zoom_in_tool", "arguments": {"bbox": [1, 2, 3, 4]}}\n</tool_call>',
    ...v1Error("Error: 'bbox_2d'"),
  },
  {
    name: "v1 arguments as a list",
    format: "deepeyes-v1",
    text: '<tool_call>\n{"name": "image_zoom_in_tool", "arguments": [[1, 2, 3, 4]]}\n</tool_call>',
    ...v1Error("Error: list indices must be integers or slices, not str"),
  },
  {
    name: "v1 three numbers: maybe_resize_bbox misses 'bottom'",
    format: "deepeyes-v1",
    text: zoom("[1, 2, 3]"),
    ...v1Error("Error: VisualToolBoxV2.maybe_resize_bbox() missing 1 required positional argument: 'bottom'"),
  },
  {
    name: "v1 an empty box misses all four",
    format: "deepeyes-v1",
    text: zoom("[]"),
    ...v1Error(
      "Error: VisualToolBoxV2.maybe_resize_bbox() missing 4 required positional arguments: 'left', 'top', 'right', and 'bottom'",
    ),
  },
  {
    name: "v1 five numbers",
    format: "deepeyes-v1",
    text: zoom("[1, 2, 3, 4, 5]"),
    ...v1Error("Error: VisualToolBoxV2.maybe_resize_bbox() takes 5 positional arguments but 6 were given"),
  },
  {
    name: "v1 a null box is not iterable",
    format: "deepeyes-v1",
    text: zoom("null"),
    ...v1Error(
      "Error: verl.workers.agent.envs.mm_process_engine.visual_toolbox_v2.VisualToolBoxV2.maybe_resize_bbox() argument after * must be an iterable, not NoneType",
    ),
  },
  {
    name: "v1 a string corner cannot be compared with 0",
    format: "deepeyes-v1",
    text: zoom('["100", 50, 300, 150]'),
    ...v1Error("Error: '>' not supported between instances of 'str' and 'int'"),
  },
  {
    name: "v1 a null right edge cannot be compared with the width",
    format: "deepeyes-v1",
    text: zoom("[100, 50, null, 150]"),
    ...v1Error("Error: '<' not supported between instances of 'NoneType' and 'int'"),
  },
  {
    name: "v1 bad JSON (CPython's message)",
    format: "deepeyes-v1",
    text: '<tool_call>\n{"name": "image_zoom_in_tool", "arguments": {"bbox_2d": [1, 2, 3, 4]}\n</tool_call>',
    ...v1Error(
      'Error: Invalid tool call format: {"name": "image_zoom_in_tool", "arguments": {"bbox_2d": [1, 2, 3, 4]}. Error: Expecting \',\' delimiter: line 1 column 70 (char 69)',
    ),
  },
  {
    name: "v1 an unclosed tool call ends the episode",
    format: "deepeyes-v1",
    text: '<tool_call>\n{"name": "image_zoom_in_tool", "arguments": {"bbox_2d": [1, 2, 3, 4]}}',
    outcome: "EPISODE_END",
    observation: "",
    status: "MODEL_ERROR",
    reason: "NO_TOOL_CALL",
  },
  {
    name: "v1 answer",
    format: "deepeyes-v1",
    text: "<think>It is red.</think> <answer>red</answer>",
    outcome: "ANSWER",
    observation: "",
    answer: "red",
  },

  // ---- DeepEyes v1, strict ------------------------------------------------------------------
  {
    name: "v1 strict: a tiny box is grown to 28 px and upscaled to 32",
    format: "deepeyes-v1",
    fidelity: "strict",
    text: zoom("[500, 400, 514, 408]"),
    outcome: "TOOL_CALLED",
    observation: V1_IMAGE,
    status: "OK",
    images: [[58, 32]],
  },
  {
    name: "v1 strict: another tool is an invalid name",
    format: "deepeyes-v1",
    fidelity: "strict",
    text: '<tool_call>{"name": "calculator", "arguments": {}}</tool_call>',
    ...v1Error('Error: Invalid tool call name: {"name": "calculator", "arguments": {}}.'),
  },

  // ---- Hermes and OpenAI: as lenient as vLLM and SGLang ------------------------------------
  {
    name: "hermes an unclosed trailing tool call runs (vLLM `<tool_call>(.*)`)",
    format: "hermes",
    text: '<tool_call>\n{"name": "search", "arguments": {"query": "Mount Fuji"}}\n',
    outcome: "TOOL_CALLED",
    observation: searchResult("Mount Fuji", [FUJI]),
    status: "OK",
  },
  {
    name: 'hermes "parameters" for "arguments" (SGLang)',
    format: "hermes",
    text: '<tool_call>\n{"name": "search", "parameters": {"query": "Mount Fuji"}}\n</tool_call>',
    outcome: "TOOL_CALLED",
    observation: searchResult("Mount Fuji", [FUJI]),
    status: "OK",
  },
  {
    name: "hermes a JSON list of calls in one block (SGLang)",
    format: "hermes",
    text: '<tool_call>\n[{"name": "search", "arguments": {"query": "Mount Fuji"}}, {"name": "search", "arguments": {"query": "Eiffel Tower"}}]\n</tool_call>',
    outcome: "TOOL_CALLED",
    observation: `${searchResult("Mount Fuji", [FUJI])}\n${searchResult("Eiffel Tower", [EIFFEL])}`,
    status: "OK",
  },
  {
    name: "hermes Qwen3-Coder <function=...> XML",
    format: "hermes",
    text: "<tool_call>\n<function=search>\n<parameter=query>\nMount Fuji\n</parameter>\n</function>\n</tool_call>",
    outcome: "TOOL_CALLED",
    observation: searchResult("Mount Fuji", [FUJI]),
    status: "OK",
  },
  {
    name: "hermes a blank tool call is a parse error, not a silent no-call",
    format: "hermes",
    text: "I will search.\n<tool_call>\n",
    ...v2Error("Error: Invalid tool call format: . Error: the <tool_call> block is empty"),
  },
  {
    name: "hermes no tool call",
    format: "hermes",
    text: "The answer is 42.",
    outcome: "NO_CALL",
    observation: "",
  },
  {
    name: "openai a whole ChatCompletion response",
    format: "openai",
    text: JSON.stringify({
      id: "chatcmpl-1",
      object: "chat.completion",
      choices: [
        {
          index: 0,
          finish_reason: "tool_calls",
          message: {
            role: "assistant",
            content: null,
            tool_calls: [
              { id: "call_9", type: "function", function: { name: "search", arguments: '{"query": "Mount Fuji"}' } },
            ],
          },
        },
      ],
    }),
    outcome: "TOOL_CALLED",
    observation: JSON.stringify([
      { role: "tool", tool_call_id: "call_9", content: searchResult("Mount Fuji", [FUJI]).slice(16, -17) },
    ]),
    status: "OK",
  },
  {
    name: "openai a ChatCompletion whose server left the Hermes call in content",
    format: "openai",
    text: JSON.stringify({
      choices: [
        {
          message: {
            role: "assistant",
            content: '<tool_call>\n{"name": "search", "arguments": {"query": "Mount Fuji"}}\n</tool_call>',
          },
        },
      ],
    }),
    outcome: "TOOL_CALLED",
    observation: JSON.stringify([
      { role: "tool", tool_call_id: "call_0", content: searchResult("Mount Fuji", [FUJI]).slice(16, -17) },
    ]),
    status: "OK",
  },
  {
    name: "openai a ChatCompletion with a plain answer",
    format: "openai",
    text: JSON.stringify({ choices: [{ message: { role: "assistant", content: "It is 3,776 m." } }] }),
    outcome: "NO_CALL",
    observation: "",
  },
];
