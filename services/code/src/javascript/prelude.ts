/**
 * The code that runs INSIDE each isolate context before the model's first cell:
 * console, display(), image.process(), the input images and the renderer of the
 * last expression's value.
 *
 * `installPrelude` is serialised with Function#toString and evaluated in the
 * context, so it must be self-contained: no imports, no references to anything
 * outside its own body. The engine evaluates it inside strict code, so that
 * stack inspection tricks (Function#caller, CallSite#getThis) cannot reach the
 * host references it closes over; those references are never stored on any
 * reachable object.
 */

/** The host side of a Reference as seen from inside the isolate (only the method we call). */
interface HostReference {
  applySyncPromise(receiver: undefined, args: unknown[], options: { arguments: { copy: true } }): unknown;
}

/** What the host returns from display/process calls: a plain object, so the error type survives the copy. */
type HostReply =
  | { ok: true; bytes?: Uint8Array; width?: number; height?: number; mime?: string }
  | { ok: false; type: string; message: string };

export interface PreludeImage {
  name: string;
  bytes: Uint8Array;
  width: number;
  height: number;
  mime: string;
}

export interface PreludeConfig {
  /** Longest string one console call sends to the host; the host cuts at the byte cap and marks it. */
  maxPieceChars: number;
  /** Buffered console output that triggers a send to the host. */
  flushChars: number;
  /** Longest rendering of a value. */
  maxRenderChars: number;
  /** Name of the config variable to set to enable image.process, for the error message when it is absent. */
  imageServiceHint: string;
}

/**
 * Installs the sandbox globals and returns the renderer of last-expression values
 * (the host keeps a Reference to it). `write` is a synchronous host callback;
 * `display` and `processImage` are host References called with
 * applySyncPromise so model code stays synchronous (no top-level await needed).
 */
export function installPrelude(
  write: (stream: number, text: string) => boolean,
  display: HostReference,
  processImage: HostReference | undefined,
  images: PreludeImage[],
  config: PreludeConfig,
): (value: unknown) => string | undefined {
  const global = globalThis as Record<string, unknown>;
  const { stringify } = JSON;
  const { keys, getPrototypeOf, defineProperty, is, freeze } = Object;
  const { isArray } = Array;
  const IDENTIFIER = /^[A-Za-z_$][\w$]*$/;
  const MAX_ITEMS = 100;
  const MAX_TYPED_ITEMS = 32;
  const MAX_DEPTH = 4;

  function constructorName(value: object): string {
    try {
      const proto = getPrototypeOf(value) as { constructor?: { name?: unknown } } | null;
      if (proto === null) return "[Object: null prototype]";
      const name = proto.constructor?.name;
      return typeof name === "string" ? name : "";
    } catch {
      return "";
    }
  }

  function renderKey(key: string): string {
    return IDENTIFIER.test(key) ? key : stringify(key);
  }

  function renderItems(items: string[], open: string, close: string): string {
    return items.length === 0 ? `${open}${close}` : `${open} ${items.join(", ")} ${close}`;
  }

  function render(value: unknown, depth: number, seen: Set<object>): string {
    switch (typeof value) {
      case "string":
        return stringify(value);
      case "number":
        return is(value, -0) ? "-0" : String(value);
      case "bigint":
        return `${value}n`;
      case "boolean":
      case "undefined":
        return String(value);
      case "symbol":
        return value.toString();
      case "function": {
        const source = Function.prototype.toString.call(value);
        const name = (value as { name?: unknown }).name;
        const label = typeof name === "string" && name !== "" ? name : "(anonymous)";
        return source.startsWith("class") ? `[class ${label}]` : `[Function: ${label}]`;
      }
    }
    if (value === null) return "null";
    const object = value as object;
    if (seen.has(object)) return "[Circular]";
    if (object instanceof Date) return Number.isNaN(object.getTime()) ? "Invalid Date" : object.toISOString();
    if (object instanceof RegExp) return String(object);
    if (object instanceof Error) return object.stack ?? `${object.name}: ${object.message}`;
    if (ArrayBuffer.isView(object) && !(object instanceof DataView)) {
      const typed = object as unknown as ArrayLike<number | bigint>;
      const shown: string[] = [];
      for (let index = 0; index < typed.length && index < MAX_TYPED_ITEMS; index++) {
        shown.push(render(typed[index], depth + 1, seen));
      }
      if (typed.length > MAX_TYPED_ITEMS) shown.push(`... ${typed.length - MAX_TYPED_ITEMS} more items`);
      return `${constructorName(object)}(${typed.length}) ${renderItems(shown, "[", "]")}`;
    }
    if (object instanceof ArrayBuffer) return `ArrayBuffer { byteLength: ${object.byteLength} }`;
    if (object instanceof Promise) return "Promise {}";
    if (depth >= MAX_DEPTH) return isArray(object) ? "[Array]" : `[${constructorName(object) || "Object"}]`;
    seen.add(object);
    try {
      if (isArray(object)) {
        const shown: string[] = [];
        for (let index = 0; index < object.length && index < MAX_ITEMS; index++) {
          shown.push(index in object ? render(object[index], depth + 1, seen) : "<empty>");
        }
        if (object.length > MAX_ITEMS) shown.push(`... ${object.length - MAX_ITEMS} more items`);
        return renderItems(shown, "[", "]");
      }
      if (object instanceof Map) {
        const shown: string[] = [];
        for (const [key, entry] of object) {
          if (shown.length === MAX_ITEMS) {
            shown.push(`... ${object.size - MAX_ITEMS} more items`);
            break;
          }
          shown.push(`${render(key, depth + 1, seen)} => ${render(entry, depth + 1, seen)}`);
        }
        return `Map(${object.size}) ${renderItems(shown, "{", "}")}`;
      }
      if (object instanceof Set) {
        const shown: string[] = [];
        for (const entry of object) {
          if (shown.length === MAX_ITEMS) {
            shown.push(`... ${object.size - MAX_ITEMS} more items`);
            break;
          }
          shown.push(render(entry, depth + 1, seen));
        }
        return `Set(${object.size}) ${renderItems(shown, "{", "}")}`;
      }
      const names = keys(object);
      const shown: string[] = [];
      for (const key of names) {
        if (shown.length === MAX_ITEMS) {
          shown.push(`... ${names.length - MAX_ITEMS} more properties`);
          break;
        }
        shown.push(`${renderKey(key)}: ${render((object as Record<string, unknown>)[key], depth + 1, seen)}`);
      }
      const name = constructorName(object);
      const body = renderItems(shown, "{", "}");
      return name === "Object" || name === "" ? body : `${name} ${body}`;
    } finally {
      seen.delete(object);
    }
  }

  function renderSafely(value: unknown): string {
    let text: string;
    try {
      text = render(value, 0, new Set());
    } catch (error) {
      text = `[value could not be rendered: ${error instanceof Error ? error.message : String(error)}]`;
    }
    return text.length > config.maxRenderChars ? `${text.slice(0, config.maxRenderChars)}…` : text;
  }

  function formatArguments(args: unknown[]): string {
    let line = "";
    for (let index = 0; index < args.length; index++) {
      const arg = args[index];
      if (index > 0) line += " ";
      line += typeof arg === "string" ? arg : renderSafely(arg);
      if (line.length > config.maxPieceChars) break;
    }
    return `${line.length > config.maxPieceChars ? line.slice(0, config.maxPieceChars) : line}\n`;
  }

  // Output is buffered here and sent in chunks: one host call per console call costs ~40 µs, which
  // makes a print loop of 100k lines take seconds. The host answers false once a stream is at its cap.
  const pending = ["", ""];
  const full = [false, false];
  let pendingChars = 0;
  function flush(): void {
    for (const stream of [0, 1]) {
      const text = pending[stream] ?? "";
      if (text === "") continue;
      pending[stream] = "";
      if (!write(stream + 1, text)) full[stream] = true;
    }
    pendingChars = 0;
  }
  function emit(stream: 0 | 1, args: unknown[]): void {
    if (full[stream]) return;
    const line = formatArguments(args);
    pending[stream] += line;
    pendingChars += line.length;
    if (pendingChars >= config.flushChars) flush();
  }
  const toStdout = (...args: unknown[]): void => emit(0, args);
  const toStderr = (...args: unknown[]): void => emit(1, args);
  const console = freeze({
    log: toStdout,
    info: toStdout,
    debug: toStdout,
    dir: toStdout,
    error: toStderr,
    warn: toStderr,
    trace: toStderr,
  });

  const errorTypes = new Map<string, ErrorConstructor>([
    ["TypeError", TypeError],
    ["RangeError", RangeError],
    ["ReferenceError", ReferenceError],
  ]);

  /** Error classes named by the host (ImageProcessError...), with the name on the prototype so stacks show it. */
  function errorType(name: string): ErrorConstructor {
    let type = errorTypes.get(name);
    if (type === undefined) {
      const named = class extends Error {};
      defineProperty(named.prototype, "name", { value: name, writable: true, configurable: true });
      type = named as ErrorConstructor;
      errorTypes.set(name, type);
    }
    return type;
  }

  function failWith(reply: HostReply): never {
    if (reply.ok) throw new Error("internal: failWith called with a success");
    const Type = errorType(reply.type);
    throw new Type(reply.message);
  }

  /** Accepts an image object {bytes, mime} or raw bytes (any typed array or ArrayBuffer). */
  function bytesOf(input: unknown, caller: string): { bytes: Uint8Array; mime: string | undefined } {
    if (input instanceof Uint8Array) return { bytes: input, mime: undefined };
    if (input instanceof ArrayBuffer) return { bytes: new Uint8Array(input), mime: undefined };
    if (ArrayBuffer.isView(input)) {
      return { bytes: new Uint8Array(input.buffer, input.byteOffset, input.byteLength), mime: undefined };
    }
    if (typeof input === "object" && input !== null && "bytes" in input) {
      const inner = bytesOf((input as { bytes: unknown }).bytes, caller);
      const mime = (input as { mime?: unknown }).mime;
      return { bytes: inner.bytes, mime: typeof mime === "string" ? mime : undefined };
    }
    throw new TypeError(`${caller}: expected an image object {bytes, width, height, mime} or a Uint8Array`);
  }

  function displayImage(input: unknown, mime?: unknown): void {
    if (mime !== undefined && typeof mime !== "string") {
      throw new TypeError("display(bytes, mime): mime must be a string such as 'image/png'");
    }
    const source = bytesOf(input, "display(bytes, mime)");
    const reply = display.applySyncPromise(undefined, [source.bytes, mime ?? source.mime ?? ""], {
      arguments: { copy: true },
    }) as HostReply;
    if (!reply.ok) failWith(reply);
  }

  function toImage(reply: HostReply): { bytes: Uint8Array; width: number; height: number; mime: string } {
    if (!reply.ok) failWith(reply);
    return {
      bytes: reply.bytes ?? new Uint8Array(0),
      width: reply.width ?? 0,
      height: reply.height ?? 0,
      mime: reply.mime ?? "",
    };
  }

  function processWithService(input: unknown, operations?: unknown, output?: unknown) {
    if (processImage === undefined) {
      throw new ReferenceError(
        `image.process is not available: this code service has no image service configured (${config.imageServiceHint})`,
      );
    }
    const source = bytesOf(input, "image.process(image, operations)");
    let operationsJson: string;
    let outputJson: string;
    try {
      operationsJson = stringify(operations ?? []);
      outputJson = stringify(output ?? {});
    } catch (error) {
      throw new TypeError(
        `image.process(image, operations): operations must be plain JSON data (${error instanceof Error ? error.message : String(error)})`,
      );
    }
    return toImage(
      processImage.applySyncPromise(undefined, [source.bytes, source.mime ?? "", operationsJson, outputJson], {
        arguments: { copy: true },
      }) as HostReply,
    );
  }

  function defineGlobal(name: string, value: unknown): void {
    // Configurable and writable, so that a cell may still declare `let image_1 = ...` or reassign it.
    defineProperty(global, name, { value, writable: true, configurable: true, enumerable: false });
  }

  // Allocations isolated-vm does not count against the memory limit: WebAssembly memories and resizable
  // (maxByteLength) buffers are committed outside its allocator, so a cell could fill the host's RAM.
  delete global.WebAssembly;
  for (const Original of [ArrayBuffer, SharedArrayBuffer] as const) {
    const name = Original.name;
    const guarded: unknown = new Proxy(Original, {
      construct(target, args: unknown[], newTarget: (...a: unknown[]) => object) {
        const options = args[1];
        if (
          typeof options === "object" &&
          options !== null &&
          (options as { maxByteLength?: unknown }).maxByteLength !== undefined
        ) {
          throw new TypeError(`${name}: resizable buffers (maxByteLength) are not available in this sandbox`);
        }
        // Only the length is passed on: a getter on the options cannot change its answer afterwards.
        return Reflect.construct(target, [args[0]], newTarget === guarded ? target : newTarget);
      },
    });
    // Reached through any buffer's .constructor otherwise.
    defineProperty(Original.prototype, "constructor", { value: guarded, writable: true, configurable: true });
    defineGlobal(name, guarded);
  }

  defineGlobal("console", console);
  defineGlobal("display", displayImage);
  defineGlobal("image", freeze({ process: processWithService }));
  for (const input of images) {
    defineGlobal(input.name, { bytes: input.bytes, width: input.width, height: input.height, mime: input.mime });
  }

  /** Called by the host after every cell: renders its value, then sends what output is still buffered. */
  return (value: unknown): string | undefined => {
    try {
      return value === undefined ? undefined : renderSafely(value);
    } finally {
      flush();
      full[0] = false;
      full[1] = false;
    }
  };
}
