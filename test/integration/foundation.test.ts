import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { type ServiceError, status } from "@grpc/grpc-js";

import { checkHealth } from "../support/health.js";
import { distRoot, type SpawnedService, spawnService, waitFor } from "../support/processes.js";

const SERVICES = [
  { name: "image", fullName: "toolplane.image.v1.ImageService" },
  { name: "code", fullName: "toolplane.code.v1.CodeService" },
  { name: "search", fullName: "toolplane.search.v1.SearchService" },
  { name: "gateway", fullName: "toolplane.gateway.v1.ToolGateway" },
];

describe("every service over a real socket", () => {
  const running = new Map<string, SpawnedService>();
  before(async () => {
    for (const service of SERVICES) running.set(service.name, await spawnService(service.name));
  });
  after(async () => {
    for (const service of running.values()) await service.stop();
  });

  for (const service of SERVICES) {
    it(`${service.name} reports SERVING for itself and overall`, async () => {
      const address = running.get(service.name)?.address ?? "";
      assert.equal(await checkHealth(address, ""), "SERVING");
      assert.equal(await checkHealth(address, service.fullName), "SERVING");
    });

    it(`${service.name} answers NOT_FOUND for health of an unknown service`, async () => {
      const address = running.get(service.name)?.address ?? "";
      await assert.rejects(checkHealth(address, "no.such.Service"), (error: ServiceError) => {
        assert.equal(error.code, status.NOT_FOUND);
        return true;
      });
    });
  }

  it("services stop cleanly on SIGTERM (exit code 0)", async () => {
    const extra = await spawnService("image");
    assert.equal(await extra.stop("SIGTERM"), 0);
    // "exit" can come before the last lines are read from the pipe.
    await waitFor(() => extra.output.some((line) => line.includes('"msg":"stopped"')), "the stopped log line", 5_000);
  });
});

describe("bad configuration", () => {
  it("a non-numeric port fails start-up with one line naming the variable", async () => {
    const child = spawn(process.execPath, [join(distRoot, "services", "image", "src", "main.js")], {
      env: { ...process.env, TOOLPLANE_GRPC_PORT: "abc" },
      stdio: ["ignore", "pipe", "pipe"],
    });
    let stderr = "";
    child.stderr.on("data", (chunk: Buffer) => {
      stderr += chunk.toString();
    });
    const code = await new Promise<number | null>((resolve) => child.once("exit", resolve));
    assert.equal(code, 1);
    const lines = stderr.trim().split("\n");
    assert.equal(lines.length, 1, stderr);
    assert.match(lines[0] ?? "", /TOOLPLANE_GRPC_PORT="abc"/);
  });
});
