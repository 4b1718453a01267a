import type IsolatedVM from "isolated-vm";
import {
  type ImageServiceClient,
  ImageServiceClient as ImageServiceClientCtor,
} from "../../../../generated/toolplane/image/v1/image.js";
import {
  createClient,
  InvalidArgumentError,
  type SecurityConfig,
  UnavailableError,
} from "../../../runtime/src/index.js";
import type { InputImage, ResolvedLimits } from "../backend.js";
import { EngineSession, notRunning } from "./engine-session.js";
import type { HostReply } from "./host-images.js";
import { ivm } from "./ivm.js";
import { installPrelude, type PreludeConfig, type PreludeImage } from "./prelude.js";

export { EngineSession } from "./engine-session.js";

/** Smallest memoryLimit isolated-vm accepts. */
export const MIN_MEMORY_MB = 8;

export interface EngineOptions {
  /** Ready isolates kept warm (each with a context and the prelude installed). */
  poolSize: number;
  /** memoryLimit of pooled isolates: the service's default memory_mb. Other limits get a fresh isolate. */
  poolMemoryMb: number;
  /** host:port of the image service for image.process(); absent = the helper throws a ReferenceError. */
  imageServiceAddress?: string;
  /** Credentials for the image service, as the process's entry point read them; default: none. */
  imageServiceSecurity?: SecurityConfig;
  /** Name of the setting that enables image.process, quoted in the error when it is absent. */
  imageServiceHint: string;
  /** Encoded bytes one display() call may pass. */
  maxDisplayBytes: number;
  /** Decoded pixels one display() image may have (decompression-bomb guard). */
  maxDisplayPixels: number;
  /**
   * Extra wall time after a cell's timeout before the isolate is disposed from
   * outside (the cell is then stuck where isolated-vm's own timeout cannot reach it).
   */
  hardKillGraceMs: number;
  /**
   * isolated-vm lost control of an isolate (a V8 heap OOM it could not turn into
   * a clean disposal). The process must exit; `session` is the session whose code did it.
   */
  onCatastrophicError(session: EngineSession | undefined, message: string): void;
}

/** One isolate with a context whose prelude is installed; host callbacks route to whichever session owns it. */
export interface ReadyIsolate {
  isolate: IsolatedVM.Isolate;
  context: IsolatedVM.Context;
  render: IsolatedVM.Reference<(value: unknown) => string | undefined>;
  slot: { owner?: EngineSession };
  memoryMb: number;
  /** Sessions this isolate has served before the current context. */
  served: number;
}

/** An isolate is given fresh contexts this many times, then disposed (bounds whatever its heap accumulates). */
const MAX_SESSIONS_PER_ISOLATE = 64;

/**
 * Isolates are the expensive part (1-2 ms of the event loop to construct, ~1 ms
 * to dispose) and carry the memory limit, so they are created ahead of demand,
 * each with a context and the prelude ready (built on the isolate's own thread
 * with the async API). A session takes one; when it ends cleanly, its context
 * is released and the isolate gets a fresh context for the pool (at most
 * MAX_SESSIONS_PER_ISOLATE times). An isolate that hit its memory limit, was
 * killed, or has a non-default limit is disposed instead.
 */
export class IsolateEngine {
  private readonly idle: ReadyIsolate[] = [];
  private refilling = false;
  /** Isolates getting a fresh context after their session ended; they count as pooled. */
  private recycling = 0;
  private stopped = false;
  private readonly sessions = new Set<EngineSession>();
  private readonly imageClient: ImageServiceClient | undefined;
  // Function#toString drops the module's strictness: the directive makes the prelude strict again.
  private readonly preludeSource = `"use strict"; return (${installPrelude.toString()})($0, $1, $2, $3, $4)`;

  constructor(readonly options: EngineOptions) {
    if (options.poolMemoryMb < MIN_MEMORY_MB) {
      throw new InvalidArgumentError(
        `pool memory ${options.poolMemoryMb} MB is below the minimum of ${MIN_MEMORY_MB} MB`,
      );
    }
    this.imageClient =
      options.imageServiceAddress === undefined
        ? undefined
        : createClient(ImageServiceClientCtor, options.imageServiceAddress, options.imageServiceSecurity);
  }

  async start(): Promise<void> {
    this.stopped = false;
    while (this.idle.length < this.options.poolSize) this.idle.push(await this.prepare(this.options.poolMemoryMb, []));
  }

  async createSession(images: InputImage[], limits: ResolvedLimits): Promise<EngineSession> {
    if (this.stopped) throw new UnavailableError("the JavaScript backend is stopped");
    if (limits.memoryMb < MIN_MEMORY_MB) {
      throw new InvalidArgumentError(
        `memory_mb=${limits.memoryMb} is below the JavaScript minimum of ${MIN_MEMORY_MB}`,
      );
    }
    const session = new EngineSession(this, images, limits);
    await session.open();
    this.sessions.add(session);
    return session;
  }

  async stop(): Promise<void> {
    this.stopped = true;
    await Promise.allSettled([...this.sessions].map((session) => session.close()));
    for (const ready of this.idle.splice(0)) dispose(ready);
    this.imageClient?.close();
  }

  /** @internal A ready isolate for a session (from the pool when its memory limit matches). */
  async take(owner: EngineSession, images: ReadonlyArray<InputImage>, memoryMb: number): Promise<ReadyIsolate> {
    let ready: ReadyIsolate;
    const pooled = memoryMb === this.options.poolMemoryMb ? this.idle.pop() : undefined;
    if (pooled !== undefined && !pooled.isolate.isDisposed) {
      ready = pooled;
      if (images.length > 0) await bindImages(ready, images);
    } else {
      ready = await this.prepare(memoryMb, images);
    }
    ready.slot.owner = owner;
    // Below half the pool, new isolates are built; above it, ending sessions are expected to top it up.
    if (this.idle.length + this.recycling < Math.ceil(this.options.poolSize / 2)) this.refillSoon();
    return ready;
  }

  /** @internal An ended session's isolate: back to the pool with a fresh context, or disposed. */
  recycle(ready: ReadyIsolate): void {
    ready.slot.owner = undefined;
    const reusable =
      !this.stopped &&
      !ready.isolate.isDisposed &&
      ready.memoryMb === this.options.poolMemoryMb &&
      ready.served + 1 < MAX_SESSIONS_PER_ISOLATE &&
      this.idle.length + this.recycling < this.options.poolSize;
    if (!reusable) {
      disposeLater(ready);
      return;
    }
    ready.render.release();
    ready.context.release();
    this.recycling += 1;
    this.prepareContext(ready.isolate, ready.slot, ready.memoryMb, [], ready.served + 1)
      .then(
        (fresh) => (this.stopped ? dispose(fresh) : this.idle.push(fresh)),
        () => dispose(ready),
      )
      // Only disposing an isolate that is already gone can fail here; it is out of the pool either way.
      .catch(() => undefined)
      .finally(() => {
        this.recycling -= 1;
      });
  }

  /** @internal */
  forget(session: EngineSession): void {
    this.sessions.delete(session);
  }

  /** One isolate at a time, after the current call has had its turn. */
  private refillSoon(): void {
    if (this.refilling || this.stopped) return;
    this.refilling = true;
    const step = async () => {
      while (!this.stopped && this.idle.length + this.recycling < this.options.poolSize) {
        const ready = await this.prepare(this.options.poolMemoryMb, []);
        if (this.stopped) dispose(ready);
        else this.idle.push(ready);
      }
    };
    setImmediate(() =>
      step()
        // A failed refill (the process short of memory) is tried again by the next take; sessions then
        // build their own isolate meanwhile.
        .catch(() => undefined)
        .finally(() => {
          this.refilling = false;
        }),
    );
  }

  private prepare(memoryMb: number, images: ReadonlyArray<InputImage>): Promise<ReadyIsolate> {
    const slot: { owner?: EngineSession } = {};
    const isolate = new ivm.Isolate({
      memoryLimit: memoryMb,
      onCatastrophicError: (message) => this.options.onCatastrophicError(slot.owner, message),
    });
    return this.prepareContext(isolate, slot, memoryMb, images, 0);
  }

  private async prepareContext(
    isolate: IsolatedVM.Isolate,
    slot: { owner?: EngineSession },
    memoryMb: number,
    images: ReadonlyArray<InputImage>,
    served: number,
  ): Promise<ReadyIsolate> {
    const context = await isolate.createContext();
    const config: PreludeConfig = {
      maxPieceChars: 8 * 1024 * 1024,
      flushChars: 16 * 1024,
      maxRenderChars: 64 * 1024,
      imageServiceHint: this.options.imageServiceHint,
    };
    const write = new ivm.Callback((stream: number, text: string) => slot.owner?.hostWrite(stream, text) ?? false);
    // applySyncPromise takes no result options: replies go back as an explicit copy.
    const display = new ivm.Reference(async (bytes: Uint8Array, mime: string) =>
      copyReply(slot.owner ? await slot.owner.hostDisplay(bytes, mime) : notRunning()),
    );
    const processImage =
      this.imageClient === undefined
        ? undefined
        : new ivm.Reference(async (bytes: Uint8Array, mime: string, operations: string, output: string) =>
            copyReply(slot.owner ? await slot.owner.hostProcess(bytes, mime, operations, output) : notRunning()),
          );
    const render = (await context.evalClosure(
      this.preludeSource,
      [write, display, processImage, copyOf(images), new ivm.ExternalCopy(config).copyInto()],
      { result: { reference: true } },
    )) as IsolatedVM.Reference<(value: unknown) => string | undefined>;
    // The first cell of a context pays for lazy compilation of the prelude and the first run of an isolate
    // (~2 ms): a warm-up cell on the same path, while the isolate waits in the pool, takes that off the session.
    const warmUp = await isolate.compileScript("[1, 'a', { b: 2 }]", { filename: "warm-up.js" });
    const value = await warmUp.run(context, { timeout: 1000, reference: true, release: true });
    await render.apply(undefined, [value.derefInto({ release: true })], { timeout: 1000, result: { copy: true } });
    return { isolate, context, render, slot, memoryMb, served };
  }

  /** @internal */
  get imageService(): ImageServiceClient | undefined {
    return this.imageClient;
  }
}

function copyOf(images: ReadonlyArray<InputImage>): IsolatedVM.Copy<PreludeImage[]> {
  const plain: PreludeImage[] = images.map((image) => ({
    name: image.name,
    bytes: new Uint8Array(image.data),
    width: image.width,
    height: image.height,
    mime: image.mimeType,
  }));
  return new ivm.ExternalCopy(plain).copyInto({ release: true });
}

export async function bindImages(ready: ReadyIsolate, images: ReadonlyArray<InputImage>): Promise<void> {
  await ready.context.evalClosure(
    `for (const image of $0) Object.defineProperty(globalThis, image.name, {
       value: { bytes: image.bytes, width: image.width, height: image.height, mime: image.mime },
       writable: true, configurable: true, enumerable: false });`,
    [copyOf(images)],
  );
}

export function dispose(ready: ReadyIsolate): void {
  ready.slot.owner = undefined;
  if (!ready.isolate.isDisposed) ready.isolate.dispose();
}

/** Disposal costs ~1 ms of the event loop: done after the current reply went out. */
export function disposeLater(ready: ReadyIsolate): void {
  ready.slot.owner = undefined;
  setImmediate(() => dispose(ready));
}

function copyReply(reply: HostReply): IsolatedVM.Copy<HostReply> {
  return new ivm.ExternalCopy(reply).copyInto({ release: true });
}
