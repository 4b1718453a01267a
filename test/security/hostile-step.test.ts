import assert from "node:assert/strict";
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import sharp from "sharp";
import { ErrorClass } from "../../generated/toolplane/common/v1/common.js";
import {
  ExecuteRequest,
  Fidelity,
  ImageDelivery,
  ModelFormat,
  ResultStatus,
  type StepResponse,
  ToolGatewayClient,
  type ToolResult,
} from "../../generated/toolplane/gateway/v1/gateway.js";
import { createClient, invoke, ToolplaneError } from "../../services/runtime/src/index.js";
import { distRoot, type SpawnedService, spawnService } from "../support/processes.js";

/**
 * The model's actions are never the infrastructure's errors, through the
 * gateway: every program of the hostile corpus (test/security/corpus), run as
 * the model would run it, through Step (Python in DeepEyesV2's <code> fence,
 * JavaScript as a Hermes tool call) and through Execute, yields OK or a MODEL
 * error, never INFRA_ERROR and never a failed RPC. test/security/hostile-code
 * runs the same corpus against the code service directly, with each program's
 * own expectation. Also here: annotate labels holding characters XML forbids,
 * through every path that reaches the image service's annotate.
 */
const corpusRoot = join(distRoot, "..", "test", "security", "corpus");
/** Programs at once: the corpus has ~55, most end within a second; the CPU-bound ones run to their timeout. */
const PARALLEL = 4;
const CALL_TIMEOUT_MS = 6000;

interface Program {
  file: string;
  language: "python" | "javascript";
  source: string;
}

function programs(): Program[] {
  return (["python", "javascript"] as const).flatMap((language) =>
    readdirSync(join(corpusRoot, language))
      .sort()
      .map((file) => ({
        file: `${language}/${file}`,
        language,
        // No listener here: the port is one nothing listens on (a connection attempt fails either way).
        source: readFileSync(join(corpusRoot, language, file), "utf8").replaceAll("{{LISTENER_PORT}}", "9"),
      })),
  );
}

/** The Step text a model would write to run the program. */
function stepText(program: Program): { format: ModelFormat; text: string } {
  if (program.language === "python") {
    return {
      format: ModelFormat.MODEL_FORMAT_DEEPEYES_V2,
      text: `<code>\n\`\`\`python\n${program.source}\n\`\`\`\n</code>`,
    };
  }
  return {
    format: ModelFormat.MODEL_FORMAT_HERMES,
    text: `<tool_call>${JSON.stringify({ name: "javascript", arguments: { code: program.source } })}</tool_call>`,
  };
}

function assertModelsOwn(results: ToolResult[], what: string): void {
  for (const result of results) {
    const shown = `${what}: ${JSON.stringify(result.error)} ${result.text.slice(0, 300)}`;
    assert.notEqual(result.status, ResultStatus.RESULT_STATUS_INFRA_ERROR, shown);
    if (result.error) assert.equal(result.error.errorClass, ErrorClass.ERROR_CLASS_MODEL, shown);
    assert.doesNotMatch(result.text, /ESCAPED/, shown);
  }
}

describe("the model's actions through the gateway are never INFRASTRUCTURE", () => {
  const services: Record<string, SpawnedService> = {};
  let gateway: SpawnedService;
  let client: ToolGatewayClient;
  let photo: Buffer;

  before(async () => {
    services.image = await spawnService("image");
    services.code = await spawnService("code", { TOOLPLANE_IMAGE_ADDR: services.image.address });
    services.search = await spawnService("search");
    gateway = await spawnService("gateway", {
      TOOLPLANE_IMAGE_ADDR: services.image.address,
      TOOLPLANE_CODE_ADDR: services.code.address,
      TOOLPLANE_SEARCH_ADDR: services.search.address,
    });
    client = createClient(ToolGatewayClient, gateway.address);
    photo = await sharp({ create: { width: 320, height: 240, channels: 3, background: "#336699" } })
      .png()
      .toBuffer();
  });
  after(async () => {
    client?.close();
    await gateway?.stop();
    for (const service of Object.values(services)) await service.stop();
  });

  const openSession = async () =>
    (
      await invoke(client, client.createSession, {
        rolloutId: "hostile-step",
        trajectoryId: "",
        images: [{ data: photo, mimeType: "", width: 0, height: 0 }],
        idleTtlSeconds: 300,
      })
    ).sessionId;
  const closeSession = (sessionId: string) => invoke(client, client.closeSession, { sessionId }).catch(() => undefined);
  const execute = async (sessionId: string, name: string, args: unknown): Promise<ToolResult> =>
    (
      await invoke(
        client,
        client.execute,
        ExecuteRequest.fromPartial({
          sessionId,
          call: { callId: name, name, argumentsJson: JSON.stringify(args) },
          imageDelivery: ImageDelivery.IMAGE_DELIVERY_REFERENCE,
          timeoutMs: CALL_TIMEOUT_MS,
        }),
      )
    ).result as ToolResult;
  const step = (sessionId: string, format: ModelFormat, text: string): Promise<StepResponse> =>
    invoke(client, client.step, {
      sessionId,
      format,
      text,
      fidelity: Fidelity.FIDELITY_STRICT,
      imageDelivery: ImageDelivery.IMAGE_DELIVERY_REFERENCE,
      timeoutMs: CALL_TIMEOUT_MS,
      step: 1,
    });

  /** Runs the programs (a few at once), each through Step and Execute in fresh sessions; returns what failed. */
  const runCorpus = async (queue: Program[]): Promise<string[]> => {
    const failures: string[] = [];
    const runOne = async (program: Program) => {
      const sessions = [await openSession(), await openSession()];
      try {
        const { format, text } = stepText(program);
        const tool = program.language === "python" ? "code" : "javascript";
        const [stepped, executed] = await Promise.all([
          step(sessions[0] as string, format, text),
          execute(sessions[1] as string, tool, { code: program.source }),
        ]);
        assert.notEqual(stepped.status, ResultStatus.RESULT_STATUS_INFRA_ERROR, JSON.stringify(stepped.error));
        assert.doesNotMatch(stepped.observation, /ESCAPED/);
        assertModelsOwn(stepped.results, `${program.file} through Step`);
        assertModelsOwn([executed], `${program.file} through Execute`);
      } catch (error) {
        const detail = error instanceof ToolplaneError ? `RPC ${error.code} ${error.errorClass}: ` : "";
        failures.push(`${program.file}: ${detail}${error instanceof Error ? error.message : String(error)}`);
      } finally {
        for (const sessionId of sessions) await closeSession(sessionId);
      }
    };
    await Promise.all(
      Array.from({ length: PARALLEL }, async () => {
        for (let program = queue.shift(); program; program = queue.shift()) await runOne(program);
      }),
    );
    return failures;
  };

  it("every program of the hostile corpus, through Step and through Execute, is OK or the model's error", async () => {
    // Deep recursion and the fork bomb run to their time limit and beyond (issue 18's "timeout grace" row): the
    // kill answers at the cell's budget, inside the caller's deadline, so they too are the model's timeout.
    const queue = programs();
    assert.ok(queue.length > 40, `the corpus has ${queue.length} programs`);
    const failures = await runCorpus(queue);
    // The code service's sandbox events (host retirements and exits) say why a failure happened.
    const events = services.code?.output.filter((line) => /sandbox host event|zygote|restarting/.test(line)) ?? [];
    assert.deepEqual(failures, [], events.join("\n"));
  });

  const XML_INVALID_LABELS = ["\uFFFF", "a\uFFFEb", "\uD800", "\u0000\u001B", "ok \u{1F600}\uFFFF"];

  it("annotate labels with characters XML forbids: drawn (as U+FFFD) through Execute and Step", async () => {
    const sessionId = await openSession();
    for (const label of XML_INVALID_LABELS) {
      const args = {
        operations: [
          {
            annotate: {
              annotations: [
                { box: { left: 10, top: 40, right: 200, bottom: 200, unit: "COORDINATE_UNIT_PIXELS" }, label },
              ],
            },
          },
        ],
      };
      const executed = await execute(sessionId, "image_process", args);
      assert.equal(
        executed.status,
        ResultStatus.RESULT_STATUS_OK,
        `${JSON.stringify(label)}: ${JSON.stringify(executed.error)}`,
      );
      assert.equal(executed.images.length, 1);
      const stepped = await step(
        sessionId,
        ModelFormat.MODEL_FORMAT_HERMES,
        `<tool_call>${JSON.stringify({ name: "image_process", arguments: args })}</tool_call>`,
      );
      assert.equal(
        stepped.status,
        ResultStatus.RESULT_STATUS_OK,
        `${JSON.stringify(label)}: ${JSON.stringify(stepped.error)}`,
      );
    }
    await closeSession(sessionId);
  });

  it("annotate labels with characters XML forbids: drawn through JavaScript's image.process", async () => {
    const sessionId = await openSession();
    const labels = JSON.stringify(XML_INVALID_LABELS);
    const code = `for (const label of ${labels}) display(image.process(image_1, [{annotate: {annotations: [{box: {left: 10, top: 40, right: 200, bottom: 200, unit: "pixels"}, label}]}}]));`;
    const result = await execute(sessionId, "javascript", { code });
    assert.equal(result.status, ResultStatus.RESULT_STATUS_OK, `${JSON.stringify(result.error)} ${result.text}`);
    assert.equal(result.images.length, XML_INVALID_LABELS.length);
    await closeSession(sessionId);
  });
});
