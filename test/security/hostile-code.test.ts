import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { readdirSync, readFileSync } from "node:fs";
import { createServer, type Server } from "node:net";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { CodeServiceClient, type ExecuteResponse, Language } from "../../generated/toolplane/code/v1/code.js";
import { ErrorClass } from "../../generated/toolplane/common/v1/common.js";
import { createClient, invoke, ToolplaneError } from "../../services/runtime/src/index.js";
import { distRoot, type SpawnedService, spawnService } from "../support/processes.js";

/**
 * Runs every program of test/security/corpus through the real code service.
 * Each program prints "ESCAPED" only if its attack worked. Its first line says
 * what must happen:
 *   contained             no escape; OK or a MODEL error; the session still works after
 *   model-error A|B       an in-band error of class MODEL with one of these codes
 *   truncated             output cut at the cap with the marker
 *   failure               anything but a silent success (the interpreter died)
 * A program may name {{LISTENER_PORT}} (a host listener it must not reach) and {{REPO_ROOT}} (the host path of
 * this repository, which it must not find). After every program the service must stay healthy: a canary session keeps its
 * state, a new session works, and nothing connected to a host listener.
 */
const repoRoot = join(distRoot, "..");
const corpusRoot = join(repoRoot, "test", "security", "corpus");
const TIMEOUT_MS = 4000;

interface Expectation {
  kind: "contained" | "model-error" | "truncated" | "failure";
  codes: string[];
}

function expectationOf(source: string, file: string): Expectation {
  const match = /^(?:#|\/\/) expect: (contained|model-error|truncated|failure)(?: (\S+))?/.exec(source);
  if (!match) throw new Error(`${file}: first line must be "# expect: ..." or "// expect: ..."`);
  return { kind: match[1] as Expectation["kind"], codes: match[2] ? match[2].split("|") : [] };
}

const LANGUAGES = [
  {
    folder: "python",
    language: Language.LANGUAGE_PYTHON,
    canarySetup: "canary_value = 1234\nopen('/tmp/toolplane-secret-canary', 'w').write('secret')",
    canaryCheck: "print(canary_value)",
    followUp: "print(6 * 7)",
    pollutionCheck: "print('clean')",
  },
  {
    folder: "javascript",
    language: Language.LANGUAGE_JAVASCRIPT,
    canarySetup: "globalThis.canaryValue = 1234;",
    canaryCheck: "console.log(canaryValue)",
    followUp: "console.log(6 * 7)",
    pollutionCheck: "console.log(typeof ({}).toolplanePolluted === 'undefined' ? 'clean' : 'POLLUTED')",
  },
];

describe("hostile code corpus", () => {
  let service: SpawnedService;
  let client: CodeServiceClient;
  let listener: Server;
  let listenerPort = 0;
  let connections = 0;

  before(async () => {
    service = await spawnService("code");
    client = createClient(CodeServiceClient, service.address);
    listener = createServer((socket) => {
      connections += 1;
      socket.destroy();
    });
    await new Promise<void>((resolve) => listener.listen(0, "127.0.0.1", resolve));
    const address = listener.address();
    listenerPort = typeof address === "object" && address ? address.port : 0;
  });
  after(async () => {
    client?.close();
    listener?.close();
    await service?.stop();
  });

  const createSession = async (language: Language) =>
    (
      await invoke(client, client.createSession, {
        language,
        images: [],
        limits: { timeoutMs: TIMEOUT_MS, memoryMb: 0, maxOutputBytes: 64 * 1024, maxImages: 4 },
        idleTtlSeconds: 120,
        label: "security",
      })
    ).sessionId;
  const execute = (sessionId: string, code: string) =>
    invoke(client, client.execute, { sessionId, code, timeoutMs: 0, fixIndentation: false });
  const close = (sessionId: string) => invoke(client, client.closeSession, { sessionId }).catch(() => undefined);

  for (const spec of LANGUAGES) {
    describe(spec.folder, () => {
      let canary = "";
      before(async () => {
        canary = await createSession(spec.language);
        const setup = await execute(canary, spec.canarySetup);
        assert.equal(setup.error, undefined, JSON.stringify(setup.error));
      });
      after(async () => {
        await close(canary);
      });

      const folder = join(corpusRoot, spec.folder);
      for (const file of readdirSync(folder).sort()) {
        const source = readFileSync(join(folder, file), "utf8").replaceAll("{{REPO_ROOT}}", repoRoot);
        const expectation = expectationOf(source, file);

        it(`${file} is ${expectation.kind}${expectation.codes.length ? ` (${expectation.codes.join("|")})` : ""}`, async () => {
          const sessionId = await createSession(spec.language);
          let response: ExecuteResponse | undefined;
          let rpcError: ToolplaneError | undefined;
          try {
            // The listener's port is known only once it listens (before()), after the tests were declared.
            response = await execute(sessionId, source.replaceAll("{{LISTENER_PORT}}", String(listenerPort)));
          } catch (error) {
            if (!(error instanceof ToolplaneError)) throw error;
            rpcError = error;
          }
          const shown = JSON.stringify({
            stdout: response?.stdout.slice(0, 400),
            stderr: response?.stderr.slice(0, 400),
            error: response?.error,
            rpcError: rpcError && { code: rpcError.code, class: rpcError.errorClass, message: rpcError.message },
          });
          assert.doesNotMatch(response?.stdout ?? "", /ESCAPED/, shown);

          switch (expectation.kind) {
            case "contained": {
              assert.equal(rpcError, undefined, `the call must not fail as infrastructure: ${shown}`);
              if (response?.error) assert.equal(response.error.errorClass, ErrorClass.ERROR_CLASS_MODEL, shown);
              const next = await execute(sessionId, spec.followUp);
              assert.match(next.stdout, /42/, `the session must keep working: ${JSON.stringify(next)}`);
              break;
            }
            case "model-error":
              assert.equal(rpcError, undefined, `a limit hit by the code is not an infrastructure failure: ${shown}`);
              assert.ok(response?.error, `the code's failure must be reported: ${shown}`);
              assert.equal(response.error.errorClass, ErrorClass.ERROR_CLASS_MODEL, shown);
              assert.ok(expectation.codes.includes(response.error.code), `code ${response.error.code}: ${shown}`);
              break;
            case "truncated":
              assert.equal(rpcError, undefined, shown);
              assert.ok(response?.stdoutTruncated, `stdout must be marked truncated: ${shown}`);
              assert.ok((response?.stdout.length ?? 0) < 1024 * 1024, "stdout must be cut near the cap");
              break;
            case "failure":
              assert.ok(rpcError !== undefined || response?.error !== undefined, `never a silent success: ${shown}`);
              break;
          }
          await close(sessionId);

          if (file.startsWith("daemon_outlives_call")) {
            await new Promise((resolve) => setTimeout(resolve, 500));
            let survivors = "";
            try {
              survivors = execFileSync("pgrep", ["-f", "sleep 31337"], { encoding: "utf8" });
            } catch {
              survivors = "";
            }
            assert.equal(survivors.trim(), "", "no process of a closed session may survive");
          }

          const stillThere = await execute(canary, spec.canaryCheck);
          assert.match(stillThere.stdout, /1234/, `other sessions are untouched: ${JSON.stringify(stillThere)}`);
          const fresh = await createSession(spec.language);
          const clean = await execute(fresh, spec.pollutionCheck);
          assert.match(clean.stdout, /clean/, `a new session starts clean: ${JSON.stringify(clean)}`);
          await close(fresh);
          assert.equal(connections, 0, "nothing may reach the host's loopback");
        });
      }
    });
  }
});
