/**
 * What an operator does in Jaeger: search traces by toolplane.trajectory_id and see one Step of a `print` cell
 * from the gateway down into the code service. Against Jaeger all-in-one in a container where a Docker engine is
 * reachable, else against the test's OTLP receiver (the same query, answered from the spans it received).
 */
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import {
  ImageDelivery,
  ModelFormat,
  ResultStatus,
  type StepResponse,
  ToolGatewayClient,
} from "../../generated/toolplane/gateway/v1/gateway.js";
import { createClient, invoke } from "../../services/runtime/src/index.js";
import { declareVariant, dockerEngine, variantSkips } from "../support/containers.js";
import { spawnTraced, type TracedProcess } from "../support/otlp.js";
import { freePort } from "../support/processes.js";
import {
  type StoredSpan,
  startJaegerTraceStore,
  startLocalTraceStore,
  type TraceStore,
} from "../support/trace-store.js";

const skips = await variantSkips("the trace store", "the test's OTLP receiver");
const TRAJECTORY = `traj-jaeger-${randomBytes(4).toString("hex")}`;
const PRINT_TURN = "Let me check.\n<code>\n```python\nprint(6 * 7)\n```\n</code>";

describe("a Step's trace, found by toolplane.trajectory_id", () => {
  let store: TraceStore;
  let code: TracedProcess;
  let gateway: TracedProcess;
  let step: StepResponse;
  let found: StoredSpan[] = [];

  before(async () => {
    store = (await dockerEngine()).reachable ? await startJaegerTraceStore() : await startLocalTraceStore();
    const otel = { OTEL_EXPORTER_OTLP_ENDPOINT: store.otlpEndpoint, OTEL_BSP_SCHEDULE_DELAY: "100" };
    code = await spawnTraced(join("services", "code", "src", "main.js"), {
      ...otel,
      OTEL_SERVICE_NAME: "toolplane-code",
      TOOLPLANE_CODE_POOL_SIZE: "1",
      TOOLPLANE_CODE_JS_HOST_PROCESSES: "1",
    });
    gateway = await spawnTraced(join("services", "gateway", "src", "main.js"), {
      ...otel,
      OTEL_SERVICE_NAME: "toolplane-gateway",
      TOOLPLANE_CODE_ADDR: code.address,
      TOOLPLANE_IMAGE_ADDR: `127.0.0.1:${await freePort()}`,
      TOOLPLANE_SEARCH_ADDR: `127.0.0.1:${await freePort()}`,
      TOOLPLANE_NATS_URL: "",
    });
    const client = createClient(ToolGatewayClient, gateway.address);
    try {
      const { sessionId } = await invoke(client, client.createSession, {
        rolloutId: "rollout-jaeger",
        trajectoryId: TRAJECTORY,
        images: [],
        idleTtlSeconds: 0,
      });
      step = await invoke(client, client.step, {
        sessionId,
        format: ModelFormat.MODEL_FORMAT_DEEPEYES_V2,
        text: PRINT_TURN,
        imageDelivery: ImageDelivery.IMAGE_DELIVERY_BYTES,
        timeoutMs: 30_000,
        step: 1,
      });
    } finally {
      client.close();
    }
    // SIGTERM flushes each service's spans.
    await gateway.stop();
    await code.stop();
    const deadline = Date.now() + 30_000;
    while (!found.some((span) => span.service === "toolplane-code") && Date.now() < deadline) {
      found = await store.tracesOfTrajectory("toolplane-gateway", TRAJECTORY);
      await new Promise((resolve) => setTimeout(resolve, 250));
    }
  });
  after(async () => {
    await gateway?.stop();
    await code?.stop();
    await store?.stop();
  });

  declareVariant("the trace store (Jaeger)", skips, () => store?.via);

  it("the Step ran the print cell", () => {
    assert.equal(step.status, ResultStatus.RESULT_STATUS_OK, JSON.stringify(step.error));
    assert.match(step.observation, /42/);
  });

  it("one trace holds the gateway's Step and the code service's execution", () => {
    const traces = new Set(found.map((span) => span.traceId));
    assert.equal(traces.size, 1, JSON.stringify(found, null, 1));
    const names = (service: string) => found.filter((span) => span.service === service).map((span) => span.name);
    assert.ok(
      names("toolplane-gateway").includes("grpc.toolplane.gateway.v1.ToolGateway/Step"),
      String(names("toolplane-gateway")),
    );
    assert.ok(names("toolplane-gateway").includes("toolplane.tool_call"), String(names("toolplane-gateway")));
    assert.ok(names("toolplane-code").some((name) => name.startsWith("grpc.toolplane.code.v1.CodeService/")));
  });
});
