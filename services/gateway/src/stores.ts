import type { CodeLanguage, CodeSessionHandle, NewSession, TrajectorySession } from "./sessions.js";

/**
 * The gateway's two stores, behind small interfaces (as microservices-demo's
 * cart store): the in-memory implementations serve one replica; a NATS
 * JetStream KV / Object Store implementation, for sessions servable by any
 * replica, plugs in here. Every method may answer with a promise, and the
 * gateway awaits every answer, so a remote implementation needs no change
 * elsewhere.
 */
export type MaybePromise<T> = T | Promise<T>;

export interface StoredImage {
  /** Lowercase hex sha256 of `data`. */
  sha256: string;
  data: Buffer;
  mimeType: string;
  width: number;
  height: number;
}

/**
 * Content-addressed images, each kept once under its sha256. A session takes
 * one reference (retain) per image it holds; an image no session holds may be
 * evicted, one that is held never is (the store refuses new images instead).
 */
export interface ImageStore {
  /** Decodes the header, stores the bytes and, when `hold`, takes a reference; a bad image is INVALID_ARGUMENT naming `field`. */
  put(data: Buffer, options?: { hold?: boolean; field?: string }): Promise<StoredImage>;
  /** Stores an image whose metadata is already known (tool outputs). */
  putProbed(image: Omit<StoredImage, "sha256">, options?: { hold?: boolean }): MaybePromise<StoredImage>;
  /** The image, or undefined when unknown or evicted. */
  get(sha256: string): MaybePromise<StoredImage | undefined>;
  /** Like get, but a miss is NOT_FOUND naming the field (and a malformed sha256 INVALID_ARGUMENT). */
  require(sha256: string, field: string): MaybePromise<StoredImage>;
  /** Takes one session reference. */
  retain(sha256: string): MaybePromise<void>;
  /** Drops one session reference; the image becomes evictable at zero. */
  release(sha256: string): MaybePromise<void>;
}

/** Open trajectory sessions, by id and by rollout. Knows nothing of what a session holds. */
export interface SessionStore {
  /** A new open session; a trajectory id already open is INVALID_ARGUMENT. */
  create(request: NewSession): MaybePromise<TrajectorySession>;
  /** The open session, marked as used; an unknown id is NOT_FOUND (INFRASTRUCTURE) naming `field`. */
  get(id: string, field?: string): MaybePromise<TrajectorySession>;
  /** Marks the session as used now (the idle TTL counts from here). */
  touch(session: TrajectorySession): MaybePromise<void>;
  /** Removes the session and returns it for cleanup, or undefined when it was not open. */
  remove(id: string): MaybePromise<TrajectorySession | undefined>;
  removeRollout(rolloutId: string): MaybePromise<TrajectorySession[]>;
  /** Removes and returns the sessions idle past their TTL, never one with a call running. */
  removeExpired(): MaybePromise<TrajectorySession[]>;
  removeAll(): MaybePromise<TrajectorySession[]>;
}

export type { CodeLanguage, CodeSessionHandle, NewSession, TrajectorySession };
