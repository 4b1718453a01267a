/**
 * What the gateway tells the outside world about each tool call, and how it asks
 * for recorded results. The gateway calls these hooks; the runtime provides the
 * NATS/JetStream-backed implementations (events.ts, recorder.ts). Hooks must not
 * throw and must not block the call path.
 */

export type CallStatus = "OK" | "MODEL_ERROR" | "INFRA_ERROR";

export interface ToolCallEvent {
  phase: "started" | "finished";
  callId: string;
  trajectoryId: string;
  rolloutId: string;
  step: number;
  tool: string;
  /** sha256 (hex) of the canonical JSON of the arguments (keys sorted). */
  argumentsDigest: string;
  /** sha256 of every input image the call used (session images it referenced, inline images). */
  inputImages: string[];
  /** sha256 of every image the call returned (finished only). */
  outputImages: string[];
  /** Epoch ms when the gateway accepted the call. */
  startedAtMs: number;
  /** finished only. */
  status?: CallStatus;
  errorClass?: "MODEL" | "INFRASTRUCTURE";
  errorCode?: string;
  errorMessage?: string;
  queueMs?: number;
  durationMs?: number;
}

export interface ToolCallObserver {
  onEvent(event: ToolCallEvent): void;
}

/** Identifies a tool result independently of the trajectory that produced it. */
export interface RecordKey {
  tool: string;
  /** Canonical JSON of the arguments (keys sorted). */
  canonicalArguments: string;
  /** sha256 of the input images, in the order the tool consumed them. */
  inputImages: string[];
  /** Bumped when a tool's output for the same input may change. */
  toolVersion: string;
}

export type RecorderMode = "off" | "record" | "replay";

/**
 * Stores and serves encoded tool results (the gateway's ToolResult message bytes).
 * In replay mode a miss is an error the gateway reports as INFRASTRUCTURE
 * (FAILED_PRECONDITION): the evaluation is not deterministic without it.
 */
export interface ResultRecorder {
  readonly mode: RecorderMode;
  lookup(key: RecordKey): Promise<Uint8Array | undefined>;
  record(key: RecordKey, result: Uint8Array): Promise<void>;
}
