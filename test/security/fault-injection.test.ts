import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { jetstreamManager } from "@nats-io/jetstream";
import { connect } from "@nats-io/transport-node";
import sharp from "sharp";
import {
  ExecuteRequest,
  ImageDelivery,
  ResultStatus,
  ToolGatewayClient,
  type ToolResult,
} from "../../generated/toolplane/gateway/v1/gateway.js";
import { CALLS_STREAM } from "../../services/runtime/src/events.js";
import { createClient, invoke } from "../../services/runtime/src/index.js";
import { type SpawnedNats, type SpawnedService, spawnNats, spawnService } from "../support/processes.js";

/**
 * Faults under load: each backend is killed outright while calls are in flight,
 * then brought back on its address; NATS is killed and restarted. The gateway
 * must report exactly the affected calls as INFRA_ERROR (never as the model's
 * error), keep serving the other tools, recover when the service returns, and
 * lose no call event.
 */
const TOOLS = {
  zoom: { name: "image_zoom_in_tool", args: { bbox_2d: [10, 10, 200, 150], label: "x" }, service: "image" },
  code: { name: "code", args: { code: "print(6 * 7)" }, service: "code" },
  search: { name: "search", args: { query: "histogram equalization" }, service: "search" },
} as const;
type ToolKey = keyof typeof TOOLS;

describe("fault injection through the gateway", () => {
  let nats: SpawnedNats;
  const services: Record<string, SpawnedService> = {};
  let gateway: SpawnedService;
  let client: ToolGatewayClient;
  const sessions: string[] = [];
  let calls = 0;
  // Owned here, not by spawnNats, so it survives the kill and restart.
  const natsStore = mkdtempSync(join(tmpdir(), "toolplane-faults-nats-"));

  before(async () => {
    nats = await spawnNats(undefined, natsStore);
    for (const name of ["image", "code", "search"]) services[name] = await spawnService(name);
    gateway = await spawnService("gateway", {
      TOOLPLANE_NATS_URL: nats.url,
      TOOLPLANE_IMAGE_ADDR: services.image?.address ?? "",
      TOOLPLANE_CODE_ADDR: services.code?.address ?? "",
      TOOLPLANE_SEARCH_ADDR: services.search?.address ?? "",
    });
    client = createClient(ToolGatewayClient, gateway.address);
    const photo = await sharp({ create: { width: 320, height: 240, channels: 3, background: "#336699" } })
      .png()
      .toBuffer();
    for (let i = 0; i < 4; i++) {
      const created = await invoke(client, client.createSession, {
        rolloutId: "faults",
        trajectoryId: `faults-${i}`,
        images: [{ data: photo, mimeType: "", width: 0, height: 0 }],
        idleTtlSeconds: 600,
      });
      sessions.push(created.sessionId);
    }
  });
  after(async () => {
    client?.close();
    await gateway?.stop();
    for (const service of Object.values(services)) await service.stop();
    await nats?.stop();
    rmSync(natsStore, { recursive: true, force: true });
  });

  const execute = async (tool: ToolKey, session: number): Promise<ToolResult> => {
    calls += 1;
    const spec = TOOLS[tool];
    const response = await invoke(
      client,
      client.execute,
      ExecuteRequest.fromPartial({
        sessionId: sessions[session],
        call: { callId: `${tool}-${calls}`, name: spec.name, argumentsJson: JSON.stringify(spec.args) },
        imageDelivery: ImageDelivery.IMAGE_DELIVERY_REFERENCE,
        timeoutMs: 20_000,
      }),
    );
    return response.result as ToolResult;
  };
  const mix = (tools: ToolKey[]) =>
    Promise.all(tools.flatMap((tool) => sessions.map((_, session) => execute(tool, session))));

  /** Polls until the tool answers OK again (the gateway reconnects by itself). */
  const recovers = async (tool: ToolKey, session: number) => {
    let last: ToolResult | undefined;
    for (let attempt = 0; attempt < 60; attempt++) {
      last = await execute(tool, session);
      if (last.status === ResultStatus.RESULT_STATUS_OK) return;
      assert.equal(last.status, ResultStatus.RESULT_STATUS_INFRA_ERROR, `never a model error: ${last.error?.message}`);
      await new Promise((resolve) => setTimeout(resolve, 250));
    }
    assert.fail(`${tool} did not recover: ${last?.error?.message}`);
  };

  it("everything answers OK before any fault", async () => {
    for (const result of await mix(["zoom", "code", "search"])) {
      assert.equal(result.status, ResultStatus.RESULT_STATUS_OK, `${result.name}: ${result.error?.message}`);
    }
  });

  for (const victim of ["zoom", "search", "code"] as const) {
    it(`${TOOLS[victim].service} killed mid-load: its calls are INFRA_ERROR, the others OK, then it recovers`, async () => {
      const service = TOOLS[victim].service;
      const address = services[service]?.address ?? "";
      const inFlight = mix(["zoom", "code", "search"]);
      await services[service]?.stop("SIGKILL");
      const during = await inFlight;
      const afterwards = await mix(["zoom", "code", "search"]);
      for (const result of [...during, ...afterwards]) {
        if (result.name === TOOLS[victim].name) {
          assert.notEqual(
            result.status,
            ResultStatus.RESULT_STATUS_MODEL_ERROR,
            `never the model's fault: ${result.error?.message}`,
          );
        } else {
          assert.equal(
            result.status,
            ResultStatus.RESULT_STATUS_OK,
            `${result.name} is unaffected: ${result.error?.message}`,
          );
        }
      }
      for (const result of afterwards.filter((r) => r.name === TOOLS[victim].name)) {
        assert.equal(result.status, ResultStatus.RESULT_STATUS_INFRA_ERROR, "a dead service is INFRA_ERROR");
        assert.equal(result.error?.errorClass, 2);
      }

      services[service] = await spawnService(service, { TOOLPLANE_GRPC_PORT: address.split(":").at(-1) as string });
      for (let session = 0; session < sessions.length; session++) await recovers(victim, session);
    });
  }

  it("NATS killed and restarted mid-run: calls keep succeeding and no event is lost", async () => {
    const port = nats.port;
    const inFlight = mix(["zoom", "search"]);
    await nats.stop("SIGKILL").catch(() => undefined);
    const during = await inFlight;
    const whileDown = await mix(["zoom", "search"]);
    for (const result of [...during, ...whileDown]) {
      assert.equal(
        result.status,
        ResultStatus.RESULT_STATUS_OK,
        `tool calls do not depend on NATS: ${result.error?.message}`,
      );
    }
    nats = await spawnNats(port, natsStore);
    await mix(["zoom"]);

    // Stopping the gateway flushes the events it buffered while NATS was away.
    client.close();
    await gateway.stop();
    const connection = await connect({ servers: nats.url });
    const stored = (await (await jetstreamManager(connection)).streams.info(CALLS_STREAM)).state.messages;
    await connection.close();
    const eventLines = gateway.output.filter((line) => /events|nats/i.test(line)).slice(-5);
    assert.equal(stored, calls * 2, `every call left its started and finished events:\n${eventLines.join("\n")}`);
  });
});
