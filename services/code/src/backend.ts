import type { Language } from "../../../generated/toolplane/code/v1/code.js";

/**
 * The contract between the session manager (languages-agnostic: ids, TTL, max
 * count, gRPC mapping) and one language's sandbox. Each language implements
 * LanguageBackend; the server picks one by the request's language.
 */

/** An input image bound to a variable name in the session (e.g. image_1). */
export interface InputImage {
  name: string;
  data: Buffer;
  mimeType: string;
  width: number;
  height: number;
}

/** Limits after the service's defaults and maxima were applied. */
export interface ResolvedLimits {
  timeoutMs: number;
  memoryMb: number;
  maxOutputBytes: number;
  maxImages: number;
}

/** A failure of the model's code (never an infrastructure failure: those are thrown as ToolplaneErrors). */
export interface CodeFailure {
  /** "ABORTED" raised, "INVALID_ARGUMENT" did not compile, "DEADLINE_EXCEEDED" timed out, "RESOURCE_EXHAUSTED" hit a limit. */
  code: "ABORTED" | "INVALID_ARGUMENT" | "DEADLINE_EXCEEDED" | "RESOURCE_EXHAUSTED";
  type: string;
  message: string;
  traceback: string;
}

export interface ExecutionOutcome {
  stdout: string;
  stderr: string;
  stdoutTruncated: boolean;
  stderrTruncated: boolean;
  /** Rendering of the last expression's value, when the cell ended with one. */
  result?: string;
  /** PNG bytes, in the order the code produced them. */
  images: Buffer[];
  imagesTruncated: boolean;
  failure?: CodeFailure;
  /** Set when the session's state was restored from its checkpoint before this cell ran. */
  restored?: Restored;
}

/** Why a session's interpreter was gone when a call came (see python/checkpoints.ts). */
export type RestoreReason = "kernel_lost" | "hibernated" | "moved";

export interface Restored {
  reason: RestoreReason;
  /** Names that could not be saved (open files, sockets, generators, ...), sorted. */
  lostNames: string[];
  restoreMs: number;
  /** False when the checkpoint could not be loaded: the interpreter is fresh. */
  complete: boolean;
  /** Why it could not be loaded. */
  problem?: string;
}

export interface ExecuteOptions {
  timeoutMs: number;
  /**
   * Time after timeoutMs the backend may take to stop a cell that ignores its timeout (interrupt, then kill).
   * The session manager sets it so that timeoutMs plus this grace ends before the caller's deadline: a runaway
   * cell is then always the model's timeout. Absent = the backend's configured grace.
   */
  killGraceMs?: number;
  /** Aborted when the caller goes away; the execution must be stopped. */
  signal: AbortSignal;
  /**
   * Re-indent mis-indented model code first (ExecuteRequest.fix_indentation), or always
   * as the DeepEyesV2 reference does ("reference"); languages without the notion ignore it.
   */
  fixIndentation?: IndentationFix;
}

export type IndentationFix = boolean | "reference";

/** Per-session choices of the caller. */
export interface CreateOptions {
  /** Seeds the session's random streams (Python: `random` and numpy's global generator); absent = fresh entropy. */
  seed?: number;
  /** The session's id and what a replica needs to recreate it from a checkpoint (backends that checkpoint). */
  identity?: { sessionId: string; idleTtlMs: number; label: string };
}

export interface LanguageSession {
  execute(code: string, options: ExecuteOptions): Promise<ExecutionOutcome>;
  /** Drops all state and re-binds the input images. */
  reset(): Promise<void>;
  /**
   * Frees everything the session holds; idempotent. `keepState`: the service is stopping, not the session
   * ending: what lets another replica continue it (its checkpoint) stays.
   */
  close(options?: { keepState?: boolean }): Promise<void>;
}

export interface LanguageBackend {
  readonly language: Language;
  /** Time after a cell's timeout this backend takes at most to stop it (interrupt, then kill). */
  readonly killGraceMs?: number;
  /** Pre-starts pools; called once before the server accepts calls. */
  start(): Promise<void>;
  createSession(images: InputImage[], limits: ResolvedLimits, options?: CreateOptions): Promise<LanguageSession>;
  /** Closes every session and pool. */
  stop(): Promise<void>;
  /**
   * A session this replica does not hold, recreated from its checkpoint in the shared store (it lived on
   * another replica, or this one restarted); undefined when the store has none. Its first call restores it.
   */
  recover?(sessionId: string): Promise<RecoveredSession | undefined>;
  /** Warm sandboxes ready, being started, and session creations waiting for one; absent when not kept here. */
  poolStats?(): PoolStats;
}

export interface RecoveredSession {
  session: LanguageSession;
  limits: ResolvedLimits;
  idleTtlMs: number;
  label: string;
}

export interface PoolStats {
  idle: number;
  starting: number;
  waiting: number;
}
