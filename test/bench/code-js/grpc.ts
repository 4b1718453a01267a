import {
  CodeServiceClient,
  type CreateSessionRequest,
  type CreateSessionResponse,
  type ExecuteRequest,
  type ExecuteResponse,
  Language,
} from "../../../generated/toolplane/code/v1/code.js";
import { createClient, invoke } from "../../../services/runtime/src/index.js";
import { spawnService } from "../../support/processes.js";
import { type Figures, measure, percentiles } from "./stats.js";

/** The same two measurements against the real code service over a loopback socket. */
export async function benchOverGrpc(
  iterations: number,
): Promise<{ newSession: Figures; newSessionAtService: Figures; warm: Figures; warmAtService: Figures }> {
  const service = await spawnService("code", { TOOLPLANE_CODE_POOL_SIZE: "0" });
  const client = createClient(CodeServiceClient, service.address);
  try {
    const create = () =>
      invoke<CreateSessionRequest, CreateSessionResponse>(client, client.createSession, {
        language: Language.LANGUAGE_JAVASCRIPT,
        images: [],
        limits: undefined,
        idleTtlSeconds: 0,
        label: "bench",
      });
    const execute = async (sessionId: string) => {
      const response = await invoke<ExecuteRequest, ExecuteResponse>(client, client.execute, {
        sessionId,
        code: "1+1",
        timeoutMs: 0,
        fixIndentation: false,
      });
      if (response.result !== "2") throw new Error(`unexpected result ${JSON.stringify(response)}`);
      return response.timing?.totalMs ?? Number.NaN;
    };
    const close = (sessionId: string) => invoke(client, client.closeSession, { sessionId });
    const newAtService: number[] = [];
    const newSession = await measure(iterations, async () => {
      const { sessionId, timing } = await create();
      newAtService.push((timing?.totalMs ?? Number.NaN) + (await execute(sessionId)));
      return () => close(sessionId);
    });
    const { sessionId } = await create();
    const atService: number[] = [];
    const warm = await measure(iterations, async () => {
      atService.push(await execute(sessionId));
    });
    await close(sessionId);
    return {
      newSession,
      newSessionAtService: percentiles(newAtService),
      warm,
      warmAtService: percentiles(atService),
    };
  } finally {
    client.close();
    await service.stop();
  }
}
