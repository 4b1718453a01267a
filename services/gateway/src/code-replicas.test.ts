import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { status } from "@grpc/grpc-js";
import { createLogger, loadSecurityConfig, type ToolplaneError } from "../../runtime/src/index.js";
import { CodeReplicaPool, codeTargetProblem, parseCodeTarget } from "./code-replicas.js";

const options = () => ({ security: loadSecurityConfig(), logger: createLogger("test", "silent") });

describe("code targets", () => {
  it("splits a comma list, dns:/// names and ipv4: endpoints into replicas", () => {
    assert.deepEqual(parseCodeTarget("a:1,dns:///code.ns:50053,[::1]:9"), [
      { kind: "fixed", address: "a:1" },
      { kind: "dns", host: "code.ns", port: "50053" },
      { kind: "fixed", address: "[::1]:9" },
    ]);
    assert.deepEqual(parseCodeTarget("ipv4:10.0.0.1:5,10.0.0.2:5"), [
      { kind: "fixed", address: "10.0.0.1:5" },
      { kind: "fixed", address: "10.0.0.2:5" },
    ]);
  });

  it("names the bad entry", () => {
    assert.match(codeTargetProblem("a:1,b") ?? "", /entry "b": a port is required/);
    assert.match(codeTargetProblem("a:1,,b:2") ?? "", /entry "":/);
    assert.equal(codeTargetProblem("dns:///code:50053"), undefined);
  });
});

describe("placement", () => {
  it("puts a new session on the less loaded of the two replicas drawn", () => {
    const pool = new CodeReplicaPool("a:1,b:2,c:3", { ...options(), random: () => 0 });
    try {
      const [a, b, c] = pool.list();
      assert.ok(a && b && c);
      a.load = { openSessions: 5, inFlightCells: 0 };
      b.load = { openSessions: 1, inFlightCells: 3 };
      c.load = { openSessions: 0, inFlightCells: 0 };
      // random() = 0 draws a, then a again, which is replaced by its neighbour b: b (4) beats a (5).
      assert.equal(pool.place().address, "b:2");
      // Each placement counts until the next load report: b is now 5, a tie keeps the first draw.
      assert.equal(pool.place().address, "a:1");
    } finally {
      pool.close();
    }
  });

  it("skips replicas that are down or unlisted, and says so when none is left to try", () => {
    const pool = new CodeReplicaPool("a:1,b:2", options());
    try {
      const [a, b] = pool.list();
      assert.ok(a && b);
      a.healthy = false;
      for (let n = 0; n < 10; n++) assert.equal(pool.place().address, "b:2");
      b.listed = false;
      // Every listed replica down: try one rather than refuse, unless a creation already failed there.
      assert.equal(pool.place().address, "a:1");
      assert.throws(
        () => pool.place(new Set(["a:1"])),
        (error: ToolplaneError) =>
          error.code === status.UNAVAILABLE &&
          error.errorClass === "INFRASTRUCTURE" &&
          /no code replica can take a new session \(known: a:1 \(down\), b:2\)/.test(error.message),
      );
    } finally {
      pool.close();
    }
  });
});
