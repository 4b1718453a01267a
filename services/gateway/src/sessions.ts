import { randomUUID } from "node:crypto";
import type { Limits } from "../../../generated/toolplane/code/v1/code.js";
import { InvalidArgumentError, NotFoundError } from "../../runtime/src/index.js";
import type { SessionStore } from "./stores.js";

export type CodeLanguage = "python" | "javascript";

/** A session of the code service, created on a trajectory's first code call. */
export interface CodeSessionHandle {
  id: string;
  limits: Limits | undefined;
  /** The code replica holding the session (code-replicas.ts); every call of the session goes there. */
  replica?: string;
}

/** One trajectory: its input images, the images it produced, its code sessions. */
export interface TrajectorySession {
  readonly id: string;
  readonly rolloutId: string;
  /** sha256 of image_1..image_n. */
  readonly inputImages: readonly string[];
  /** Every image the session holds a store reference to (inputs and tool outputs), once each. */
  readonly heldImages: Set<string>;
  /** Pending or created code sessions by language; a failed creation is removed so the next call retries. */
  readonly codeSessions: Map<CodeLanguage, Promise<CodeSessionHandle>>;
  /** Digests of the cells run so far per language: a recorded code result depends on the state they built. */
  readonly codeHistory: Map<CodeLanguage, string[]>;
  /** Images shown to the model so far (the per-trajectory cap). */
  imagesShown: number;
  readonly idleTtlMs: number;
  /** The caller's seed for the trajectory's code sessions; undefined = fresh entropy each. */
  readonly seed: number | undefined;
  lastUsedMs: number;
  activeCalls: number;
  closed: boolean;
}

export interface NewSession {
  rolloutId: string;
  /** Empty = generated. */
  trajectoryId: string;
  inputImages: string[];
  idleTtlMs: number;
  seed?: number;
}

/**
 * Open trajectory sessions in this process's memory, indexed by id and by
 * rollout. Knows nothing of what a session holds: the gateway releases that
 * when a session leaves here.
 */
export class MemorySessionStore implements SessionStore {
  private readonly sessions = new Map<string, TrajectorySession>();
  private readonly byRollout = new Map<string, Set<string>>();

  constructor(private readonly now: () => number = Date.now) {}

  get count(): number {
    return this.sessions.size;
  }

  create(request: NewSession): TrajectorySession {
    const id = request.trajectoryId || randomUUID();
    if (this.sessions.has(id)) {
      throw new InvalidArgumentError(`trajectory_id "${id}" is already open; close it first or use another id`);
    }
    const session: TrajectorySession = {
      id,
      rolloutId: request.rolloutId,
      inputImages: [...request.inputImages],
      heldImages: new Set(request.inputImages),
      codeSessions: new Map(),
      codeHistory: new Map(),
      imagesShown: 0,
      idleTtlMs: request.idleTtlMs,
      seed: request.seed,
      lastUsedMs: this.now(),
      activeCalls: 0,
      closed: false,
    };
    this.sessions.set(id, session);
    if (request.rolloutId) {
      let members = this.byRollout.get(request.rolloutId);
      if (!members) {
        members = new Set();
        this.byRollout.set(request.rolloutId, members);
      }
      members.add(id);
    }
    return session;
  }

  /**
   * The open session, marked as used. An unknown id is NOT_FOUND of class
   * INFRASTRUCTURE: the model cannot cause it, the trainer's bookkeeping (or an
   * expired TTL) did.
   */
  get(id: string, field = "session_id"): TrajectorySession {
    if (!id) throw new InvalidArgumentError(`${field} is required`, { errorClass: "INFRASTRUCTURE" });
    const session = this.sessions.get(id);
    if (!session) {
      throw new NotFoundError(`${field}: no open session "${id}" (closed, expired or never created)`, {
        errorClass: "INFRASTRUCTURE",
      });
    }
    session.lastUsedMs = this.now();
    return session;
  }

  /** Marks the session as used now. */
  touch(session: TrajectorySession): void {
    session.lastUsedMs = this.now();
  }

  /** Removes the session; returns it for cleanup, or undefined when it was not open. */
  remove(id: string): TrajectorySession | undefined {
    const session = this.sessions.get(id);
    if (!session) return undefined;
    this.sessions.delete(id);
    session.closed = true;
    const members = this.byRollout.get(session.rolloutId);
    members?.delete(id);
    if (members?.size === 0) this.byRollout.delete(session.rolloutId);
    return session;
  }

  /** Removes every session of the rollout. */
  removeRollout(rolloutId: string): TrajectorySession[] {
    const ids = [...(this.byRollout.get(rolloutId) ?? [])];
    return ids.map((id) => this.remove(id)).filter((session) => session !== undefined);
  }

  /** Removes and returns the sessions idle longer than their TTL (never one with a call running). */
  removeExpired(): TrajectorySession[] {
    const now = this.now();
    const expired: TrajectorySession[] = [];
    for (const session of this.sessions.values()) {
      if (session.activeCalls === 0 && now - session.lastUsedMs >= session.idleTtlMs) expired.push(session);
    }
    for (const session of expired) this.remove(session.id);
    return expired;
  }

  removeAll(): TrajectorySession[] {
    return [...this.sessions.keys()].map((id) => this.remove(id)).filter((session) => session !== undefined);
  }
}
