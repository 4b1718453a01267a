import assert from "node:assert/strict";
import { describe, it } from "node:test";
import type { ToolCallEvent } from "./call-events.js";
import { combineObservers, eventSubject, type StoppableObserver, subjectToken } from "./events.js";
import { createLogger } from "./logger.js";

const logger = createLogger("events-unit", "silent");

const EVENT: ToolCallEvent = {
  phase: "finished",
  callId: "c1",
  trajectoryId: "t1",
  rolloutId: "r1",
  step: 1,
  tool: "code.python",
  argumentsDigest: "d",
  inputImages: [],
  outputImages: [],
  startedAtMs: 0,
  status: "OK",
};

describe("event subjects", () => {
  it("puts the tool and phase in the subject, with characters NATS reserves replaced", () => {
    assert.equal(eventSubject(EVENT), "toolplane.calls.code_python.finished");
    assert.equal(eventSubject({ ...EVENT, phase: "started", tool: "search" }), "toolplane.calls.search.started");
    assert.equal(subjectToken("a*b>c d\te"), "a_b_c_d_e");
    assert.equal(subjectToken(""), "_", "an empty token would make an invalid subject");
  });
});

describe("combineObservers", () => {
  it("delivers every event to every observer even when one throws, and stops them all", async () => {
    const seen: string[] = [];
    let stopped = 0;
    const recording = (name: string): StoppableObserver => ({
      onEvent: (event) => seen.push(`${name}:${event.callId}`),
      stop: async () => {
        stopped += 1;
      },
    });
    const throwing: StoppableObserver = {
      onEvent: () => {
        throw new Error("observer bug");
      },
      stop: async () => {
        stopped += 1;
      },
    };
    const combined = combineObservers([recording("a"), throwing, recording("b")], logger);
    assert.doesNotThrow(() => combined.onEvent(EVENT));
    assert.deepEqual(seen, ["a:c1", "b:c1"]);
    await combined.stop();
    assert.equal(stopped, 3);
  });
});
