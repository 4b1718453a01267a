/**
 * Conformance: every case of conformance-cases.ts (model text and the exact bytes the
 * reference environment shows for it) runs through Step on the real gateway, image,
 * code and search services, each its own process on loopback. A second gateway whose
 * code service address answers nothing stands for the reference's sandbox failing.
 */
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import sharp from "sharp";
import {
  EpisodeEndReason,
  Fidelity,
  ImageDelivery,
  ModelFormat,
  ResultStatus,
  StepOutcome,
  ToolGatewayClient,
} from "../../generated/toolplane/gateway/v1/gateway.js";
import { createClient, invoke } from "../../services/runtime/src/index.js";
import { type DeepEyesWorld, startDeepEyesWorld } from "../support/deepeyes-world.js";
import { freePort, type SpawnedService, spawnService } from "../support/processes.js";
import { CASES, type ConformanceCase, SAMPLE_INDEX } from "./conformance-cases.js";

const FORMATS: Record<ConformanceCase["format"], ModelFormat> = {
  "deepeyes-v2": ModelFormat.MODEL_FORMAT_DEEPEYES_V2,
  "deepeyes-v1": ModelFormat.MODEL_FORMAT_DEEPEYES_V1,
  hermes: ModelFormat.MODEL_FORMAT_HERMES,
  openai: ModelFormat.MODEL_FORMAT_OPENAI,
};

const FIDELITIES = { reference: Fidelity.FIDELITY_REFERENCE, strict: Fidelity.FIDELITY_STRICT };

describe("conformance with the reference environments, through Step", () => {
  let world: DeepEyesWorld;
  let codeDown: SpawnedService;
  let client: ToolGatewayClient;
  let codeDownClient: ToolGatewayClient;
  const sessions = new Map<string, Promise<string>>();

  before(async () => {
    world = await startDeepEyesWorld({ TOOLPLANE_CODE_POOL_SIZE: "2" });
    client = createClient(ToolGatewayClient, world.gateway.address);
    codeDown = await spawnService("gateway", {
      TOOLPLANE_IMAGE_ADDR: world.image.address,
      // A free port: nothing listens there.
      TOOLPLANE_CODE_ADDR: `127.0.0.1:${await freePort()}`,
      TOOLPLANE_SEARCH_ADDR: world.search.address,
    });
    codeDownClient = createClient(ToolGatewayClient, codeDown.address);
  });

  after(async () => {
    client?.close();
    codeDownClient?.close();
    await codeDown?.stop();
    await world?.stop();
  });

  /** One session per fidelity and kind, shared by the cases (each case stands alone). */
  function session(testCase: ConformanceCase): { client: ToolGatewayClient; sessionId: Promise<string> } {
    const target = testCase.session === "code-down" ? codeDownClient : client;
    const key = `${testCase.fidelity ?? "default"}:${testCase.session ?? "one-image"}`;
    let sessionId = sessions.get(key);
    if (!sessionId) {
      const images = Array.from({ length: testCase.session === "two-images" ? 2 : 1 }, () => ({
        data: world.input,
        mimeType: "",
        width: 0,
        height: 0,
      }));
      sessionId = invoke(target, target.createSession, {
        rolloutId: "conformance",
        trajectoryId: "",
        images,
        idleTtlSeconds: 0,
      }).then((created) => created.sessionId);
      sessions.set(key, sessionId);
    }
    return { client: target, sessionId };
  }

  assert.ok(CASES.length >= 60, `the table holds ${CASES.length} cases`);
  for (const testCase of CASES) {
    it(testCase.name, async () => {
      const target = session(testCase);
      const response = await invoke(target.client, target.client.step, {
        sessionId: await target.sessionId,
        format: FORMATS[testCase.format],
        text: testCase.text,
        imageDelivery: ImageDelivery.IMAGE_DELIVERY_BYTES,
        timeoutMs: 0,
        step: 1,
        fidelity: testCase.fidelity ? FIDELITIES[testCase.fidelity] : undefined,
        sampleIndex: SAMPLE_INDEX,
      });
      const context = `${response.error?.message ?? ""}`;
      assert.equal(response.observation, testCase.observation, context);
      assert.equal(StepOutcome[response.outcome], `STEP_OUTCOME_${testCase.outcome}`, context);
      assert.equal(ResultStatus[response.status], `RESULT_STATUS_${testCase.status ?? "OK"}`, context);
      assert.equal(
        EpisodeEndReason[response.episodeEndReason],
        `EPISODE_END_REASON_${testCase.reason ?? "UNSPECIFIED"}`,
      );
      if (testCase.answer !== undefined) assert.equal(response.answer, testCase.answer);
      const sizes: [number, number][] = [];
      for (const image of response.images) {
        const metadata = await sharp(image.data).metadata();
        assert.deepEqual([metadata.width, metadata.height], [image.width, image.height], "reported = decoded size");
        sizes.push([image.width, image.height]);
      }
      assert.deepEqual(sizes, testCase.images ?? []);
    });
  }
});
