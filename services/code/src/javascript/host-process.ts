/**
 * Entry point of a sandbox host process: an IsolateEngine served over the IPC
 * channel of its parent (the code service). isolated-vm cannot contain every
 * V8 heap exhaustion (some end in a "catastrophic" error that parks the
 * isolate's thread for good), so isolates live here, under a memory bound of
 * their own: a lost isolate retires this process (it finishes serving its
 * sessions, then ends), never the service.
 */
import type { status } from "@grpc/grpc-js";
import { asToolplaneError, loadSecurityConfig } from "../../../runtime/src/index.js";
import type { InputImage, ResolvedLimits } from "../backend.js";
import { type EngineOptions, type EngineSession, IsolateEngine } from "./engine.js";
import { MemoryWatch } from "./memory-watch.js";

export type HostOptions = Omit<EngineOptions, "onCatastrophicError">;

export type HostRequest =
  | { id: number; op: "create"; sessionId: string; images: InputImage[]; limits: ResolvedLimits }
  | { id: number; op: "execute"; sessionId: string; code: string; timeoutMs: number; hardKillGraceMs: number }
  | { id: number; op: "reset"; sessionId: string }
  | { id: number; op: "close"; sessionId: string }
  | { id: number; op: "stop" }
  | { op: "cancel"; sessionId: string };

export interface HostFailure {
  code: status;
  errorClass: "MODEL" | "INFRASTRUCTURE";
  message: string;
}

export type HostMessage =
  | { event: "ready" }
  | { event: "catastrophic"; sessionId: string | undefined; message: string }
  | { id: number; ok: true; value?: unknown }
  | { id: number; ok: false; error: HostFailure };

/** A closed channel means the service went away (e.g. it failed to start and exited): nothing is left to serve. */
function send(message: HostMessage, then?: () => void): void {
  if (!process.send || !process.connected) process.exit(0);
  process.send(message, undefined, {}, (error) => (error ? process.exit(0) : then?.()));
}

function serve(options: HostOptions): void {
  const sessions = new Map<string, EngineSession>();
  // Ids outlive close: a cell abandoned as stuck is often closed by its caller before its isolate's heap gives
  // out, and that late catastrophic error must still name it (an unnamed loss would cost the other sessions).
  const idOf = new WeakMap<EngineSession, string>();
  const cancels = new Map<string, AbortController>();
  const engine = new IsolateEngine({
    ...options,
    onCatastrophicError(session, message) {
      const sessionId = session ? idOf.get(session) : undefined;
      // isolated-vm parks the lost isolate's thread for good; the other isolates keep working. The parent
      // answers the culprit, gives this process no new sessions and ends it once its sessions are done.
      send({ event: "catastrophic", sessionId, message });
    },
  });

  // The same outcome as a catastrophic error, seconds earlier: the parent answers the culprit and retires this host.
  const memoryWatch = new MemoryWatch((sessionId, grownMb, limitMb) =>
    send({
      event: "catastrophic",
      sessionId,
      message: `the cell grew its host's memory by ${grownMb} MB, past its limit of ${limitMb} MB, where V8 could not stop it`,
    }),
  );

  const sessionFor = (sessionId: string): EngineSession => {
    const session = sessions.get(sessionId);
    if (!session) throw new Error(`unknown sandbox session ${sessionId}`);
    return session;
  };

  async function handle(request: Exclude<HostRequest, { op: "cancel" }>): Promise<unknown> {
    switch (request.op) {
      case "create": {
        const images = request.images.map((image) => ({ ...image, data: Buffer.from(image.data) }));
        const session = await engine.createSession(images, request.limits);
        sessions.set(request.sessionId, session);
        idOf.set(session, request.sessionId);
        return undefined;
      }
      case "execute": {
        const controller = new AbortController();
        const session = sessionFor(request.sessionId);
        cancels.set(request.sessionId, controller);
        memoryWatch.begin(request.sessionId, session.limits.memoryMb);
        try {
          return await session.execute(request.code, {
            timeoutMs: request.timeoutMs,
            killGraceMs: request.hardKillGraceMs,
            signal: controller.signal,
          });
        } finally {
          memoryWatch.end(request.sessionId);
          cancels.delete(request.sessionId);
        }
      }
      case "reset":
        return sessionFor(request.sessionId).reset();
      case "close": {
        const session = sessions.get(request.sessionId);
        sessions.delete(request.sessionId);
        return session?.close();
      }
      case "stop":
        await engine.stop();
        setImmediate(() => process.exit(0));
        return undefined;
    }
  }

  process.on("message", (request: HostRequest) => {
    if (request.op === "cancel") {
      cancels.get(request.sessionId)?.abort();
      return;
    }
    handle(request).then(
      (value) => send({ id: request.id, ok: true, value }),
      (error: unknown) => {
        const mapped = asToolplaneError(error);
        send({
          id: request.id,
          ok: false,
          error: { code: mapped.code, errorClass: mapped.errorClass, message: mapped.message },
        });
      },
    );
  });
  // The service went away without stopping us: nothing is left to serve.
  process.on("disconnect", () => process.exit(0));
  engine.start().then(
    () => send({ event: "ready" }),
    (error: unknown) => {
      process.stderr.write(`javascript sandbox host failed to start: ${String(error)}\n`);
      process.exit(1);
    },
  );
}

// This process's entry point: the credentials for the image service come from the environment it inherited, read
// once here, never through argv (which any process on the host can read in /proc).
serve({ ...(JSON.parse(process.argv[2] ?? "{}") as HostOptions), imageServiceSecurity: loadSecurityConfig() });
