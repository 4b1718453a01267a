import { Language } from "../../../../generated/toolplane/code/v1/code.js";
import type { InputImage, LanguageBackend, LanguageSession, ResolvedLimits } from "../backend.js";
import { type EngineOptions, IsolateEngine } from "./engine.js";

export type JavaScriptBackendOptions = Omit<EngineOptions, "onCatastrophicError"> & {
  onCatastrophicError?: EngineOptions["onCatastrophicError"];
};

/** Runs isolates in this process. */
class InProcessBackend implements LanguageBackend {
  readonly language = Language.LANGUAGE_JAVASCRIPT;
  private readonly engine: IsolateEngine;

  constructor(options: JavaScriptBackendOptions) {
    this.engine = new IsolateEngine({
      ...options,
      onCatastrophicError:
        options.onCatastrophicError ??
        ((_session, message) => {
          process.stderr.write(`isolated-vm lost control of an isolate (${message}); exiting\n`);
          process.abort();
        }),
    });
  }

  async start(): Promise<void> {
    this.engine.start();
  }

  async createSession(images: InputImage[], limits: ResolvedLimits): Promise<LanguageSession> {
    return this.engine.createSession(images, limits);
  }

  stop(): Promise<void> {
    return this.engine.stop();
  }
}

export function createJavaScriptBackend(options: JavaScriptBackendOptions): LanguageBackend {
  return new InProcessBackend(options);
}
