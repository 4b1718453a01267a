/**
 * Scale-out over real processes on loopback: one gateway in front of three code services (JavaScript
 * sessions, which start in milliseconds, so the test measures placement rather than kernel start-up).
 * Trajectories run state-dependent cells; their code sessions spread evenly over the replicas; a replica
 * stopped with SIGTERM fails its sessions' next calls with a clear INFRASTRUCTURE error while the others go
 * on; through the placement pool itself, a replica that appears in DNS receives new sessions; and two gateways
 * sharing NATS serve one trajectory call by call, alternately, even after one of them is SIGKILLed.
 */
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import sharp from "sharp";
import { CodeServiceClient, Language } from "../../generated/toolplane/code/v1/code.js";
import { ErrorClass } from "../../generated/toolplane/common/v1/common.js";
import {
  type ExecuteRequest,
  ImageDelivery,
  ResultStatus,
  ToolGatewayClient,
  type ToolResult,
} from "../../generated/toolplane/gateway/v1/gateway.js";
import { createGrpcBackends } from "../../services/gateway/src/backends.js";
import { createClient, createLogger, invoke, unboundedScope } from "../../services/runtime/src/index.js";
import {
  freePort,
  metricValue,
  type SpawnedNats,
  type SpawnedService,
  scrapeMetrics,
  spawnNats,
  spawnService,
} from "../support/processes.js";

const JS_ONLY = {
  TOOLPLANE_CODE_POOL_SIZE: "0",
  TOOLPLANE_CODE_JS_POOL_SIZE: "2",
  TOOLPLANE_CODE_JS_HOST_PROCESSES: "1",
};

function cell(sessionId: string, code: string, step: number): ExecuteRequest {
  return {
    sessionId,
    call: { callId: `c${step}`, name: "javascript", argumentsJson: JSON.stringify({ code }) },
    timeoutMs: 20_000,
    imageDelivery: ImageDelivery.IMAGE_DELIVERY_BYTES,
    step,
  };
}

async function openSessions(address: string): Promise<number> {
  const client = createClient(CodeServiceClient, address);
  try {
    return (await invoke(client, client.load, {}, { deadlineMs: Date.now() + 5000 })).openSessions;
  } finally {
    client.close();
  }
}

describe("scale-out: one gateway, three code replicas", () => {
  const codes: SpawnedService[] = [];
  let gateway: SpawnedService;
  let client: ToolGatewayClient;

  before(async () => {
    codes.push(...(await Promise.all([0, 1, 2].map(() => spawnService("code", JS_ONLY)))));
    gateway = await spawnService("gateway", {
      TOOLPLANE_CODE_ADDR: codes.map((code) => code.address).join(","),
      TOOLPLANE_IMAGE_ADDR: `127.0.0.1:${await freePort()}`,
      TOOLPLANE_SEARCH_ADDR: `127.0.0.1:${await freePort()}`,
      TOOLPLANE_GATEWAY_CODE_LOAD_INTERVAL_MS: "200",
      TOOLPLANE_METRICS_PORT: "0",
    });
    client = createClient(ToolGatewayClient, gateway.address);
  });

  after(async () => {
    client?.close();
    await gateway?.stop();
    await Promise.all(codes.map((code) => code.stop()));
  });

  const run = (request: ExecuteRequest): Promise<ToolResult> =>
    invoke(client, client.execute, request, { deadlineMs: Date.now() + 30_000 }).then(
      (response) => response.result as ToolResult,
    );

  it("places 48 trajectories evenly, keeps each one's state on its replica, and fails only a stopped replica's sessions", async () => {
    const trajectories = 48;
    const sessions: string[] = [];
    // Eight at a time, as a rollout worker would issue them.
    for (let start = 0; start < trajectories; start += 8) {
      const batch = await Promise.all(
        Array.from({ length: 8 }, async (_, offset) => {
          const index = start + offset;
          const { sessionId } = await invoke(client, client.createSession, {
            rolloutId: "scale-out",
            trajectoryId: `t${index}`,
            images: [],
            idleTtlSeconds: 0,
          });
          const first = await run(cell(sessionId, `globalThis.v = ${index} * 3; "set"`, 1));
          assert.equal(first.status, ResultStatus.RESULT_STATUS_OK, first.error?.message);
          const second = await run(cell(sessionId, "console.log(v + 1000)", 2));
          assert.equal(second.status, ResultStatus.RESULT_STATUS_OK, second.error?.message);
          assert.match(second.text, new RegExp(`\\b${index * 3 + 1000}\\b`), "cell 2 reads what cell 1 set");
          return sessionId;
        }),
      );
      sessions.push(...batch);
    }

    const counts = await Promise.all(codes.map((code) => openSessions(code.address)));
    assert.equal(
      counts.reduce((sum, count) => sum + count, 0),
      trajectories,
    );
    const even = trajectories / codes.length;
    for (const count of counts) {
      assert.ok(
        Math.abs(count - even) <= even * 0.25,
        `sessions per replica ${counts.join("/")} within 25 % of ${even}`,
      );
    }

    // The gateway's /metrics show the same spread, and the load each replica reported.
    await new Promise((resolve) => setTimeout(resolve, 500));
    const metrics = await scrapeMetrics(gateway);
    codes.forEach((code, index) => {
      assert.equal(metricValue(metrics, `toolplane_gateway_code_sessions{replica="${code.address}"}`), counts[index]);
      assert.equal(
        metricValue(metrics, `toolplane_code_replica_load{replica="${code.address}",kind="open_sessions"}`),
        counts[index],
      );
      assert.equal(metricValue(metrics, `toolplane_code_replica_up{replica="${code.address}"}`), 1);
    });

    // SIGTERM one replica: its sessions' next call fails as INFRASTRUCTURE naming the replica, promptly.
    const stopped = codes[2] as SpawnedService;
    const lost = counts[2] as number;
    await stopped.stop("SIGTERM");
    const started = Date.now();
    const results = await Promise.all(sessions.map((sessionId) => run(cell(sessionId, "v", 3))));
    assert.ok(Date.now() - started < 15_000, "no call hangs on the stopped replica");
    const failed = results.filter((result) => result.status !== ResultStatus.RESULT_STATUS_OK);
    assert.equal(failed.length, lost, "exactly the stopped replica's sessions fail");
    for (const result of failed) {
      assert.equal(result.error?.errorClass, ErrorClass.ERROR_CLASS_INFRASTRUCTURE);
      assert.match(result.error?.message ?? "", new RegExp(`code replica ${stopped.address} .*unreachable`));
    }

    // New trajectories go to the two replicas left.
    for (let index = 0; index < 6; index++) {
      const { sessionId } = await invoke(client, client.createSession, {
        rolloutId: "scale-out",
        trajectoryId: `after${index}`,
        images: [],
        idleTtlSeconds: 0,
      });
      const result = await run(cell(sessionId, "1 + 1", 1));
      assert.equal(result.status, ResultStatus.RESULT_STATUS_OK, result.error?.message);
    }
    await invoke(client, client.closeRollout, { rolloutId: "scale-out" });
  });
});

describe("scale-out: replicas named by DNS", () => {
  const codes: SpawnedService[] = [];

  after(async () => {
    await Promise.all(codes.map((code) => code.stop()));
  });

  it("a replica that appears in DNS receives new sessions; one that leaves gets none", async () => {
    // Three loopback addresses, one port: what a headless Service's A records look like.
    const port = String(await freePort());
    const hosts = ["127.0.0.2", "127.0.0.3", "127.0.0.4"];
    codes.push(
      ...(await Promise.all(
        hosts.map((host) => spawnService("code", { ...JS_ONLY, TOOLPLANE_HOST: host, TOOLPLANE_GRPC_PORT: port })),
      )),
    );
    let answer = hosts.slice(0, 2);
    const backends = createGrpcBackends(
      { image: "127.0.0.1:1", code: `dns:///code.test:${port}`, search: "127.0.0.1:1" },
      2,
      createLogger("test", "silent"),
      { resolve: async () => answer, resolveIntervalMs: 100, loadIntervalMs: 100 },
    );
    try {
      await backends.codeReplicas.start();
      const create = () =>
        backends.code.createSession(
          { language: Language.LANGUAGE_JAVASCRIPT, images: [], limits: undefined, idleTtlSeconds: 0, label: "dns" },
          unboundedScope(Date.now() + 10_000),
        );
      const first = await Promise.all(Array.from({ length: 6 }, create));
      assert.deepEqual(new Set(first.map((created) => created.replica)), new Set(answer.map((h) => `${h}:${port}`)));

      // The third replica joins, the first leaves.
      answer = hosts.slice(1);
      await new Promise((resolve) => setTimeout(resolve, 400));
      const later = await Promise.all(Array.from({ length: 9 }, create));
      const placed = later.map((created) => created.replica);
      assert.ok(placed.includes(`${hosts[2]}:${port}`), `the new replica got sessions: ${placed.join(", ")}`);
      assert.ok(!placed.includes(`${hosts[0]}:${port}`), "the replica gone from DNS got none");
      // The new, empty replica is preferred by the load it reports.
      const onNew = placed.filter((address) => address === `${hosts[2]}:${port}`).length;
      assert.ok(onNew >= 4, `least-loaded placement: ${onNew} of 9 on the new replica`);

      // Sessions placed before still reach their replica, even one no longer in DNS.
      for (const created of first) {
        const response = await backends.code.execute(
          { sessionId: created.sessionId, code: "2 * 21", timeoutMs: 5000, fixIndentation: false },
          unboundedScope(Date.now() + 10_000),
          created,
        );
        assert.equal(response.result, "42");
      }
    } finally {
      backends.close();
    }
  });
});

describe("scale-out: two gateways sharing sessions through NATS", () => {
  const codes: SpawnedService[] = [];
  const gateways: SpawnedService[] = [];
  let nats: SpawnedNats;
  let clients: ToolGatewayClient[] = [];

  before(async () => {
    nats = await spawnNats();
    codes.push(...(await Promise.all([0, 1, 2].map(() => spawnService("code", JS_ONLY)))));
    const env = {
      TOOLPLANE_CODE_ADDR: codes.map((code) => code.address).join(","),
      TOOLPLANE_IMAGE_ADDR: `127.0.0.1:${await freePort()}`,
      TOOLPLANE_SEARCH_ADDR: `127.0.0.1:${await freePort()}`,
      TOOLPLANE_NATS_URL: nats.url,
      TOOLPLANE_GATEWAY_SHARED_SESSIONS: "true",
      TOOLPLANE_GATEWAY_CODE_LOAD_INTERVAL_MS: "200",
    };
    gateways.push(...(await Promise.all([0, 1].map(() => spawnService("gateway", env)))));
    clients = gateways.map((gateway) => createClient(ToolGatewayClient, gateway.address));
  });

  after(async () => {
    for (const client of clients) client.close();
    await Promise.all(gateways.map((gateway) => gateway.stop()));
    await Promise.all(codes.map((code) => code.stop()));
    await nats?.stop();
  });

  it("serves 96 trajectories alternating gateways call by call, images and kernel state included", async () => {
    const trajectories = 96;
    const gateway = (index: number) => clients[index % 2] as ToolGatewayClient;
    const run = (index: number, request: ExecuteRequest): Promise<ToolResult> => {
      const client = gateway(index);
      return invoke(client, client.execute, request, { deadlineMs: Date.now() + 30_000 }).then(
        (response) => response.result as ToolResult,
      );
    };
    const sessions: string[] = [];
    for (let start = 0; start < trajectories; start += 16) {
      const batch = await Promise.all(
        Array.from({ length: 16 }, async (_, offset) => {
          const index = start + offset;
          // image_1 is put through one gateway, bound through the other, used through the first.
          const png = await sharp({
            create: { width: 10 + index, height: 7, channels: 3, background: "#336699" },
          })
            .png()
            .toBuffer();
          const put = await invoke(gateway(index), gateway(index).putImage, { data: png });
          const { sessionId } = await invoke(gateway(index + 1), gateway(index + 1).createSession, {
            rolloutId: "shared",
            trajectoryId: `s${index}`,
            images: [{ sha256: put.image?.sha256 ?? "", mimeType: "", width: 0, height: 0 }],
            idleTtlSeconds: 0,
          });
          const first = await run(
            index,
            cell(sessionId, `globalThis.v = ${index} * 3; console.log("w=" + image_1.width)`, 1),
          );
          assert.equal(first.status, ResultStatus.RESULT_STATUS_OK, first.error?.message);
          assert.match(first.text, new RegExp(`w=${10 + index}\\b`), "image_1 put through the other gateway");
          const second = await run(index + 1, cell(sessionId, "console.log(v + 1000)", 2));
          assert.equal(second.status, ResultStatus.RESULT_STATUS_OK, second.error?.message);
          assert.match(second.text, new RegExp(`\\b${index * 3 + 1000}\\b`), "cell 2 reads what cell 1 set");
          return sessionId;
        }),
      );
      sessions.push(...batch);
    }

    const counts = await Promise.all(codes.map((code) => openSessions(code.address)));
    assert.equal(
      counts.reduce((sum, count) => sum + count, 0),
      trajectories,
      `one code session per trajectory: ${counts.join("/")}`,
    );
    const even = trajectories / codes.length;
    for (const count of counts) {
      assert.ok(
        Math.abs(count - even) <= even * 0.25,
        `sessions per replica ${counts.join("/")} within 25 % of ${even}`,
      );
    }

    // SIGKILL the second gateway: the first serves every session on the next call.
    await (gateways[1] as SpawnedService).stop("SIGKILL");
    const third = await Promise.all(sessions.map((sessionId) => run(0, cell(sessionId, "console.log(v)", 3))));
    third.forEach((result, index) => {
      assert.equal(result.status, ResultStatus.RESULT_STATUS_OK, result.error?.message);
      assert.match(result.text, new RegExp(`\\b${index * 3}\\b`));
    });

    // CloseRollout through the gateway left closes every code session, whichever gateway opened it.
    const closed = await invoke(clients[0] as ToolGatewayClient, (clients[0] as ToolGatewayClient).closeRollout, {
      rolloutId: "shared",
    });
    assert.equal(closed.closedSessions, trajectories);
    const after = await Promise.all(codes.map((code) => openSessions(code.address)));
    assert.deepEqual(after, [0, 0, 0]);
  });
});

describe("scale-out: a session whose replica is gone moves", () => {
  const codes: SpawnedService[] = [];
  let checkpoints = "";

  after(async () => {
    await Promise.all(codes.map((code) => code.stop()));
    if (checkpoints) rmSync(checkpoints, { recursive: true, force: true });
  });

  it("continues on another replica from the shared checkpoint, and records the new replica", async () => {
    checkpoints = mkdtempSync(join(tmpdir(), "toolplane-scale-out-"));
    const env = { TOOLPLANE_CODE_POOL_SIZE: "1", TOOLPLANE_CODE_CHECKPOINT_DIR: checkpoints };
    codes.push(...(await Promise.all([0, 1].map(() => spawnService("code", env)))));
    const backends = createGrpcBackends(
      { image: "127.0.0.1:1", code: codes.map((code) => code.address).join(","), search: "127.0.0.1:1" },
      2,
      createLogger("test", "silent"),
      { loadIntervalMs: 100 },
    );
    try {
      await backends.codeReplicas.start();
      const created = await backends.code.createSession(
        { language: Language.LANGUAGE_PYTHON, images: [], limits: undefined, idleTtlSeconds: 0, label: "move" },
        unboundedScope(Date.now() + 30_000),
      );
      const placement = { replica: created.replica };
      const execute = (code: string) =>
        backends.code.execute(
          { sessionId: created.sessionId, code, timeoutMs: 10_000, fixIndentation: false },
          unboundedScope(Date.now() + 30_000),
          placement,
        );
      await execute("x = 41");
      // The checkpoint is written after the answer; the next call on the same replica waits for it.
      await execute("x");
      const holder = codes.find((code) => code.address === created.replica) as SpawnedService;
      await holder.stop("SIGTERM");
      const moved = await execute("x + 1");
      assert.equal(moved.result, "42", moved.stderr);
      assert.notEqual(placement.replica, created.replica, "the session's record names its new replica");
    } finally {
      backends.close();
    }
  });
});
