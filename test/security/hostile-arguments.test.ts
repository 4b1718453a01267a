import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import {
  ExecuteRequest,
  ModelFormat,
  ResultStatus,
  StepRequest,
  ToolGatewayClient,
} from "../../generated/toolplane/gateway/v1/gateway.js";
import { createClient, invoke } from "../../services/runtime/src/index.js";
import { type SpawnedService, spawnService } from "../support/processes.js";

/**
 * Hostile tool-call arguments through Execute and Step: wrong types, non-objects,
 * deep nesting, prototype keys. Every one is the model's error, rejected by the
 * gateway before any backend is involved (the backends here are unreachable, so
 * anything that got through would show up as an infrastructure error).
 */
const DEEP = 100_000;
const EXECUTE_CASES: Record<string, string> = {
  "deeply nested array": `${"[".repeat(DEEP)}${"]".repeat(DEEP)}`,
  "deeply nested object": `{"query":${'{"a":'.repeat(DEEP)}1${"}".repeat(DEEP)}}`,
  "wrong type": '{"query": 5}',
  "not an object": '"hello"',
  "not JSON": "{query: 'x'",
  "prototype key": '{"__proto__": {"query": "x"}}',
  "prototype key beside a valid query": '{"query": "x", "__proto__": {"polluted": true}}',
  "constructor key": '{"query": "x", "constructor": {"prototype": {"polluted": true}}}',
  "nested prototype key": '{"query": "x", "options": [{"prototype": 1}]}',
  "array instead of string": '{"query": ["a", "b"]}',
};

describe("hostile arguments through the gateway", () => {
  let gateway: SpawnedService;
  let client: ToolGatewayClient;
  let sessionId = "";

  before(async () => {
    gateway = await spawnService("gateway", {
      TOOLPLANE_IMAGE_ADDR: "127.0.0.1:1",
      TOOLPLANE_CODE_ADDR: "127.0.0.1:1",
      TOOLPLANE_SEARCH_ADDR: "127.0.0.1:1",
    });
    client = createClient(ToolGatewayClient, gateway.address);
    sessionId = (
      await invoke(client, client.createSession, {
        rolloutId: "hostile",
        trajectoryId: "",
        images: [],
        idleTtlSeconds: 60,
      })
    ).sessionId;
  });
  after(async () => {
    client?.close();
    await gateway?.stop();
  });

  for (const [name, argumentsJson] of Object.entries(EXECUTE_CASES)) {
    it(`Execute with ${name}: MODEL_ERROR, INVALID_ARGUMENT`, async () => {
      const response = await invoke(
        client,
        client.execute,
        ExecuteRequest.fromPartial({ sessionId, call: { callId: name, name: "search", argumentsJson } }),
      );
      assert.equal(
        response.result?.status,
        ResultStatus.RESULT_STATUS_MODEL_ERROR,
        JSON.stringify(response.result?.error),
      );
      assert.equal(response.result?.error?.code, "INVALID_ARGUMENT");
    });
  }

  it("Step with deeply nested arguments in a Hermes tool call is the model's error", async () => {
    const text = `<tool_call>{"name": "search", "arguments": {"query": ${'{"a":'.repeat(DEEP)}1${"}".repeat(DEEP)}}}</tool_call>`;
    const response = await invoke(
      client,
      client.step,
      StepRequest.fromPartial({ sessionId, format: ModelFormat.MODEL_FORMAT_HERMES, text }),
    );
    assert.notEqual(response.status, ResultStatus.RESULT_STATUS_INFRA_ERROR, JSON.stringify(response.error));
    assert.notEqual(response.status, ResultStatus.RESULT_STATUS_OK);
  });

  for (const key of ["__proto__", "constructor", "prototype"]) {
    it(`Execute with a "${key}" key: INVALID_ARGUMENT naming the key, before any backend`, async () => {
      const argumentsJson = `{"query": "x", "${key}": {"polluted": true}}`;
      const response = await invoke(
        client,
        client.execute,
        ExecuteRequest.fromPartial({ sessionId, call: { callId: key, name: "search", argumentsJson } }),
      );
      assert.equal(response.result?.status, ResultStatus.RESULT_STATUS_MODEL_ERROR);
      assert.equal(response.result?.error?.code, "INVALID_ARGUMENT");
      assert.equal(
        response.result?.error?.message,
        `call.arguments_json has the key "${key}", which is not allowed in arguments`,
      );
      assert.equal(({} as Record<string, unknown>).polluted, undefined);
    });

    it(`Step with a "${key}" key in a Hermes tool call: the model's INVALID_ARGUMENT, shown to it`, async () => {
      const text = `<tool_call>{"name": "search", "arguments": {"query": "x", "${key}": {"polluted": true}}}</tool_call>`;
      const response = await invoke(
        client,
        client.step,
        StepRequest.fromPartial({ sessionId, format: ModelFormat.MODEL_FORMAT_HERMES, text }),
      );
      assert.equal(response.status, ResultStatus.RESULT_STATUS_MODEL_ERROR, JSON.stringify(response.error));
      assert.equal(response.results[0]?.error?.code, "INVALID_ARGUMENT");
      assert.match(response.observation, new RegExp(`has the key "${key}"`));
    });
  }

  it("the gateway still serves after all of it", async () => {
    const tools = await invoke(client, client.listTools, { names: [] });
    assert.ok(tools.tools.some((tool) => tool.name === "search"));
  });
});
