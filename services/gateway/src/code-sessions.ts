import { Language } from "../../../generated/toolplane/code/v1/code.js";
import {
  asToolplaneError,
  errorMessage,
  FailedPreconditionError,
  type Logger,
  UnavailableError,
  unboundedScope,
} from "../../runtime/src/index.js";
import type { Backends } from "./backends.js";
import type { CodeLanguage, CodeSessionHandle, TrajectorySession } from "./sessions.js";
import type { ImageStore } from "./stores.js";
import type { ToolContext } from "./tools.js";

const CODE_LANGUAGES: Record<CodeLanguage, Language> = {
  python: Language.LANGUAGE_PYTHON,
  javascript: Language.LANGUAGE_JAVASCRIPT,
};

/** How long releasing a closed session's code session may take. */
const RELEASE_TIMEOUT_MS = 5000;
/** The code service keeps its session a little longer than the gateway, so the gateway's TTL closes it. */
const CODE_SESSION_TTL_SLACK_SECONDS = 60;

/**
 * A trajectory's code sessions on the code service: created on the first code
 * call of a language (with the session's input images bound), shared by the
 * calls that follow, closed when the trajectory closes.
 */
export class CodeSessions {
  constructor(
    private readonly backends: Backends,
    private readonly store: ImageStore,
    private readonly logger: Logger,
  ) {}

  /** The session's code session for the language, created once; a failed creation is retried by the next call. */
  get(
    session: TrajectorySession,
    language: CodeLanguage,
    call: ToolContext["call"],
    boundInputImages = session.inputImages.length,
  ): Promise<CodeSessionHandle> {
    if (session.closed) {
      return Promise.reject(new UnavailableError(`session "${session.id}" was closed while the call ran`));
    }
    let created = session.codeSessions.get(language);
    if (!created) {
      created = this.create(session, language, call, boundInputImages);
      const pending = created;
      session.codeSessions.set(language, pending);
      pending.catch(() => {
        if (session.codeSessions.get(language) === pending) session.codeSessions.delete(language);
      });
    }
    return created;
  }

  /** Forgets a code session the code service no longer knows. */
  drop(session: TrajectorySession, language: CodeLanguage): void {
    session.codeSessions.delete(language);
  }

  /** Closes every code session of a removed trajectory. Never throws. */
  async release(session: TrajectorySession): Promise<void> {
    const pending = [...session.codeSessions.values()];
    session.codeSessions.clear();
    await Promise.all(pending.map((created) => this.close(session, created)));
  }

  private async close(session: TrajectorySession, created: Promise<CodeSessionHandle>): Promise<void> {
    let handle: CodeSessionHandle;
    try {
      handle = await created;
    } catch {
      return;
    }
    try {
      await this.backends.code.closeSession(
        { sessionId: handle.id },
        unboundedScope(Date.now() + RELEASE_TIMEOUT_MS),
        handle.replica,
      );
    } catch (error) {
      // The code service reclaims it with its own TTL; the gateway session is gone either way.
      this.logger.warn(
        { sessionId: session.id, codeSessionId: handle.id, err: errorMessage(error) },
        "could not close code session",
      );
    }
  }

  private async create(
    session: TrajectorySession,
    language: CodeLanguage,
    call: ToolContext["call"],
    boundInputImages: number,
  ): Promise<CodeSessionHandle> {
    const images = await Promise.all(
      session.inputImages.slice(0, boundInputImages).map(async (sha256, index) => {
        const image = await this.store.require(sha256, `image_${index + 1}`);
        return {
          name: `image_${index + 1}`,
          image: { data: image.data, mimeType: image.mimeType, width: image.width, height: image.height },
        };
      }),
    );
    const response = await call("code", async (scope) => {
      try {
        return await this.backends.code.createSession(
          {
            language: CODE_LANGUAGES[language],
            images,
            limits: undefined,
            idleTtlSeconds: Math.ceil(session.idleTtlMs / 1000) + CODE_SESSION_TTL_SLACK_SECONDS,
            label: session.id,
            ...(session.seed === undefined ? {} : { seed: session.seed }),
          },
          scope,
        );
      } catch (error) {
        // The gateway builds this request from the session, never from the model's
        // text: whatever the code service objects to is not the model's fault.
        const failure = asToolplaneError(error);
        if (failure.errorClass === "MODEL") {
          throw new FailedPreconditionError(`code service refused the session: ${failure.message}`, { cause: error });
        }
        throw failure;
      }
    });
    // A session closed meanwhile still had this creation in its map: release() awaits and closes it.
    return {
      id: response.sessionId,
      limits: response.limits,
      ...(response.replica === undefined ? {} : { replica: response.replica }),
    };
  }
}
