import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { status } from "@grpc/grpc-js";
import { Language } from "../../../generated/toolplane/code/v1/code.js";
import {
  CancelledError,
  createLogger,
  DeadlineExceededError,
  InvalidArgumentError,
  NotFoundError,
  ResourceExhaustedError,
  type ToolplaneError,
} from "../../runtime/src/index.js";
import type { CreateOptions, ExecuteOptions, ExecutionOutcome, LanguageBackend, LanguageSession } from "./backend.js";
import { type CreateSessionParams, cellBudget, SessionManager, type SessionManagerConfig } from "./sessions.js";

/**
 * A scripted in-memory language, so the manager's own rules (limits, TTL, cap,
 * ordering) are tested apart from any sandbox. The real Python backend is
 * covered by python/backend.test.ts and the integration tests.
 */
class ScriptedBackend implements LanguageBackend {
  readonly language = Language.LANGUAGE_PYTHON;
  readonly log: string[] = [];
  closed = 0;
  /** When set, createSession waits for it (an interpreter that takes a while to come). */
  gate: Promise<void> | undefined;
  readonly seeds: Array<number | undefined> = [];
  async start(): Promise<void> {}
  async stop(): Promise<void> {}
  async createSession(_images: unknown, _limits: unknown, options: CreateOptions = {}): Promise<LanguageSession> {
    const backend = this;
    this.seeds.push(options.seed);
    if (this.gate) await this.gate;
    return {
      async execute(code: string, options: ExecuteOptions): Promise<ExecutionOutcome> {
        backend.log.push(`start ${code}`);
        const delay = Number(code.replace("sleep ", "")) || 0;
        await new Promise((resolve) => setTimeout(resolve, delay));
        backend.log.push(`end ${code} ${options.timeoutMs}`);
        return {
          stdout: code,
          stderr: "",
          stdoutTruncated: false,
          stderrTruncated: false,
          images: [],
          imagesTruncated: false,
        };
      },
      async reset() {
        backend.log.push("reset");
      },
      async close() {
        backend.closed += 1;
      },
    };
  }
}

const CONFIG: SessionManagerConfig = {
  defaults: { timeoutMs: 1000, memoryMb: 256, maxOutputBytes: 1024, maxImages: 4, idleTtlSeconds: 60 },
  maxima: { timeoutMs: 5000, memoryMb: 1024, maxOutputBytes: 4096, maxImages: 8, idleTtlSeconds: 600 },
  maxSessions: 2,
  maxWaitingCreates: 2,
  retryAfterMs: 750,
  sweepIntervalMs: 60_000,
  maxCodeBytes: 100,
};

function manager(backend = new ScriptedBackend()) {
  return { backend, sessions: new SessionManager([backend], CONFIG, createLogger("test", "silent")) };
}

const create = (sessions: SessionManager, overrides: Partial<CreateSessionParams> = {}) =>
  sessions.create({
    language: Language.LANGUAGE_PYTHON,
    images: [],
    limits: {},
    idleTtlSeconds: 0,
    label: "t",
    signal: new AbortController().signal,
    ...overrides,
  });

const run = (
  sessions: SessionManager,
  sessionId: string,
  code: string,
  timeoutMs = 0,
  signal = new AbortController().signal,
) => sessions.execute({ sessionId, code, timeoutMs, fixIndentation: false, signal });

describe("SessionManager", () => {
  it("applies defaults for limits left at 0 and keeps the ones given", () => {
    const { sessions } = manager();
    assert.deepEqual(sessions.resolveLimits({ timeoutMs: 0, memoryMb: 512 }), {
      timeoutMs: 1000,
      memoryMb: 512,
      maxOutputBytes: 1024,
      maxImages: 4,
    });
  });

  it("rejects a limit above the service maximum with INVALID_ARGUMENT naming it", () => {
    const { sessions } = manager();
    for (const [key, field] of [
      ["timeoutMs", "limits.timeout_ms"],
      ["memoryMb", "limits.memory_mb"],
      ["maxOutputBytes", "limits.max_output_bytes"],
      ["maxImages", "limits.max_images"],
    ] as const) {
      assert.throws(
        () => sessions.resolveLimits({ [key]: 1_000_000 }),
        (error: ToolplaneError) =>
          error instanceof InvalidArgumentError && error.message.includes(field) && error.errorClass === "MODEL",
      );
    }
  });

  it("rejects an idle TTL above the maximum and a language without a backend", async () => {
    const { sessions } = manager();
    await assert.rejects(
      create(sessions, { idleTtlSeconds: 601 }),
      /idle_ttl_seconds is 601, over the limit of 600 \(TOOLPLANE_CODE_MAX_IDLE_TTL_SECONDS\)/,
    );
    await assert.rejects(
      create(sessions, { language: Language.LANGUAGE_JAVASCRIPT }),
      (error: ToolplaneError) =>
        error instanceof InvalidArgumentError && /language LANGUAGE_JAVASCRIPT/.test(error.message),
    );
    await assert.rejects(
      create(sessions, { language: Language.LANGUAGE_UNSPECIFIED }),
      /language LANGUAGE_UNSPECIFIED/,
    );
  });

  it("queues creations beyond max_sessions in arrival order until a slot frees", async () => {
    const { sessions } = manager();
    const first = await create(sessions);
    await create(sessions);
    const order: string[] = [];
    const admitOrder = (label: string) =>
      create(sessions, { label }).then((created) => {
        order.push(label);
        return created;
      });
    const third = admitOrder("third");
    const fourth = admitOrder("fourth");
    await new Promise((resolve) => setTimeout(resolve, 20));
    assert.deepEqual(order, [], "nobody is admitted while max_sessions are open");
    await sessions.close(first.sessionId);
    const admitted = await third;
    assert.deepEqual(order, ["third"]);
    assert.ok(admitted.queueMs >= 15, `the wait is reported: ${admitted.queueMs}`);
    await sessions.close(admitted.sessionId);
    await fourth;
    assert.deepEqual(order, ["third", "fourth"]);
    assert.equal(sessions.openSessions, 2);
  });

  it("a full wait queue answers RESOURCE_EXHAUSTED, INFRASTRUCTURE, with a retry hint", async () => {
    const { sessions } = manager();
    await create(sessions);
    await create(sessions);
    const controller = new AbortController();
    const waiting = [create(sessions, { signal: controller.signal }), create(sessions, { signal: controller.signal })];
    await assert.rejects(create(sessions), (error: ToolplaneError) => {
      assert.ok(error instanceof ResourceExhaustedError);
      assert.equal(error.errorClass, "INFRASTRUCTURE");
      assert.equal(error.retryAfterMs, 750);
      assert.match(error.message, /max_sessions reached: 2 sessions are open and 2 creations are waiting/);
      return true;
    });
    controller.abort();
    for (const call of waiting) {
      await assert.rejects(
        call,
        (error: ToolplaneError) =>
          error instanceof CancelledError && /stopped while it waited for a free session slot/.test(error.message),
      );
    }
  });

  it("a caller that gives up while waiting for a slot leaves the queue without taking a slot", async () => {
    const { sessions, backend } = manager();
    const first = await create(sessions);
    await create(sessions);
    const controller = new AbortController();
    const gone = create(sessions, { signal: controller.signal });
    const next = create(sessions, { label: "next" });
    controller.abort();
    await assert.rejects(gone, (error: ToolplaneError) => error instanceof CancelledError);
    await sessions.close(first.sessionId);
    await next;
    assert.equal(sessions.openSessions, 2);
    assert.equal(backend.seeds.length, 3, "the departed caller never reached the backend");
  });

  it("a wait for a slot ended by the caller's deadline is DEADLINE_EXCEEDED, not CANCELLED", async () => {
    const { sessions } = manager();
    const first = await create(sessions);
    await create(sessions);
    const controller = new AbortController();
    const expired = create(sessions, { signal: controller.signal });
    // The gRPC server layer aborts a call's signal with a DeadlineExceededError when its deadline passes.
    controller.abort(new DeadlineExceededError("deadline exceeded"));
    await assert.rejects(expired, DeadlineExceededError);
    await sessions.close(first.sessionId);
  });

  it("a session created for a caller who has gone is closed at once and frees its slot", async () => {
    const { sessions, backend } = manager();
    let open: () => void = () => {};
    backend.gate = new Promise<void>((resolve) => {
      open = resolve;
    });
    const controller = new AbortController();
    const creating = create(sessions, { signal: controller.signal });
    await new Promise((resolve) => setTimeout(resolve, 10));
    controller.abort();
    open();
    await assert.rejects(creating, (error: ToolplaneError) => {
      assert.ok(error instanceof CancelledError, String(error));
      assert.match(error.message, /stopped while its session was being created/);
      return true;
    });
    assert.equal(backend.closed, 1, "the orphan's interpreter is released");
    assert.equal(sessions.openSessions, 0);
    backend.gate = undefined;
    await create(sessions);
    await create(sessions);
    assert.equal(sessions.openSessions, 2, "its slot is free again: max_sessions sessions can still be opened");
  });

  it("passes the caller's seed to the backend, and none when unset", async () => {
    const { sessions, backend } = manager();
    await create(sessions, { seed: 7 });
    await create(sessions);
    assert.deepEqual(backend.seeds, [7, undefined]);
  });

  it("runs calls on one session one at a time, in arrival order, reporting the wait", async () => {
    const { sessions, backend } = manager();
    const { sessionId } = await create(sessions);
    const slow = run(sessions, sessionId, "sleep 60");
    const fast = run(sessions, sessionId, "sleep 0", 2000);
    const [, second] = await Promise.all([slow, fast]);
    assert.deepEqual(backend.log, ["start sleep 60", "end sleep 60 1000", "start sleep 0", "end sleep 0 2000"]);
    assert.ok(second.queueMs > 0);
  });

  it("a call cancelled while it waits does not run and does not block the next one", async () => {
    const { sessions, backend } = manager();
    const { sessionId } = await create(sessions);
    const controller = new AbortController();
    const slow = run(sessions, sessionId, "sleep 50");
    const cancelled = run(sessions, sessionId, "never", 0, controller.signal);
    controller.abort();
    await assert.rejects(cancelled, CancelledError);
    await slow;
    await run(sessions, sessionId, "after");
    assert.deepEqual(backend.log, ["start sleep 50", "end sleep 50 1000", "start after", "end after 1000"]);
  });

  it("validates session_id, code size and per-call timeout", async () => {
    const { sessions } = manager();
    const { sessionId } = await create(sessions);
    await assert.rejects(run(sessions, "", "x"), /session_id is required/);
    await assert.rejects(run(sessions, "nope", "x"), (error: ToolplaneError) => error instanceof NotFoundError);
    await assert.rejects(
      run(sessions, sessionId, "x".repeat(101)),
      /code has 101 bytes, over the limit of 100 \(TOOLPLANE_CODE_MAX_CODE_BYTES\)/,
    );
    await assert.rejects(
      run(sessions, sessionId, "x", 5001),
      /timeout_ms is 5001, over the limit of 5000 \(TOOLPLANE_CODE_MAX_TIMEOUT_MS\)/,
    );
  });

  it("shortens a cell's timeout to end before the caller's deadline", async () => {
    const { sessions, backend } = manager();
    const { sessionId } = await create(sessions);
    await sessions.execute({
      sessionId,
      code: "short",
      timeoutMs: 0,
      fixIndentation: false,
      signal: new AbortController().signal,
      deadlineMs: Date.now() + 600,
    });
    const timeout = Number(backend.log.at(-1)?.split(" ").at(-1));
    assert.ok(timeout > 0 && timeout <= 500, `timeout given to the backend: ${timeout}`);
    await assert.rejects(
      sessions.execute({
        sessionId,
        code: "late",
        timeoutMs: 0,
        fixIndentation: false,
        signal: new AbortController().signal,
        deadlineMs: Date.now() - 1,
      }),
      (error: ToolplaneError) => error instanceof DeadlineExceededError,
    );
  });

  it("closes idle sessions after their TTL but never a busy one", async () => {
    const { sessions, backend } = manager();
    const idle = await create(sessions, { idleTtlSeconds: 1 });
    const busy = await create(sessions, { idleTtlSeconds: 1 });
    const running = run(sessions, busy.sessionId, "sleep 30");
    sessions.sweep(Date.now() + 5000);
    assert.equal(backend.closed, 1);
    await assert.rejects(run(sessions, idle.sessionId, "x"), NotFoundError);
    await running;
    sessions.sweep(Date.now() + 5000);
    assert.equal(backend.closed, 2);
    assert.equal(sessions.openSessions, 0);
  });

  it("reset waits its turn; close frees the session and a second close is NOT_FOUND", async () => {
    const { sessions, backend } = manager();
    const { sessionId } = await create(sessions);
    await Promise.all([run(sessions, sessionId, "sleep 20"), sessions.reset(sessionId, new AbortController().signal)]);
    assert.deepEqual(backend.log, ["start sleep 20", "end sleep 20 1000", "reset"]);
    await sessions.close(sessionId);
    assert.equal(backend.closed, 1);
    await assert.rejects(sessions.close(sessionId), NotFoundError);
  });
});

describe("cellBudget", () => {
  const now = 1_000_000;
  it("keeps the requested timeout without a caller deadline", () => {
    assert.deepEqual(cellBudget(5000, undefined, 2000, now), { timeoutMs: 5000 });
  });

  it("fits timeout plus kill grace inside the deadline, minus the margin", () => {
    const budget = cellBudget(5000, now + 5000, 2000, now);
    assert.deepEqual(budget, { timeoutMs: 2750, killGraceMs: 2000 });
    assert.ok(budget.timeoutMs + (budget.killGraceMs ?? 0) <= 5000 - 250);
    assert.deepEqual(cellBudget(1000, now + 60_000, 2000, now), { timeoutMs: 1000, killGraceMs: 2000 });
  });

  it("gives the grace at most half of a short deadline, and refuses a deadline already past", () => {
    assert.deepEqual(cellBudget(5000, now + 900, 2000, now), { timeoutMs: 325, killGraceMs: 325 });
    assert.throws(
      () => cellBudget(5000, now + 200, 2000, now),
      (error: ToolplaneError) => error.code === status.DEADLINE_EXCEEDED,
    );
  });
});
