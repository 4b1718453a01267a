import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import sharp from "sharp";
import { ErrorClass } from "../../generated/toolplane/common/v1/common.js";
import {
  ExecuteRequest,
  ImageDelivery,
  ModelFormat,
  ResultStatus,
  type StepResponse,
  ToolGatewayClient,
  type ToolResult,
} from "../../generated/toolplane/gateway/v1/gateway.js";
import { createClient, invoke } from "../../services/runtime/src/index.js";
import { type SpawnedService, spawnService } from "../support/processes.js";

/**
 * One trajectory can never hurt another, on loopback with the real services:
 * an attacker trajectory floods the gateway (Steps with thousands of tool
 * calls, 70 one-second cells on its one code session, hundreds of searches at
 * once) while a victim trajectory of the same rollout and the same caller runs
 * its calls one after the other. The victim sees no error and keeps its
 * latency (p99 within 2x its unloaded p99 + 50 ms, as issue 18 asks); every
 * failure the attacker gets is its own (class MODEL), none is the
 * infrastructure's.
 */
/** Victim rounds per measurement: with 100 samples the p99 is not simply the slowest one. */
const ROUNDS = 100;
const SEARCH = { query: "histogram equalization" };
const ZOOM = { bbox_2d: [10, 10, 200, 150] };

function percentile(values: number[], p: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)] as number;
}

/** Every failure in the results is the model's: none is INFRA_ERROR, none carries the infrastructure class. */
function assertNoInfrastructure(results: ToolResult[], what: string): void {
  for (const result of results) {
    assert.notEqual(result.status, ResultStatus.RESULT_STATUS_INFRA_ERROR, `${what}: ${JSON.stringify(result.error)}`);
    if (result.error)
      assert.equal(result.error.errorClass, ErrorClass.ERROR_CLASS_MODEL, `${what}: ${result.error.message}`);
  }
}

describe("fairness: a flooding trajectory cannot hurt another", () => {
  const services: Record<string, SpawnedService> = {};
  let gateway: SpawnedService;
  let client: ToolGatewayClient;
  let attacker = "";
  let victim = "";

  before(async () => {
    for (const name of ["image", "code", "search"]) services[name] = await spawnService(name);
    gateway = await spawnService("gateway", {
      TOOLPLANE_IMAGE_ADDR: services.image?.address ?? "",
      TOOLPLANE_CODE_ADDR: services.code?.address ?? "",
      TOOLPLANE_SEARCH_ADDR: services.search?.address ?? "",
      // Few slots, so that a modest flood (one this 2-core box can parse while the victim measures) is many times
      // the capacity: without fair shares the victim would wait behind hundreds of the attacker's calls.
      TOOLPLANE_GATEWAY_SEARCH_CONCURRENCY: "4",
      TOOLPLANE_GATEWAY_IMAGE_CONCURRENCY: "4",
      TOOLPLANE_GATEWAY_CODE_CONCURRENCY: "4",
    });
    client = createClient(ToolGatewayClient, gateway.address);
    const photo = await sharp({ create: { width: 320, height: 240, channels: 3, background: "#336699" } })
      .png()
      .toBuffer();
    const open = async (trajectoryId: string) =>
      (
        await invoke(client, client.createSession, {
          rolloutId: "fairness",
          trajectoryId,
          images: [{ data: photo, mimeType: "", width: 0, height: 0 }],
          idleTtlSeconds: 600,
        })
      ).sessionId;
    attacker = await open("attacker");
    victim = await open("victim");
  });
  after(async () => {
    client?.close();
    await gateway?.stop();
    for (const service of Object.values(services)) await service.stop();
  });

  let calls = 0;
  const execute = async (sessionId: string, name: string, args: unknown, timeoutMs = 20_000): Promise<ToolResult> => {
    calls += 1;
    const response = await invoke(
      client,
      client.execute,
      ExecuteRequest.fromPartial({
        sessionId,
        call: { callId: `${name}-${calls}`, name, argumentsJson: JSON.stringify(args) },
        imageDelivery: ImageDelivery.IMAGE_DELIVERY_REFERENCE,
        timeoutMs,
      }),
    );
    return response.result as ToolResult;
  };
  const step = (sessionId: string, format: ModelFormat, text: string): Promise<StepResponse> =>
    invoke(client, client.step, {
      sessionId,
      format,
      text,
      imageDelivery: ImageDelivery.IMAGE_DELIVERY_REFERENCE,
      timeoutMs: 20_000,
      step: 1,
    });

  /** The victim's calls, one after the other; each must succeed. Latencies by tool. */
  const victimRounds = async (rounds: number): Promise<Record<string, number[]>> => {
    const latencies: Record<string, number[]> = { code: [], search: [], zoom: [] };
    const timed = async (tool: string, run: () => Promise<ToolResult>) => {
      const started = performance.now();
      const result = await run();
      latencies[tool]?.push(performance.now() - started);
      assert.equal(result.status, ResultStatus.RESULT_STATUS_OK, `victim ${tool}: ${JSON.stringify(result.error)}`);
    };
    for (let round = 0; round < rounds; round++) {
      await timed("code", () => execute(victim, "code", { code: "print(1)" }));
      await timed("search", () => execute(victim, "search", SEARCH));
      await timed("zoom", () => execute(victim, "image_zoom_in_tool", ZOOM));
    }
    return latencies;
  };

  it("a Step with 2,000 Hermes tool calls runs the per-turn cap and tells the model the rest did not run", async () => {
    const text = Array.from(
      { length: 2000 },
      (_, i) => `<tool_call>{"name": "search", "arguments": {"query": "flood ${i}"}}</tool_call>`,
    ).join("\n");
    const response = await step(attacker, ModelFormat.MODEL_FORMAT_HERMES, text);
    assert.equal(response.results.length, 17, "16 calls ran, one result stands for the other 1,984");
    assertNoInfrastructure(response.results, "hermes flood");
    const excess = response.results[16] as ToolResult;
    assert.equal(excess.status, ResultStatus.RESULT_STATUS_MODEL_ERROR);
    assert.equal(excess.error?.code, "RESOURCE_EXHAUSTED");
    assert.equal(
      excess.error?.message,
      "the turn has 2000 tool calls, over the limit of 16 per turn (TOOLPLANE_GATEWAY_MAX_CALLS_PER_TURN): the first 16 ran, the other 1984 (from call call_16) did not",
    );
    assert.equal(response.status, ResultStatus.RESULT_STATUS_MODEL_ERROR);
    assert.match(response.observation, /the other 1984 \(from call call_16\) did not/, "the model is shown it");
  });

  it("a Step with 5,000 OpenAI tool calls: the same cap, the model's error", async () => {
    const text = JSON.stringify(
      Array.from({ length: 5000 }, (_, i) => ({
        id: `c${i}`,
        type: "function",
        function: { name: "search", arguments: JSON.stringify({ query: `flood ${i}` }) },
      })),
    );
    const response = await step(attacker, ModelFormat.MODEL_FORMAT_OPENAI, text);
    assert.equal(response.results.length, 17);
    assertNoInfrastructure(response.results, "openai flood");
    assert.equal(response.results[16]?.callId, "c16");
    assert.match(
      response.results[16]?.error?.message ?? "",
      /^the turn has 5000 tool calls, over the limit of 16 per turn/,
    );
  });

  /**
   * One measurement: the victim unloaded, then under the attack. The attack runs for as long as the victim
   * measures: a first burst, then every 250 ms 32 more searches (eight times the search slots) and a Step of a
   * thousand zoom calls, with 70 one-second cells queued on its one code session. Paced, not a tight loop: on this
   * 2-core box a loop of instant refusals saturates the CPU, which no admission policy can share (per-caller rate
   * limits, TOOLPLANE_API_KEYS, are for that).
   */
  const measure = async () => {
    const unloaded = await victimRounds(ROUNDS);
    const flood = Array.from(
      { length: 1000 },
      (_, i) =>
        `<tool_call>{"name": "image_zoom_in_tool", "arguments": {"bbox_2d": [${i % 50}, 10, 200, 150]}}</tool_call>`,
    ).join("");
    const attack: Array<Promise<ToolResult[]>> = [
      // 70 one-second cells on the attacker's one code session: they queue on that session, not on the shared slots.
      Promise.all(
        Array.from({ length: 70 }, () => execute(attacker, "code", { code: "import time\ntime.sleep(1)" }, 8000)),
      ),
    ];
    let wave = 0;
    const send = (searches: number) => {
      wave += 1;
      const round = wave;
      attack.push(
        Promise.all(
          Array.from({ length: searches }, (_, i) => execute(attacker, "search", { query: `x ${round} ${i}` })),
        ),
      );
      attack.push(step(attacker, ModelFormat.MODEL_FORMAT_HERMES, flood).then((response) => response.results));
    };
    send(200);
    const waves = setInterval(() => send(32), 250);
    await new Promise((resolve) => setTimeout(resolve, 500));
    const loaded = await victimRounds(ROUNDS);
    clearInterval(waves);
    const attackResults = (await Promise.all(attack)).flat();
    const verdicts = Object.keys(unloaded).map((tool) => {
      const before = percentile(unloaded[tool] as number[], 99);
      const during = percentile(loaded[tool] as number[], 99);
      return {
        ok: during <= 2 * before + 50,
        line: `${tool}: unloaded p99 ${before.toFixed(1)} ms, under attack p99 ${during.toFixed(1)} ms (bound ${(2 * before + 50).toFixed(1)})`,
      };
    });
    return { verdicts, attackResults };
  };

  it("under an attacker's flood of code, search and Step calls the victim sees no error and keeps its latency", async () => {
    await victimRounds(2);
    // The box is shared (other test processes, other work): a measurement that misses the bound is taken once more,
    // and both are printed; a victim that really waited behind the attacker misses it every time.
    const attempts = [await measure()];
    if (!attempts[0]?.verdicts.every((verdict) => verdict.ok)) attempts.push(await measure());
    const attackResults = attempts.flatMap((attempt) => attempt.attackResults);
    const byOutcome = new Map<string, number>();
    for (const result of attackResults) {
      const key = `${result.name} ${result.error?.code ?? "OK"}`;
      byOutcome.set(key, (byOutcome.get(key) ?? 0) + 1);
    }
    for (const [index, attempt] of attempts.entries()) {
      process.stdout.write(`fairness, measurement ${index + 1}: ${attempt.verdicts.map((v) => v.line).join("; ")}\n`);
    }
    process.stdout.write(`fairness: attacker outcomes ${JSON.stringify(Object.fromEntries(byOutcome))}\n`);
    const last = attempts.at(-1)?.verdicts ?? [];
    for (const verdict of last) assert.ok(verdict.ok, `victim ${verdict.line}`);
    assertNoInfrastructure(attackResults, "attacker");
    // The cells beyond the session's lane were refused at once, the model's RESOURCE_EXHAUSTED; those that waited
    // past their deadline behind the attacker's own cells are its DEADLINE_EXCEEDED.
    const code = attackResults.filter((result) => result.name === "code");
    assert.ok(code.some((result) => result.status === ResultStatus.RESULT_STATUS_OK));
    assert.ok(code.some((result) => result.error?.code === "RESOURCE_EXHAUSTED"));
    assert.ok(code.some((result) => result.error?.code === "DEADLINE_EXCEEDED"));
  });
});
