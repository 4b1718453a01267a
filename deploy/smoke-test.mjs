// `helm test` (the chart's test hook pod, from the gateway image): calls the gateway the way a model server would
// and says in one line per check what answered. Exit 0 = every check passed, 1 = the first failure, named.
//   TOOLPLANE_GATEWAY_ADDR     host:port of the gateway (the chart sets its Service)
//   TOOLPLANE_SMOKE_CODE       "false" skips the Step of a print cell (a release without the code service)
//   TOOLPLANE_SMOKE_TIMEOUT_MS deadline of each call (default 60000: a code pod may still be warming up)
// Plain JavaScript over the image's compiled gRPC client, so that it runs in the image without a build step.
import { credentials, loadPackageDefinition } from "@grpc/grpc-js";
import { loadSync } from "@grpc/proto-loader";
import { protoPath } from "grpc-health-check";
import {
  CloseSessionRequest,
  CreateSessionRequest,
  ImageDelivery,
  ListToolsRequest,
  ModelFormat,
  ResultStatus,
  resultStatusToJSON,
  StepOutcome,
  StepRequest,
  ToolGatewayClient,
} from "../dist/generated/toolplane/gateway/v1/gateway.js";

const address = process.env.TOOLPLANE_GATEWAY_ADDR ?? "";
if (!/^[^\s:]+:[1-9][0-9]*$/.test(address))
  fail(`TOOLPLANE_GATEWAY_ADDR must be host:port, got ${JSON.stringify(address)}`);
const runCode = process.env.TOOLPLANE_SMOKE_CODE !== "false";
const timeoutMs = Number(process.env.TOOLPLANE_SMOKE_TIMEOUT_MS ?? 60_000);
if (!Number.isInteger(timeoutMs) || timeoutMs <= 0) fail("TOOLPLANE_SMOKE_TIMEOUT_MS must be a positive integer");

function say(line) {
  process.stdout.write(`${line}\n`);
}

function fail(message) {
  process.stderr.write(`smoke test failed: ${message}\n`);
  process.exit(1);
}

/** One unary call as a promise, with the per-call deadline. */
function call(client, method, request) {
  return new Promise((resolve, reject) =>
    client[method](request, { deadline: new Date(Date.now() + timeoutMs) }, (error, response) =>
      error ? reject(new Error(`${method}: ${error.message}`)) : resolve(response),
    ),
  );
}

const { grpc } = loadPackageDefinition(loadSync(protoPath, { enums: String }));
const health = new grpc.health.v1.Health(address, credentials.createInsecure());
const gateway = new ToolGatewayClient(address, credentials.createInsecure());
try {
  const { status } = await call(health, "check", { service: "toolplane.gateway.v1.ToolGateway" });
  if (status !== "SERVING") throw new Error(`health: the gateway reports ${status}`);
  say(`health: ${address} is SERVING`);

  const { tools } = await call(gateway, "listTools", ListToolsRequest.fromPartial({}));
  if (tools.length === 0) throw new Error("ListTools: no tool is offered");
  say(`ListTools: ${tools.map((tool) => tool.name).join(", ")}`);

  if (runCode) {
    const { sessionId } = await call(
      gateway,
      "createSession",
      CreateSessionRequest.fromPartial({ rolloutId: "helm-test", trajectoryId: `helm-test-${Date.now()}` }),
    );
    try {
      const step = await call(
        gateway,
        "step",
        StepRequest.fromPartial({
          sessionId,
          format: ModelFormat.MODEL_FORMAT_DEEPEYES_V2,
          text: "<code>\n```python\nprint(6 * 7)\n```\n</code>",
          imageDelivery: ImageDelivery.IMAGE_DELIVERY_BYTES,
          timeoutMs,
          step: 1,
        }),
      );
      if (step.outcome !== StepOutcome.STEP_OUTCOME_TOOL_CALLED || step.status !== ResultStatus.RESULT_STATUS_OK) {
        throw new Error(`Step: ${resultStatusToJSON(step.status)} ${step.error?.message ?? ""}`.trim());
      }
      if (!/\b42\b/.test(step.observation))
        throw new Error(`Step: print(6 * 7) observed ${JSON.stringify(step.observation)}`);
      say("Step: print(6 * 7) ran in the code sandbox and printed 42");
    } finally {
      await call(gateway, "closeSession", CloseSessionRequest.fromPartial({ sessionId })).catch(() => undefined);
    }
  }
  say("smoke test passed");
} catch (error) {
  fail(error.message);
} finally {
  health.close();
  gateway.close();
}
