import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { describe, it } from "node:test";
import { defaultKernelPath } from "./python/sandbox.js";
import { timeLimitExceeded } from "./texts.js";

const kernelSource = readFileSync(defaultKernelPath(), "utf8");

describe("the code service's texts", () => {
  it("the Python kernel words a cell's time limit as the TypeScript side does", () => {
    const template = /def time_limit_message\(timeout_ms\):[\s\S]*?return f"([^"]*)"/.exec(kernelSource)?.[1];
    assert.ok(template, "kernel.py defines time_limit_message with one f-string");
    assert.equal(template.replace("{timeout_ms}", "1234"), timeLimitExceeded(1234));
  });
});
