import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { DeadlineExceededError } from "../../runtime/src/index.js";
import { SessionLanes } from "./session-lanes.js";

const never = { deadlineMs: Number.POSITIVE_INFINITY, signal: () => new AbortController().signal };

describe("session lanes", () => {
  it("runs one lane's calls one at a time in arrival order; other lanes run beside it", async () => {
    const lanes = new SessionLanes(10);
    const log: string[] = [];
    const task = (name: string, ms: number) => async () => {
      log.push(`start ${name}`);
      await new Promise((resolve) => setTimeout(resolve, ms));
      log.push(`end ${name}`);
      return name;
    };
    const results = await Promise.all([
      lanes.run("s1", "s1", never, task("a", 20)),
      lanes.run("s1", "s1", never, task("b", 1)),
      lanes.run("s2", "s2", never, task("x", 1)),
    ]);
    assert.deepEqual(results, ["a", "b", "x"]);
    assert.ok(log.indexOf("end a") < log.indexOf("start b"), log.join(","));
    assert.ok(log.indexOf("end x") < log.indexOf("end a"), "another lane is not held up");
    assert.equal(lanes.queued, 0);
  });

  it("refuses calls beyond the lane's bound as the model's RESOURCE_EXHAUSTED", async () => {
    const lanes = new SessionLanes(2);
    let release!: () => void;
    const running = lanes.run(
      "s",
      "the trajectory's python session",
      never,
      () => new Promise<void>((r) => (release = r)),
    );
    const waiting = [lanes.run("s", "x", never, async () => 1), lanes.run("s", "x", never, async () => 2)];
    await assert.rejects(
      lanes.run("s", "the trajectory's python session", never, async () => 3),
      (error: Error & { errorClass: string }) => {
        assert.equal(error.name, "ResourceExhaustedError");
        assert.equal(error.errorClass, "MODEL");
        assert.match(
          error.message,
          /the trajectory's python session already has a cell running and 2 waiting, over the limit of 2 waiting/,
        );
        return true;
      },
    );
    release();
    await running;
    assert.deepEqual(await Promise.all(waiting), [1, 2]);
  });

  it("a deadline passing while the call waits behind its own session is the model's DEADLINE_EXCEEDED", async () => {
    const lanes = new SessionLanes(5);
    let release!: () => void;
    const running = lanes.run("s", "s", never, () => new Promise<void>((r) => (release = r)));
    const deadline = new AbortController();
    setTimeout(() => deadline.abort(new DeadlineExceededError("deadline exceeded")), 20);
    await assert.rejects(
      lanes.run(
        "s",
        "the trajectory's python session",
        { deadlineMs: Date.now() + 60_000, signal: () => deadline.signal },
        async () => 1,
      ),
      (error: Error & { errorClass: string }) => {
        assert.equal(error.name, "DeadlineExceededError");
        assert.equal(error.errorClass, "MODEL");
        assert.match(error.message, /behind 1 earlier call\(s\) of the trajectory's python session/);
        return true;
      },
    );
    const gone = new AbortController();
    setTimeout(() => gone.abort(new Error("client left")), 5);
    await assert.rejects(
      lanes.run("s", "s", { deadlineMs: Date.now() + 60_000, signal: () => gone.signal }, async () => 1),
      (error: Error & { errorClass: string }) => {
        assert.equal(error.name, "CancelledError");
        assert.equal(error.errorClass, "INFRASTRUCTURE");
        return true;
      },
    );
    release();
    await running;
    assert.equal(await lanes.run("s", "s", never, async () => "free again"), "free again");
  });

  it("a call whose turn comes too close to its deadline does not start: the model's DEADLINE_EXCEEDED", async () => {
    const lanes = new SessionLanes(5);
    let release!: () => void;
    const running = lanes.run("s", "s", never, () => new Promise<void>((r) => (release = r)));
    let ran = false;
    const late = lanes.run(
      "s",
      "the trajectory's python session",
      { deadlineMs: Date.now() + 200, signal: never.signal },
      async () => {
        ran = true;
      },
    );
    release();
    await running;
    await assert.rejects(late, (error: Error & { errorClass: string }) => {
      assert.equal(error.name, "DeadlineExceededError");
      assert.equal(error.errorClass, "MODEL");
      assert.match(
        error.message,
        /once the earlier calls of the trajectory's python session had run, too little to start a cell/,
      );
      return true;
    });
    assert.equal(ran, false);
    // A call that did not wait is the code service's to judge.
    assert.equal(
      await lanes.run("t", "t", { deadlineMs: Date.now() + 10, signal: never.signal }, async () => "ran"),
      "ran",
    );
  });
});
