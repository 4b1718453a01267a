import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { describe, it } from "node:test";
import fc from "fast-check";
import { PyJsonError, pyJsonLoads, pyRepr, pyReprFloat, pyStrip } from "./python.js";

/**
 * The port is checked against the real thing: Debian's CPython 3.11 (`json.loads` with
 * its C scanner, `repr`, `str.strip`) runs the same inputs in one process.
 */
const PYTHON = "/usr/bin/python3";

const PY_PROGRAM = `
import json, sys
for line in sys.stdin:
    op, text = json.loads(line)
    if op == "loads":
        try:
            out = "OK " + repr(json.loads(text))
        except Exception as e:
            out = "ERR " + str(e)
    elif op == "strip":
        out = text.strip()
    else:
        out = repr(float(text))
    sys.stdout.write(json.dumps(out) + "\\n")
`;

function python(requests: [string, string][]): string[] {
  const input = requests.map((request) => JSON.stringify(request)).join("\n");
  const run = spawnSync(PYTHON, ["-c", PY_PROGRAM], { input, encoding: "utf8", maxBuffer: 64 * 1024 * 1024 });
  assert.equal(run.status, 0, run.stderr);
  return run.stdout
    .trim()
    .split("\n")
    .map((line) => JSON.parse(line) as string);
}

function ours(text: string): string {
  try {
    return `OK ${pyRepr(pyJsonLoads(text))}`;
  } catch (error) {
    assert.ok(error instanceof PyJsonError, `only PyJsonError may escape, got ${String(error)}`);
    return `ERR ${error.message}`;
  }
}

const pieces = fc.constantFrom(
  "{",
  "}",
  "[",
  "]",
  ",",
  ":",
  " ",
  "\n",
  "\t",
  "\r",
  '"',
  '"name"',
  '"search"',
  '"arguments"',
  "\\",
  '\\"',
  "\\n",
  "\\u00e9",
  "\\ud83d\\ude00",
  "\\ud800",
  "\\u12",
  "\\x",
  "\u0001",
  "é",
  "😀",
  "'",
  "0",
  "-",
  "1",
  "12.5",
  "1e5",
  "1E+2",
  "1.",
  ".5",
  "1e",
  "-0",
  "01",
  "true",
  "false",
  "null",
  "nul",
  "NaN",
  "Infinity",
  "-Infinity",
  "\ufeff",
  "\u00a0",
  "\u2028",
);
const jsonish = fc.array(pieces, { maxLength: 24 }).map((parts) => parts.join(""));

describe("CPython json.loads, ported", () => {
  it("gives CPython's value or its exact error message on JSON-like text", () => {
    const samples = fc.sample(jsonish, { numRuns: 4000, seed: 20 });
    samples.push(
      '{"name": "search", "arguments": {"query": "a" "b"}}',
      '{"name": "search" "arguments": {}}',
      '{"a": [1, 2,]}',
      '{"a": 1}}',
      "[1, 2",
      '{"a":\n  1,\n  "b" 2}',
      '{"😀": "\\q"}',
      '"\\ud83d\\u12"',
      '{"k": 1, "k": 2, "2": 0, "1": 0}',
      "12345678901234567890123",
      "1e400",
      "[1.0, 100000000000000000.0, 0.0001, 0.00001, 1e22, -0.0]",
    );
    const expected = python(samples.map((text) => ["loads", text]));
    for (const [index, text] of samples.entries()) {
      assert.equal(ours(text), expected[index], `for ${JSON.stringify(text)}`);
    }
  });

  it("raises the recursion error on deep nesting instead of overflowing", () => {
    assert.throws(
      () => pyJsonLoads("[".repeat(100_000)),
      /maximum recursion depth exceeded while decoding a JSON array/,
    );
  });
});

describe("str.strip and repr(float)", () => {
  it("strip removes exactly Python's whitespace", () => {
    const chars = fc.constantFrom(
      " ",
      "\t",
      "\n",
      "\x1c",
      "\x85",
      "\u00a0",
      "\u200b",
      "\ufeff",
      "\u3000",
      "a",
      "\u180e",
    );
    const samples = fc.sample(
      fc.array(chars, { maxLength: 8 }).map((parts) => parts.join("")),
      {
        numRuns: 500,
        seed: 7,
      },
    );
    const expected = python(samples.map((text) => ["strip", text]));
    for (const [index, text] of samples.entries()) assert.equal(pyStrip(text), expected[index]);
  });

  it("repr(float) matches for magnitudes across the fixed/scientific boundaries", () => {
    const samples = fc.sample(fc.double({ noNaN: true }), { numRuns: 1000, seed: 3 }).map(String);
    samples.push("1e16", "1e15", "123456789012345680", "0.0001", "0.00001", "1.5e-7", "-2.5e+300", "5e-324");
    const expected = python(samples.map((text) => ["float", text]));
    for (const [index, text] of samples.entries()) assert.equal(pyReprFloat(Number(text)), expected[index], text);
  });
});
