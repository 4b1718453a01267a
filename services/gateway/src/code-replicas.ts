import { lookup } from "node:dns/promises";
import { isIP } from "node:net";
import { status } from "@grpc/grpc-js";
import { Gauge } from "prom-client";
import { CodeServiceClient } from "../../../generated/toolplane/code/v1/code.js";
import {
  addressProblem,
  asToolplaneError,
  createClient,
  errorMessage,
  FailedPreconditionError,
  invoke,
  type Logger,
  metricsRegistry,
  type SecurityConfig,
  UnavailableError,
} from "../../runtime/src/index.js";

/**
 * The code tier as one pool: every replica the gateway knows (a comma-separated list of addresses, or a
 * `dns:///name:port` target whose A/AAAA records are the replicas, as a Kubernetes headless Service gives),
 * one gRPC channel each. A new code session goes to the less loaded of two replicas drawn at random (power of
 * two choices, on the load each replica reports through its Load RPC); every later call of that session goes
 * to the replica recorded in its handle. A replica that leaves DNS or stops answering Load gets no new sessions.
 */

export interface ReplicaLoad {
  openSessions: number;
  inFlightCells: number;
}

export interface CodeReplica {
  readonly address: string;
  readonly client: CodeServiceClient;
  /** Last load the replica reported, plus the sessions this gateway placed on it since. */
  load: ReplicaLoad;
  placedSinceReport: number;
  /** Answered its last Load poll. */
  healthy: boolean;
  /** Named by the configured list or the last DNS answer; an unlisted replica only serves its sessions. */
  listed: boolean;
}

export interface CodeReplicaPoolOptions {
  security: SecurityConfig;
  logger: Logger;
  /** How often DNS targets are resolved again. */
  resolveIntervalMs?: number;
  /** How often each replica's load is polled (also its health check). */
  loadIntervalMs?: number;
  /** Name resolution, replaceable in tests; default: every A/AAAA record of the name. */
  resolve?: (host: string) => Promise<string[]>;
  /** Random source for the two choices, replaceable in tests. */
  random?: () => number;
}

const LOAD_TIMEOUT_MS = 1000;

const replicaLoad = new Gauge({
  name: "toolplane_code_replica_load",
  help: "Load a code replica last reported to this gateway, by replica and kind (open_sessions, in_flight_cells)",
  labelNames: ["replica", "kind"] as const,
  registers: [metricsRegistry],
});
const replicaUp = new Gauge({
  name: "toolplane_code_replica_up",
  help: "1 when the code replica is listed and answered its last load poll (it gets new sessions), else 0",
  labelNames: ["replica"] as const,
  registers: [metricsRegistry],
});
const replicaSessions = new Gauge({
  name: "toolplane_gateway_code_sessions",
  help: "Code sessions this gateway opened and has not closed, by code replica",
  labelNames: ["replica"] as const,
  registers: [metricsRegistry],
});

/** One entry of TOOLPLANE_CODE_ADDR: fixed addresses, or a DNS name resolved again and again. */
type TargetEntry = { kind: "fixed"; address: string } | { kind: "dns"; host: string; port: string };

/** Splits a code target into entries; throws naming the bad entry. */
export function parseCodeTarget(target: string): TargetEntry[] {
  // ipv4:/ipv6: targets already list their endpoints with commas: each endpoint is a replica.
  if (target.startsWith("ipv4:") || target.startsWith("ipv6:")) {
    const problem = addressProblem(target);
    if (problem) throw new Error(problem);
    return target
      .slice(5)
      .split(",")
      .map((address) => ({ kind: "fixed", address }));
  }
  return target.split(",").map((entry): TargetEntry => {
    const problem = addressProblem(entry);
    if (problem) throw new Error(`entry ${JSON.stringify(entry)}: ${problem}`);
    if (!entry.startsWith("dns:")) return { kind: "fixed", address: entry };
    const rest = entry.slice("dns:".length);
    const endpoint = rest.startsWith("//") ? rest.slice(rest.indexOf("/", 2) + 1) : rest;
    const colon = endpoint.lastIndexOf(":");
    return { kind: "dns", host: endpoint.slice(0, colon), port: endpoint.slice(colon + 1) };
  });
}

/** Why the value is not a code target (a comma-separated list of addresses), or undefined. */
export function codeTargetProblem(target: string): string | undefined {
  try {
    parseCodeTarget(target);
    return undefined;
  } catch (error) {
    return errorMessage(error);
  }
}

async function resolveAll(host: string): Promise<string[]> {
  if (isIP(host)) return [host];
  const records = await lookup(host, { all: true });
  return records.map((record) => record.address);
}

function joinHostPort(host: string, port: string): string {
  return isIP(host) === 6 ? `[${host}]:${port}` : `${host}:${port}`;
}

export class CodeReplicaPool {
  private readonly entries: TargetEntry[];
  private readonly replicas = new Map<string, CodeReplica>();
  private readonly resolve: (host: string) => Promise<string[]>;
  private readonly random: () => number;
  private timers: NodeJS.Timeout[] = [];

  constructor(
    target: string,
    private readonly options: CodeReplicaPoolOptions,
  ) {
    this.entries = parseCodeTarget(target);
    this.resolve = options.resolve ?? resolveAll;
    this.random = options.random ?? Math.random;
    // Fixed addresses are known at once; DNS names after the first resolution.
    for (const entry of this.entries) if (entry.kind === "fixed") this.replica(entry.address).listed = true;
  }

  /** Resolves the DNS entries and polls every replica once, then keeps doing both in the background. */
  async start(): Promise<void> {
    await this.refresh();
    await this.pollLoads();
    const resolveEvery = this.options.resolveIntervalMs ?? 5000;
    const loadEvery = this.options.loadIntervalMs ?? 1000;
    if (this.entries.some((entry) => entry.kind === "dns")) {
      this.timers.push(setInterval(() => void this.refresh(), resolveEvery).unref());
    }
    this.timers.push(setInterval(() => void this.pollLoads(), loadEvery).unref());
  }

  /** The replica at an address, with a channel opened on first use (a session placed by another gateway). */
  replica(address: string): CodeReplica {
    let replica = this.replicas.get(address);
    if (!replica) {
      replica = {
        address,
        client: createClient(CodeServiceClient, address, this.options.security),
        load: { openSessions: 0, inFlightCells: 0 },
        placedSinceReport: 0,
        // Healthy until a poll says otherwise, so a listed replica takes sessions before its first poll lands.
        healthy: true,
        listed: false,
      };
      this.replicas.set(address, replica);
    }
    return replica;
  }

  /** Every known replica, for metrics and tests. */
  list(): CodeReplica[] {
    return [...this.replicas.values()];
  }

  /**
   * Picks the replica for a new session: the less loaded of two listed, healthy replicas drawn at random
   * (open sessions + sessions placed since its last report + in-flight cells); when none is healthy, any listed
   * one not in `exclude` (those a creation already failed on). Two random choices instead of
   * the global minimum keep several gateways, each with a slightly stale view, from all piling onto one replica.
   */
  place(exclude: ReadonlySet<string> = new Set()): CodeReplica {
    const listed = this.list().filter((replica) => replica.listed && !exclude.has(replica.address));
    const up = listed.filter((replica) => replica.healthy);
    // With every replica down, trying one beats refusing outright: it may be back before its next load poll.
    const eligible = up.length > 0 ? up : listed;
    if (eligible.length === 0) {
      const known = this.list().map((replica) => `${replica.address}${replica.healthy ? "" : " (down)"}`);
      throw new UnavailableError(
        `no code replica can take a new session (known: ${known.length > 0 ? known.join(", ") : "none"})`,
      );
    }
    const first = eligible[Math.floor(this.random() * eligible.length)] as CodeReplica;
    let second = eligible[Math.floor(this.random() * eligible.length)] as CodeReplica;
    if (second === first && eligible.length > 1) {
      second = eligible[(eligible.indexOf(first) + 1) % eligible.length] as CodeReplica;
    }
    const chosen = score(second) < score(first) ? second : first;
    chosen.placedSinceReport++;
    return chosen;
  }

  /** A call just succeeded on the replica: it is up, whatever its last load poll said. */
  markUp(address: string): void {
    const replica = this.replicas.get(address);
    if (replica) replica.healthy = true;
  }

  /** Counts a session this gateway opened on (+1) or closed on (-1) a replica, for /metrics. */
  countSession(address: string, delta: 1 | -1): void {
    replicaSessions.inc({ replica: address }, delta);
  }

  /**
   * True when `error` is UNAVAILABLE and the replica does not answer a load probe either: it is gone (a code
   * service that answers UNAVAILABLE itself, e.g. a crashed kernel, still answers the probe). It is then
   * marked down and gets no new sessions until a load poll answers again.
   */
  async unreachable(address: string, error: unknown): Promise<boolean> {
    const failure = asToolplaneError(error);
    if (failure.code !== status.UNAVAILABLE || failure.errorClass !== "INFRASTRUCTURE") return false;
    const replica = this.replicas.get(address);
    if (!replica) return true;
    try {
      await this.report(replica);
      return false;
    } catch {
      replica.healthy = false;
      return true;
    }
  }

  /**
   * The one place a session's replica is given up on, when a call of a session placed on `address` failed there.
   * A refusal by a live replica is passed on as it is. An unreachable replica: the session is placed again and
   * the call retried on the new replica (`retry`), which restores the session from the shared checkpoint store
   * (the code service's MOVED restore, docs/code-python.md); the new replica is returned for the caller to
   * record. When the new replica does not know the session either (no shared checkpoint, a JavaScript session),
   * the answer is an INFRASTRUCTURE error saying the kernel state went with the replica: drop the trajectory.
   */
  async replaceSession<T>(
    address: string,
    sessionId: string,
    error: unknown,
    retry?: (replica: CodeReplica) => Promise<T>,
  ): Promise<{ value: T; replica: string }> {
    const failure = asToolplaneError(error);
    if (!(await this.unreachable(address, error))) throw failure;
    const lost = new FailedPreconditionError(
      `code replica ${address} holding code session ${sessionId} is unreachable (${failure.message}); ` +
        "the session's kernel state is gone with it, drop this trajectory",
      { cause: error },
    );
    if (!retry) throw lost;
    let next: CodeReplica;
    try {
      next = this.place();
    } catch {
      throw lost;
    }
    try {
      const value = await retry(next);
      this.options.logger.info({ sessionId, from: address, to: next.address }, "code session moved to another replica");
      return { value, replica: next.address };
    } catch (retryError) {
      const retried = asToolplaneError(retryError);
      throw retried.code === status.NOT_FOUND ? lost : retried;
    }
  }

  close(): void {
    for (const timer of this.timers) clearInterval(timer);
    this.timers = [];
    for (const replica of this.replicas.values()) replica.client.close();
    this.replicas.clear();
  }

  private async refresh(): Promise<void> {
    const named = new Set<string>();
    let resolvedAll = true;
    for (const entry of this.entries) {
      if (entry.kind === "fixed") {
        named.add(entry.address);
        continue;
      }
      try {
        for (const host of await this.resolve(entry.host)) named.add(joinHostPort(host, entry.port));
      } catch (error) {
        resolvedAll = false;
        this.options.logger.warn({ host: entry.host, err: errorMessage(error) }, "could not resolve code replicas");
      }
    }
    // A failed lookup keeps the last answer rather than emptying the pool.
    if (!resolvedAll) for (const replica of this.replicas.values()) if (replica.listed) named.add(replica.address);
    for (const address of named) {
      const replica = this.replica(address);
      if (!replica.listed) this.options.logger.info({ replica: address }, "code replica joined");
      replica.listed = true;
    }
    for (const replica of this.replicas.values()) {
      if (replica.listed && !named.has(replica.address)) {
        // Its open sessions are still served; it just gets no new ones.
        replica.listed = false;
        this.options.logger.info({ replica: replica.address }, "code replica left");
      }
    }
  }

  /** Asks the replica for its load; throws when it does not answer. */
  private async report(replica: CodeReplica): Promise<void> {
    const report = await invoke(replica.client, replica.client.load, {}, { deadlineMs: Date.now() + LOAD_TIMEOUT_MS });
    replica.load = { openSessions: report.openSessions, inFlightCells: report.inFlightCells };
    replica.placedSinceReport = 0;
  }

  private async pollLoads(): Promise<void> {
    await Promise.all(
      this.list().map(async (replica) => {
        try {
          await this.report(replica);
          if (!replica.healthy) this.options.logger.info({ replica: replica.address }, "code replica healthy again");
          replica.healthy = true;
        } catch (error) {
          if (replica.healthy) {
            this.options.logger.warn({ replica: replica.address, err: errorMessage(error) }, "code replica down");
          }
          replica.healthy = false;
          if (!replica.listed) {
            // Gone from DNS and not answering: nothing left to reach there.
            replica.client.close();
            this.replicas.delete(replica.address);
            replicaUp.remove({ replica: replica.address });
            replicaLoad.remove({ replica: replica.address, kind: "open_sessions" });
            replicaLoad.remove({ replica: replica.address, kind: "in_flight_cells" });
            return;
          }
        }
        replicaUp.set({ replica: replica.address }, replica.listed && replica.healthy ? 1 : 0);
        replicaLoad.set({ replica: replica.address, kind: "open_sessions" }, replica.load.openSessions);
        replicaLoad.set({ replica: replica.address, kind: "in_flight_cells" }, replica.load.inFlightCells);
      }),
    );
  }
}

function score(replica: CodeReplica): number {
  return replica.load.openSessions + replica.placedSinceReport + replica.load.inFlightCells;
}
