import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { Language } from "../../../generated/toolplane/code/v1/code.js";
import {
  createLogger,
  DeadlineExceededError,
  InvalidArgumentError,
  NotFoundError,
  ResourceExhaustedError,
  type ToolplaneError,
} from "../../runtime/src/index.js";
import type { ExecuteOptions, ExecutionOutcome, LanguageBackend, LanguageSession } from "./backend.js";
import { SessionManager, type SessionManagerConfig } from "./sessions.js";

/**
 * A scripted in-memory language, so the manager's own rules (limits, TTL, cap,
 * ordering) are tested apart from any sandbox. The real Python backend is
 * covered by python/backend.test.ts and the integration tests.
 */
class ScriptedBackend implements LanguageBackend {
  readonly language = Language.LANGUAGE_PYTHON;
  readonly log: string[] = [];
  closed = 0;
  async start(): Promise<void> {}
  async stop(): Promise<void> {}
  async createSession(): Promise<LanguageSession> {
    const backend = this;
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
  retryAfterMs: 750,
  sweepIntervalMs: 60_000,
  maxCodeBytes: 100,
};

function manager(backend = new ScriptedBackend()) {
  return { backend, sessions: new SessionManager([backend], CONFIG, createLogger("test", "silent")) };
}

const create = (sessions: SessionManager, overrides = {}) =>
  sessions.create({
    language: Language.LANGUAGE_PYTHON,
    images: [],
    limits: {},
    idleTtlSeconds: 0,
    label: "t",
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
    await assert.rejects(create(sessions, { idleTtlSeconds: 601 }), /idle_ttl_seconds=601 exceeds .* 600/);
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

  it("refuses sessions beyond max_sessions with RESOURCE_EXHAUSTED, INFRASTRUCTURE, a retry hint", async () => {
    const { sessions } = manager();
    const first = await create(sessions);
    await create(sessions);
    await assert.rejects(create(sessions), (error: ToolplaneError) => {
      assert.ok(error instanceof ResourceExhaustedError);
      assert.equal(error.errorClass, "INFRASTRUCTURE");
      assert.equal(error.retryAfterMs, 750);
      assert.match(error.message, /max_sessions/);
      return true;
    });
    await sessions.close(first.sessionId);
    await create(sessions);
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
    await assert.rejects(cancelled, /cancelled/);
    await slow;
    await run(sessions, sessionId, "after");
    assert.deepEqual(backend.log, ["start sleep 50", "end sleep 50 1000", "start after", "end after 1000"]);
  });

  it("validates session_id, code size and per-call timeout", async () => {
    const { sessions } = manager();
    const { sessionId } = await create(sessions);
    await assert.rejects(run(sessions, "", "x"), /session_id is required/);
    await assert.rejects(run(sessions, "nope", "x"), (error: ToolplaneError) => error instanceof NotFoundError);
    await assert.rejects(run(sessions, sessionId, "x".repeat(101)), /code is 101 bytes; the maximum is 100/);
    await assert.rejects(run(sessions, sessionId, "x", 5001), /timeout_ms=5001 exceeds the service maximum of 5000/);
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
