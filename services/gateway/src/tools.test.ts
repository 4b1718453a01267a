import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { codeTimeoutMs, openAiSchema, TOOLS, ToolRegistry } from "./tools.js";

describe("tool registry", () => {
  it("every tool has an OpenAI function schema with an object of parameters", () => {
    for (const tool of TOOLS) {
      const schema = openAiSchema(tool) as { type: string; function: { name: string; parameters: { type: string } } };
      assert.equal(schema.type, "function");
      assert.equal(schema.function.name, tool.name);
      assert.equal(schema.function.parameters.type, "object");
    }
    assert.throws(() => new ToolRegistry().list(["search", "nope"]), /unknown tool "nope"/);
  });
});

describe("the sandbox timeout of a code cell", () => {
  const now = 1_000_000;
  it("stays a little under the call's deadline so a runaway cell is the model's timeout", () => {
    assert.equal(codeTimeoutMs(now + 3000, 30_000, now), 2400);
    assert.equal(codeTimeoutMs(now + 60_000, 30_000, now), 0, "the session's own, shorter timeout applies");
    assert.equal(codeTimeoutMs(now + 20_000, undefined, now), 18_000);
  });

  it("is -1 once the deadline has passed (an infrastructure deadline, not the model's)", () => {
    assert.equal(codeTimeoutMs(now, 30_000, now), -1);
    assert.equal(codeTimeoutMs(now - 5, 30_000, now), -1);
  });
});
