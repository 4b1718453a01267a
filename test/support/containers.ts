import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import { it } from "node:test";
import { spawnNats } from "./processes.js";

/**
 * Where a test's infrastructure runs: in a container (testcontainers) when a Docker engine is reachable, otherwise
 * from binaries spawned on this machine. Either way the test body is the same; what ran is printed as the reason of
 * the container variant's skip (or of the local variant's, when containers ran).
 */

/** The images the containers run: the ones deploy/compose.yaml names. */
export const CONTAINER_IMAGES = { nats: "nats:2.10.22-alpine", jaeger: "jaegertracing/jaeger:2.7.0" } as const;

const DEFAULT_SOCKET = "/var/run/docker.sock";

export type DockerEngine = { reachable: true } | { reachable: false; reason: string };

let probed: Promise<DockerEngine> | undefined;

/** Whether testcontainers reaches a Docker engine (DOCKER_HOST or the default socket); probed once per process. */
export function dockerEngine(): Promise<DockerEngine> {
  probed ??= (async (): Promise<DockerEngine> => {
    const host = process.env.DOCKER_HOST;
    // Without either, testcontainers itself is not even loaded.
    if (!host && !existsSync(DEFAULT_SOCKET)) {
      return { reachable: false, reason: `no Docker engine (DOCKER_HOST is unset and ${DEFAULT_SOCKET} is absent)` };
    }
    try {
      const { getContainerRuntimeClient } = await import("testcontainers");
      await getContainerRuntimeClient();
      return { reachable: true };
    } catch (error) {
      const where = host ? `DOCKER_HOST=${host}` : DEFAULT_SOCKET;
      return { reachable: false, reason: `no Docker engine answers at ${where}: ${(error as Error).message}` };
    }
  })();
  return probed;
}

/**
 * node:test `skip` options for a suite's two variants: the one that does not run is skipped with a reason that
 * says which ran instead (`what`: "NATS", `local`: "a locally spawned nats-server").
 */
export interface VariantSkips {
  container: string | false;
  local: string | false;
}

export async function variantSkips(what: string, local: string): Promise<VariantSkips> {
  const engine = await dockerEngine();
  return engine.reachable
    ? { container: false, local: `a Docker engine is reachable: ${what} ran in a container instead of ${local}` }
    : { container: `${engine.reason}: ${what} ran as ${local} instead`, local: false };
}

/** Inside a describe: two tests saying which variant ran; the other one is skipped, its reason printed. */
export function declareVariant(what: string, skips: VariantSkips, via: () => "container" | "local" | undefined): void {
  it(`${what} runs in a container`, { skip: skips.container }, () => assert.equal(via(), "container"));
  it(`${what} runs locally`, { skip: skips.local }, () => assert.equal(via(), "local"));
}

/** The skips of suites on NATS (startNats). */
export const natsSkips = (): Promise<VariantSkips> => variantSkips("NATS", "a locally spawned nats-server");

export interface NatsTarget {
  /** nats:// URL reachable from this machine. */
  url: string;
  via: "container" | "local";
  stop(): Promise<void>;
}

/** A NATS server with JetStream: a container when Docker is reachable, else a locally spawned nats-server. */
export async function startNats(): Promise<NatsTarget> {
  if (!(await dockerEngine()).reachable) {
    const local = await spawnNats();
    return { url: local.url, via: "local", stop: async () => void (await local.stop()) };
  }
  const { GenericContainer, Wait } = await import("testcontainers");
  const container = await new GenericContainer(CONTAINER_IMAGES.nats)
    .withCommand(["-js"])
    .withExposedPorts(4222)
    .withWaitStrategy(Wait.forLogMessage(/Server is ready/))
    .start();
  return {
    url: `nats://${container.getHost()}:${container.getMappedPort(4222)}`,
    via: "container",
    stop: async () => void (await container.stop()),
  };
}

export interface JaegerContainer {
  /** OTLP/gRPC endpoint for OTEL_EXPORTER_OTLP_ENDPOINT. */
  otlpEndpoint: string;
  /** Base URL of Jaeger's HTTP query API (/api/traces). */
  queryUrl: string;
  stop(): Promise<void>;
}

/** A Jaeger all-in-one (OTLP in, query API out); only where dockerEngine() is reachable. */
export async function startJaeger(): Promise<JaegerContainer> {
  const { GenericContainer, Wait } = await import("testcontainers");
  const container = await new GenericContainer(CONTAINER_IMAGES.jaeger)
    .withExposedPorts(4317, 16686)
    .withWaitStrategy(Wait.forHttp("/", 16686))
    .start();
  return {
    otlpEndpoint: `http://${container.getHost()}:${container.getMappedPort(4317)}`,
    queryUrl: `http://${container.getHost()}:${container.getMappedPort(16686)}`,
    stop: async () => void (await container.stop()),
  };
}
