import assert from "node:assert/strict";
import { type ChildProcess, execFile, spawn } from "node:child_process";
import { chmodSync, existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, relative, resolve } from "node:path";
import { createInterface } from "node:readline";
import { describe, it } from "node:test";
import type { IPod } from "kubernetes-models/v1";
import { parse } from "yaml";
import { SERVICE_NODE_FLAGS } from "../../services/runtime/src/node-flags.js";
import { type SpawnedService, spawnService } from "../support/processes.js";
import {
  chartDir,
  containerEnv,
  ofKind,
  render,
  repoRoot,
  SERVICE_NAMES,
  SERVICES,
  type ServiceName,
} from "./chart.js";
import { materializeStage, parseDockerfile, type Stage } from "./dockerfile.js";

const deployDir = join(repoRoot, "deploy");
const dockerfile = parseDockerfile(readFileSync(join(deployDir, "Dockerfile"), "utf8"));
const healthcheckScript = join(deployDir, "healthcheck.mjs");

interface ComposeService {
  image?: string;
  build?: { context?: string; dockerfile?: string; target?: string };
  command?: string[];
  environment?: Record<string, string>;
  ports?: string[];
  depends_on?: Record<string, { condition: string }>;
  read_only?: boolean;
  cap_drop?: string[];
  security_opt?: string[];
}
// Merge keys (<<: *anchor) are how the file shares settings between services.
const compose = parse(readFileSync(join(deployDir, "compose.yaml"), "utf8"), { merge: true }) as {
  services: Record<string, ComposeService>;
};

function composeService(name: string): ComposeService {
  const service = compose.services[name];
  assert.ok(service, `compose.yaml has a service ${name}`);
  return service;
}

function target(name: ServiceName): Stage {
  const stage = dockerfile.get(name);
  assert.ok(stage, `deploy/Dockerfile has a target ${name}`);
  return stage;
}

/** A path inside the image, mapped to the repository (the image's WORKDIR holds the repository's layout). */
function repoPathOf(stage: Stage, imagePath: string): string {
  const absolute = imagePath.startsWith("/") ? imagePath : `${stage.workdir}/${imagePath}`;
  assert.ok(absolute.startsWith(`${stage.workdir}/`), `${imagePath} is under WORKDIR ${stage.workdir}`);
  return join(repoRoot, absolute.slice(stage.workdir.length + 1));
}

/**
 * A target's command, `node [node options] <script>`: the script and the files Node loads before it
 * (--import/--require, e.g. a telemetry preload).
 */
function nodeCommand(stage: Stage): { args: string[]; script: string; preloads: string[] } {
  const [program, ...args] = stage.cmd ?? [];
  assert.equal(program, "node", `${stage.name} runs node`);
  const script = args.at(-1);
  assert.ok(script && !script.startsWith("-"), `${stage.name}: the command ends with the script`);
  const preloads: string[] = [];
  args.slice(0, -1).forEach((arg, index) => {
    const inline = /^--(?:import|require)=(.+)$/.exec(arg);
    if (inline?.[1]) preloads.push(inline[1]);
    else if (arg === "--import" || arg === "--require" || arg === "-r") preloads.push(args[index + 1] ?? "");
  });
  return { args, script, preloads };
}

function runHealthcheck(port: number): Promise<{ code: number; stderr: string }> {
  return new Promise((done) => {
    execFile(
      process.execPath,
      [healthcheckScript],
      { env: { ...process.env, TOOLPLANE_GRPC_PORT: String(port) }, timeout: 15_000 },
      (error, _stdout, stderr) => done({ code: error ? Number(error.code ?? 1) : 0, stderr }),
    );
  });
}

/** Where a COPY source is on this machine: the build context is the repository, and after `make build` the
 * repository also holds what the build stage has at its WORKDIR. */
function sourceOf(from: string | undefined, source: string): string {
  if (from === undefined) return join(repoRoot, source);
  const buildStage = dockerfile.get(from);
  assert.ok(buildStage, `COPY --from=${from} names a stage`);
  assert.ok(source.startsWith(`${buildStage.workdir}/`), `${source} is under the ${from} stage's WORKDIR`);
  return join(repoRoot, relative(buildStage.workdir, source));
}

/**
 * Starts a target's command the way its container would: from a directory holding exactly the files the target
 * COPYs (so a file the image lacks, such as proto/ or package.json, makes it fail here too), with its ENV.
 */
async function startLikeContainer(
  stage: Stage,
): Promise<{ child: ChildProcess; port: number; output: string[]; root: string }> {
  const { args, script } = nodeCommand(stage);
  const root = mkdtempSync(join(tmpdir(), `toolplane-image-${stage.name}-`));
  // An image's files are world-readable; mkdtemp's are not, and the code service's sandboxes run as another uid.
  chmodSync(root, 0o755);
  materializeStage(stage, root, sourceOf);
  const child = spawn(process.execPath, args, {
    cwd: root,
    // The image's environment, except that tests bind loopback only and let the kernel pick the port.
    env: { ...process.env, ...stage.env, TOOLPLANE_HOST: "127.0.0.1", TOOLPLANE_GRPC_PORT: "0" },
    stdio: ["ignore", "pipe", "pipe"],
  });
  const output: string[] = [];
  createInterface({ input: child.stderr as NodeJS.ReadableStream }).on("line", (line) => output.push(line));
  try {
    const port = await new Promise<number>((resolvePort, reject) => {
      const timer = setTimeout(() => reject(new Error(`${script} did not start:\n${output.join("\n")}`)), 30_000);
      child.once("exit", (code) => {
        clearTimeout(timer);
        reject(new Error(`${script} exited with ${code}:\n${output.join("\n")}`));
      });
      createInterface({ input: child.stdout as NodeJS.ReadableStream }).on("line", (line) => {
        output.push(line);
        if (!line.includes('"grpc server listening"')) return;
        clearTimeout(timer);
        resolvePort(Number((JSON.parse(line) as { address: string }).address.split(":").pop()));
      });
    });
    return { child, port, output, root };
  } catch (error) {
    child.kill("SIGKILL");
    rmSync(root, { recursive: true, force: true });
    throw error;
  }
}

describe("deploy/compose.yaml", () => {
  it("names NATS, Jaeger and every service", () => {
    assert.deepEqual(Object.keys(compose.services).sort(), ["code", "gateway", "image", "jaeger", "nats", "search"]);
  });

  it("builds each service from its own Dockerfile target with its port, bind address and trace name", () => {
    for (const name of SERVICE_NAMES) {
      const service = composeService(name);
      assert.equal(
        resolve(deployDir, service.build?.context ?? ""),
        repoRoot,
        `${name} builds from the repository root`,
      );
      assert.equal(service.build?.dockerfile, "deploy/Dockerfile");
      assert.equal(service.build?.target, name);
      target(name);
      assert.equal(service.environment?.TOOLPLANE_GRPC_PORT, String(SERVICES[name].port), name);
      assert.equal(service.environment?.TOOLPLANE_HOST, "0.0.0.0", name);
      assert.equal(service.environment?.OTEL_SERVICE_NAME, `toolplane-${name}`);
      assert.equal(service.read_only, true, `${name} has a read-only root filesystem`);
      assert.deepEqual(service.cap_drop, ["ALL"], name);
      assert.ok(service.security_opt?.includes("no-new-privileges:true"), name);
    }
  });

  it("wires the services to NATS with JetStream and to Jaeger's OTLP port", () => {
    assert.ok(composeService("nats").command?.includes("--jetstream"));
    for (const name of SERVICE_NAMES) {
      const environment = composeService(name).environment ?? {};
      const nats = new URL(environment.TOOLPLANE_NATS_URL ?? "");
      assert.equal(nats.hostname, "nats", name);
      assert.equal(nats.port, "4222", name);
      const otlp = new URL(environment.OTEL_EXPORTER_OTLP_ENDPOINT ?? "");
      assert.equal(otlp.hostname, "jaeger", name);
      assert.equal(otlp.port, "4317", name);
      assert.equal(environment.OTEL_EXPORTER_OTLP_PROTOCOL, "grpc", name);
    }
  });

  it("publishes the gateway and points it at each backend by compose name", () => {
    const gateway = composeService("gateway");
    assert.ok(
      gateway.ports?.some((port) => port.endsWith(":50051:50051")),
      `ports ${gateway.ports}`,
    );
    for (const backend of ["image", "code", "search"] as const) {
      assert.equal(
        gateway.environment?.[`TOOLPLANE_${backend.toUpperCase()}_ADDR`],
        `${backend}:${SERVICES[backend].port}`,
      );
      assert.equal(gateway.depends_on?.[backend]?.condition, "service_healthy", backend);
    }
  });

  it("uses the same ports as the Helm chart", () => {
    const values = parse(readFileSync(join(chartDir, "values.yaml"), "utf8")) as {
      services: Record<string, { port: number }>;
    };
    for (const name of SERVICE_NAMES) assert.equal(values.services[name]?.port, SERVICES[name].port, name);
  });
});

describe("deploy/Dockerfile", () => {
  it("runs each service target as a numeric non-root user with the exec-form command of its compiled entry point", () => {
    for (const name of SERVICE_NAMES) {
      const stage = target(name);
      assert.equal(stage.entrypoint, undefined, `${name} has no ENTRYPOINT wrapping the command`);
      const { args, script, preloads } = nodeCommand(stage);
      assert.equal(script, `dist/services/${name}/src/main.js`, name);
      for (const flag of SERVICE_NODE_FLAGS) {
        assert.ok(args.includes(flag), `${name} starts node with ${flag}, as make run and the tests do`);
      }
      for (const file of [script, ...preloads]) {
        assert.ok(existsSync(repoPathOf(stage, file)), `${name}: ${file} exists after make build`);
      }
      assert.match(stage.user ?? "", /^[1-9][0-9]*(:[0-9]+)?$/, `${name} USER is numeric and not root`);
      assert.equal(stage.env.TOOLPLANE_GRPC_PORT, String(SERVICES[name].port), name);
      assert.equal(stage.env.TOOLPLANE_HOST, "0.0.0.0", name);
    }
  });

  it("copies the compiled code and proto/ where the entry points and protoRoot() look for them", () => {
    for (const name of SERVICE_NAMES) {
      const stage = target(name);
      const destinations = new Set(stage.copies.map((copy) => copy.destination));
      for (const path of ["dist/services", "dist/generated", "node_modules", "proto", "deploy/healthcheck.mjs"]) {
        assert.ok(destinations.has(`${stage.workdir}/${path}`), `${name} copies ${path} into ${stage.workdir}`);
      }
      assert.deepEqual(stage.healthcheck, ["node", "deploy/healthcheck.mjs"], name);
    }
  });

  it("lets the build context reach every file it copies", () => {
    const patterns = readFileSync(join(deployDir, "Dockerfile.dockerignore"), "utf8")
      .split("\n")
      .filter((line) => line.startsWith("!"))
      .map((line) => line.slice(1));
    const contextSources = new Set(
      [...dockerfile.values()].flatMap((stage) =>
        stage.copies.filter((copy) => copy.from === undefined).flatMap((copy) => copy.sources),
      ),
    );
    assert.ok(contextSources.size > 0);
    for (const source of contextSources) {
      const path = source.replace(/\/$/, "");
      assert.ok(
        patterns.includes(path) || patterns.includes(`${path}/**`),
        `${source} is not excluded by the dockerignore`,
      );
      assert.ok(existsSync(join(repoRoot, path)), `${source} exists in the repository`);
    }
  });

  for (const name of SERVICE_NAMES) {
    it(`starts the ${name} target's command from the image's files, answers the health check, drains on SIGTERM`, async () => {
      const { child, port, output, root } = await startLikeContainer(target(name));
      try {
        const healthy = await runHealthcheck(port);
        assert.equal(healthy.code, 0, healthy.stderr);
      } finally {
        const exited = new Promise<number | null>((done) => child.once("exit", (code) => done(code)));
        child.kill("SIGTERM");
        const code = await exited;
        rmSync(root, { recursive: true, force: true });
        assert.equal(code, 0, `exit code after SIGTERM:\n${output.join("\n")}`);
      }
      const gone = await runHealthcheck(port);
      assert.equal(gone.code, 1);
      assert.match(gone.stderr, /UNAVAILABLE/);
    });
  }
});

/** Runs a command like the helm test pod's container: in the target's files, with the pod's environment over ours. */
function runInImage(root: string, command: string[], env: Record<string, string>) {
  const [program, ...args] = command;
  assert.equal(program, "node");
  return new Promise<{ code: number; stdout: string; stderr: string }>((done) => {
    execFile(
      process.execPath,
      args,
      { cwd: root, env: { ...process.env, ...env }, timeout: 120_000 },
      (error, stdout, stderr) => done({ code: error ? Number(error.code ?? 1) : 0, stdout, stderr }),
    );
  });
}

describe("helm test: deploy/smoke-test.mjs from the gateway image", () => {
  const pod = ofKind<IPod>(render([]), "Pod")[0];
  const container = pod?.spec?.containers[0];
  let root = "";
  const running: SpawnedService[] = [];

  it("passes against a live gateway and code service: health, ListTools, a Step of a print cell", async (t) => {
    assert.ok(container?.command, "the chart renders the test hook pod");
    root = mkdtempSync(join(tmpdir(), "toolplane-image-gateway-"));
    t.after(async () => {
      for (const service of running) await service.stop();
      rmSync(root, { recursive: true, force: true });
    });
    materializeStage(target("gateway"), root, sourceOf);
    const code = await spawnService("code", { TOOLPLANE_CODE_POOL_SIZE: "1", TOOLPLANE_CODE_JS_HOST_PROCESSES: "1" });
    running.push(code);
    const gateway = await spawnService("gateway", {
      TOOLPLANE_CODE_ADDR: code.address,
      TOOLPLANE_IMAGE_ADDR: "127.0.0.1:9",
      TOOLPLANE_SEARCH_ADDR: "127.0.0.1:9",
    });
    running.push(gateway);
    const env = { ...containerEnv([], container), TOOLPLANE_GATEWAY_ADDR: gateway.address };
    const passed = await runInImage(root, container.command, env);
    assert.equal(passed.code, 0, passed.stderr);
    assert.deepEqual(
      passed.stdout
        .trim()
        .split("\n")
        .map((line) => line.split(":")[0]),
      ["health", "ListTools", "Step", "smoke test passed"],
    );
    assert.match(passed.stdout, /ListTools: .*image_zoom_in_tool/);

    // The gateway gone: one line naming the first check that failed.
    await gateway.stop();
    const failed = await runInImage(root, container.command, { ...env, TOOLPLANE_SMOKE_TIMEOUT_MS: "3000" });
    assert.equal(failed.code, 1);
    assert.match(failed.stderr, /^smoke test failed: check: .*\n$/);
  });
});

describe("deploy/healthcheck.mjs", () => {
  it("refuses a missing or malformed port", async () => {
    const result = await new Promise<{ code: number; stderr: string }>((done) => {
      execFile(
        process.execPath,
        [healthcheckScript],
        { env: { ...process.env, TOOLPLANE_GRPC_PORT: "grpc" } },
        (error, _out, stderr) => done({ code: error ? Number(error.code ?? 1) : 0, stderr }),
      );
    });
    assert.equal(result.code, 1);
    assert.match(result.stderr, /TOOLPLANE_GRPC_PORT must be a port number, got "grpc"/);
  });
});
