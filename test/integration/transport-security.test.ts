import assert from "node:assert/strict";
import { execFileSync, spawn } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { credentials, Metadata, makeGenericClientConstructor, type ServiceError, status } from "@grpc/grpc-js";
import { service as healthService } from "grpc-health-check";
import { GetMetadataRequest, ImageServiceClient } from "../../generated/toolplane/image/v1/image.js";
import {
  createClient,
  ERROR_CLASS_KEY,
  invoke,
  type SecurityConfig,
  ToolplaneError,
} from "../../services/runtime/src/index.js";
import { distRoot, type SpawnedService, spawnService } from "../support/processes.js";

const HealthClient = makeGenericClientConstructor(healthService, "Health");
type HealthCheck = (
  request: { service: string },
  callback: (error: ServiceError | null, response: { status: number | string }) => void,
) => void;

function checkHealth(client: InstanceType<typeof HealthClient>): Promise<string> {
  return new Promise((resolve, reject) => {
    (client as unknown as { check: HealthCheck }).check({ service: "" }, (error, response) =>
      error ? reject(error) : resolve(String(response.status)),
    );
  });
}

function startFails(env: Record<string, string>): Promise<{ code: number | null; stderr: string }> {
  const child = spawn(process.execPath, [join(distRoot, "services", "image", "src", "main.js")], {
    env: { ...process.env, TOOLPLANE_GRPC_PORT: "0", ...env },
    stdio: ["ignore", "ignore", "pipe"],
  });
  let stderr = "";
  child.stderr.on("data", (chunk: Buffer) => {
    stderr += chunk.toString();
  });
  return new Promise((resolve) => child.once("exit", (code) => resolve({ code, stderr })));
}

describe("service token", () => {
  const token = "a-long-shared-service-token-0123";
  let service: SpawnedService;
  before(async () => {
    service = await spawnService("image", { TOOLPLANE_SERVICE_TOKEN: token });
  });
  after(async () => {
    await service.stop();
  });

  it("rejects a call without the token as UNAUTHENTICATED, class INFRASTRUCTURE", async () => {
    const client = createClient(ImageServiceClient, service.address, {});
    await assert.rejects(
      invoke(client, client.getMetadata, GetMetadataRequest.fromPartial({ image: { data: Buffer.from("x") } })),
      (error) => {
        assert.ok(error instanceof ToolplaneError);
        assert.equal(error.code, status.UNAUTHENTICATED);
        assert.equal(error.errorClass, "INFRASTRUCTURE");
        assert.match(error.message, /x-toolplane-service-token/);
        return true;
      },
    );
    client.close();
  });

  it("rejects a wrong token", async () => {
    const client = createClient(ImageServiceClient, service.address, { serviceToken: "not-the-right-token-at-all" });
    await assert.rejects(
      invoke(client, client.getMetadata, GetMetadataRequest.fromPartial({ image: { data: Buffer.from("x") } })),
      (error) => {
        assert.ok(error instanceof ToolplaneError);
        assert.equal(error.code, status.UNAUTHENTICATED);
        return true;
      },
    );
    client.close();
  });

  it("lets the token holder through to the service", async () => {
    const client = createClient(ImageServiceClient, service.address, { serviceToken: token });
    const outcome = await invoke(
      client,
      client.getMetadata,
      GetMetadataRequest.fromPartial({ image: { data: Buffer.from("x") } }),
    ).then(
      () => undefined,
      (error: unknown) => error,
    );
    if (outcome instanceof ToolplaneError) assert.notEqual(outcome.code, status.UNAUTHENTICATED, outcome.message);
    client.close();
  });

  it("keeps health open for probes that carry no credentials", async () => {
    const client = new HealthClient(service.address, credentials.createInsecure());
    assert.equal(await checkHealth(client), "SERVING");
    client.close();
  });

  it("refuses to start with a token shorter than 16 characters, naming the variable", async () => {
    const { code, stderr } = await startFails({ TOOLPLANE_SERVICE_TOKEN: "short" });
    assert.equal(code, 1);
    assert.match(stderr, /TOOLPLANE_SERVICE_TOKEN/);
    assert.ok(!stderr.includes('short"'), "the secret's value must not be echoed in full");
  });
});

describe("mutual TLS", () => {
  const dir = mkdtempSync(join(tmpdir(), "toolplane-tls-"));
  const file = (name: string) => join(dir, name);
  let service: SpawnedService;
  let clientTls: SecurityConfig;

  before(async () => {
    const openssl = (...args: string[]) => execFileSync("openssl", args, { stdio: "pipe" });
    openssl(
      "req",
      "-x509",
      "-newkey",
      "rsa:2048",
      "-nodes",
      "-days",
      "1",
      "-subj",
      "/CN=toolplane-test-ca",
      "-keyout",
      file("ca.key"),
      "-out",
      file("ca.pem"),
    );
    writeFileSync(file("server.ext"), "subjectAltName=IP:127.0.0.1,DNS:localhost\n");
    for (const name of ["server", "client"]) {
      openssl(
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-subj",
        `/CN=${name}`,
        "-keyout",
        file(`${name}.key`),
        "-out",
        file(`${name}.csr`),
      );
      openssl(
        "x509",
        "-req",
        "-in",
        file(`${name}.csr`),
        "-CA",
        file("ca.pem"),
        "-CAkey",
        file("ca.key"),
        "-CAcreateserial",
        "-days",
        "1",
        "-extfile",
        file("server.ext"),
        "-out",
        file(`${name}.pem`),
      );
    }
    service = await spawnService("image", {
      TOOLPLANE_TLS_CERT_FILE: file("server.pem"),
      TOOLPLANE_TLS_KEY_FILE: file("server.key"),
      TOOLPLANE_TLS_CA_FILE: file("ca.pem"),
    });
    clientTls = {
      tls: {
        cert: readFileSync(file("client.pem")),
        key: readFileSync(file("client.key")),
        ca: readFileSync(file("ca.pem")),
      },
    };
  });
  after(async () => {
    await service.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it("serves a client that presents a certificate signed by the CA", async () => {
    const client = new HealthClient(
      service.address,
      credentials.createSsl(clientTls.tls?.ca, clientTls.tls?.key, clientTls.tls?.cert),
    );
    assert.equal(await checkHealth(client), "SERVING");
    client.close();
  });

  it("refuses a client without a certificate", async () => {
    const client = new HealthClient(service.address, credentials.createSsl(readFileSync(file("ca.pem"))), {
      "grpc.initial_reconnect_backoff_ms": 100,
    });
    await assert.rejects(checkHealth(client), (error: ServiceError) => {
      assert.equal(error.code, status.UNAVAILABLE);
      return true;
    });
    client.close();
  });

  it("refuses a plaintext client", async () => {
    const client = new HealthClient(service.address, credentials.createInsecure());
    await assert.rejects(checkHealth(client), (error: ServiceError) => {
      assert.equal(error.code, status.UNAVAILABLE);
      return true;
    });
    client.close();
  });

  it("refuses to start with only part of the TLS files", async () => {
    const { code, stderr } = await startFails({ TOOLPLANE_TLS_CERT_FILE: file("server.pem") });
    assert.equal(code, 1);
    assert.match(stderr, /must be set together/);
  });
});

// The class metadata key is part of the contract the Python client reads.
assert.equal(ERROR_CLASS_KEY, "toolplane-error-class");

describe("API keys with quotas", () => {
  const key = "trainer-key-0123456789abcdef";
  let service: SpawnedService;
  before(async () => {
    // 2 calls per second, 1 in flight: easy to exceed deliberately.
    service = await spawnService("image", { TOOLPLANE_API_KEYS: `trainer:${key}:2:1` });
  });
  after(async () => {
    await service.stop();
  });

  const call = (client: ImageServiceClient, apiKey?: string) => {
    const metadata = new Metadata();
    if (apiKey) metadata.set("authorization", `Bearer ${apiKey}`);
    return invoke(
      client,
      client.getMetadata,
      GetMetadataRequest.fromPartial({ image: { data: Buffer.from("x") } }),
      {},
      metadata,
    ).then(
      () => undefined,
      (error: unknown) => error as ToolplaneError,
    );
  };

  it("rejects a caller without a key, or with an unknown one", async () => {
    const client = createClient(ImageServiceClient, service.address, {});
    assert.equal((await call(client))?.code, status.UNAUTHENTICATED);
    assert.equal((await call(client, "unknown-key-0123456789abcdef"))?.code, status.UNAUTHENTICATED);
    client.close();
  });

  it("admits a known key and throttles it past its rate with a retry hint", async () => {
    const client = createClient(ImageServiceClient, service.address, {});
    const outcomes: (ToolplaneError | undefined)[] = [];
    for (let i = 0; i < 5; i++) outcomes.push(await call(client, key));
    const throttled = outcomes.filter((outcome) => outcome?.code === status.RESOURCE_EXHAUSTED);
    const admitted = outcomes.filter((outcome) => outcome?.code !== status.RESOURCE_EXHAUSTED);
    assert.ok(admitted.length >= 2, "the first calls within the rate are admitted");
    assert.ok(admitted.every((outcome) => outcome?.code !== status.UNAUTHENTICATED));
    assert.ok(throttled.length >= 1, "calls beyond 2/s are throttled");
    for (const outcome of throttled) {
      assert.equal(outcome?.errorClass, "INFRASTRUCTURE");
      assert.ok((outcome?.retryAfterMs ?? 0) > 0, "a throttled caller is told when to come back");
      assert.match(outcome?.message ?? "", /client "trainer" is over its quota/);
    }
    client.close();
  });

  it("keeps health open", async () => {
    const client = new HealthClient(service.address, credentials.createInsecure());
    assert.equal(await checkHealth(client), "SERVING");
    client.close();
  });
});
