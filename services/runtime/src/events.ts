import { type JetStreamClient, type JetStreamManager, jetstream, jetstreamManager } from "@nats-io/jetstream";
import { connect, type NatsConnection, nanos } from "@nats-io/transport-node";
import { z } from "zod";
import type { ToolCallEvent, ToolCallObserver } from "./call-events.js";
import { boolean, positiveInt } from "./config.js";
import type { Logger } from "./logger.js";
import { eventsBuffered, eventsDropped } from "./metrics.js";

export const CALLS_STREAM = "TOOLPLANE_CALLS";
export const CALLS_SUBJECTS = "toolplane.calls.>";

/**
 * Event settings. TOOLPLANE_NATS_URL unset means no NATS at all: events are
 * logged (and journaled locally when recording, see recorder.ts).
 */
export const eventsConfigShape = {
  TOOLPLANE_NATS_URL: z.string().min(1).optional(),
  /** false publishes with core NATS (fire and forget) for a server without JetStream. */
  TOOLPLANE_EVENTS_JETSTREAM: boolean(true),
  /** Events kept in memory while NATS is unreachable; beyond it the oldest are dropped and counted. */
  TOOLPLANE_EVENTS_BUFFER: positiveInt(10_000),
  // Short: an ack normally takes milliseconds, a publish lost in a reconnect is retried (deduplicated by id).
  TOOLPLANE_EVENTS_PUBLISH_TIMEOUT_MS: positiveInt(1_000),
  /** Retention of the TOOLPLANE_CALLS stream: whichever limit is hit first discards the oldest events. */
  TOOLPLANE_EVENTS_MAX_AGE_S: positiveInt(7 * 24 * 3600),
  TOOLPLANE_EVENTS_MAX_BYTES: positiveInt(1024 * 1024 * 1024),
  TOOLPLANE_EVENTS_MAX_MSGS: positiveInt(10_000_000),
};

export interface StreamLimits {
  maxAgeSeconds: number;
  maxBytes: number;
  maxMessages: number;
}

/** NATS subject tokens cannot contain '.', '*', '>' or whitespace. */
export function subjectToken(value: string): string {
  const token = value.replace(/[.*>\s]/g, "_");
  return token === "" ? "_" : token;
}

export function eventSubject(event: ToolCallEvent): string {
  return `toolplane.calls.${subjectToken(event.tool)}.${event.phase}`;
}

/**
 * Creates or updates the TOOLPLANE_CALLS stream with bounded retention. An
 * existing stream keeps its other settings; the limits follow the config.
 */
export async function ensureCallsStream(jsm: JetStreamManager, limits: StreamLimits): Promise<void> {
  const bounded = {
    max_age: nanos(limits.maxAgeSeconds * 1000),
    max_bytes: limits.maxBytes,
    max_msgs: limits.maxMessages,
  };
  try {
    const info = await jsm.streams.info(CALLS_STREAM);
    const current = info.config;
    if (
      current.max_age !== bounded.max_age ||
      current.max_bytes !== bounded.max_bytes ||
      current.max_msgs !== bounded.max_msgs
    ) {
      await jsm.streams.update(CALLS_STREAM, { ...bounded });
    }
  } catch (error) {
    if (!isStreamNotFound(error)) throw error;
    await jsm.streams.add({
      name: CALLS_STREAM,
      subjects: [CALLS_SUBJECTS],
      ...bounded,
      // Re-sends after a lost ack carry the same msgID; two minutes covers any reconnect backoff.
      duplicate_window: nanos(120_000),
    });
  }
}

function isStreamNotFound(error: unknown): boolean {
  return error instanceof Error && /stream not found/i.test(error.message);
}

export interface NatsObserverOptions {
  url: string;
  jetStream: boolean;
  bufferLimit: number;
  publishTimeoutMs: number;
  limits: StreamLimits;
  logger: Logger;
}

/** A ToolCallObserver that can be stopped (flushes what it holds). */
export interface StoppableObserver extends ToolCallObserver {
  /** Publishes what is buffered until the deadline, then closes; what is left is counted as dropped. */
  stop(deadlineMs?: number): Promise<void>;
}

/**
 * Publishes every event to `toolplane.calls.<tool>.<phase>`. onEvent only
 * appends to a bounded in-memory queue; one pump publishes the queue in order,
 * one message at a time, so a failure never reorders events. With JetStream
 * each publish waits for the stream's ack and carries a msgID
 * (`<callId>.<phase>`) so a re-send after a lost ack is de-duplicated. While
 * NATS is down the queue fills; when full the oldest event is dropped and
 * counted in toolplane_events_dropped_total{reason="overflow"}.
 */
export class NatsCallObserver implements StoppableObserver {
  private readonly queue: ToolCallEvent[] = [];
  private connection: NatsConnection | undefined;
  private js: JetStreamClient | undefined;
  private pumping = false;
  /** stop() was called: new events are refused, the queue is still flushed. */
  private stopped = false;
  /** stop() is done (flushed or past its deadline): no more connection attempts. */
  private closed = false;
  private streamReady = false;
  /** Tracked from status events: core publishes are only handed over while connected. */
  private connected = false;
  private retryTimer: NodeJS.Timeout | undefined;
  private readonly connecting: Promise<void>;
  private readonly drainedWaiters: Array<() => void> = [];
  private connectTimer: NodeJS.Timeout | undefined;
  private inFlight: ToolCallEvent | undefined;
  /** Set while publishes fail, so a long outage logs one warning, not one per retry. */
  private failingSince: number | undefined;
  private wakeConnect: (() => void) | undefined;

  constructor(private readonly options: NatsObserverOptions) {
    this.connecting = this.connect();
  }

  /** Resolves once the first connection is up, or stop() gave up on it; events are accepted before that. */
  ready(): Promise<void> {
    return this.connecting;
  }

  /** Events not yet acknowledged by NATS. */
  get pending(): number {
    return this.queue.length;
  }

  onEvent(event: ToolCallEvent): void {
    if (this.stopped) {
      eventsDropped.inc({ reason: "shutdown" });
      return;
    }
    if (this.queue.length >= this.options.bufferLimit) {
      eventsDropped.inc({ reason: "overflow" });
      // The event being published may still be acknowledged, so the oldest one behind it goes.
      const firstDroppable = this.queue[0] === this.inFlight ? 1 : 0;
      if (this.queue.length <= firstDroppable) return;
      this.queue.splice(firstDroppable, 1);
    }
    this.queue.push(event);
    eventsBuffered.set(this.queue.length);
    this.kick();
  }

  async stop(deadlineMs = 5_000): Promise<void> {
    this.stopped = true;
    if (this.queue.length > 0) {
      let timer: NodeJS.Timeout | undefined;
      const deadline = new Promise<void>((resolve) => {
        timer = setTimeout(resolve, deadlineMs);
      });
      await Promise.race([new Promise<void>((resolve) => this.drainedWaiters.push(resolve)), deadline]);
      clearTimeout(timer);
    }
    this.closed = true;
    clearTimeout(this.retryTimer);
    clearTimeout(this.connectTimer);
    this.wakeConnect?.();
    if (this.queue.length > 0) {
      this.options.logger.warn({ lost: this.queue.length }, "events not published before the stop deadline");
      eventsDropped.inc({ reason: "shutdown" }, this.queue.length);
      this.queue.length = 0;
      eventsBuffered.set(0);
    }
    const connection = this.connection;
    this.connection = undefined;
    if (connection && !connection.isClosed()) await connection.close().catch(() => undefined);
  }

  private async connect(): Promise<void> {
    const { logger, url } = this.options;
    // The first connection is retried here rather than with waitOnFirstConnect so stop() can end
    // the attempts: a service starts even when NATS is not up yet, and events wait in the queue.
    let connection: NatsConnection | undefined;
    for (let attempt = 1; connection === undefined; attempt++) {
      if (this.closed) return;
      try {
        connection = await connect({
          servers: url,
          name: "toolplane-events",
          maxReconnectAttempts: -1,
          reconnectTimeWait: 500,
          pingInterval: 5_000,
        });
      } catch (error) {
        if (attempt === 1) logger.warn({ err: error, url }, "events: nats unreachable, buffering until it is up");
        await new Promise<void>((resolve) => {
          this.wakeConnect = resolve;
          this.connectTimer = setTimeout(resolve, 500);
        });
      }
    }
    if (this.closed) {
      await connection.close();
      return;
    }
    this.connection = connection;
    this.connected = true;
    this.js = jetstream(connection, { timeout: this.options.publishTimeoutMs });
    logger.info({ url, jetStream: this.options.jetStream }, "events connected to nats");
    void this.watchStatus(connection);
    this.kick();
  }

  private async watchStatus(connection: NatsConnection): Promise<void> {
    for await (const status of connection.status()) {
      if (status.type === "disconnect") {
        this.connected = false;
        this.options.logger.warn({ url: this.options.url }, "events: nats disconnected");
      }
      if (status.type === "reconnect") {
        this.connected = true;
        this.options.logger.info({ url: this.options.url }, "events: nats reconnected");
        // The server may have lost the stream (new store dir): check it again before publishing.
        this.streamReady = false;
        this.kick();
      }
    }
  }

  private kick(): void {
    if (this.pumping || this.retryTimer !== undefined || this.connection === undefined) return;
    this.pumping = true;
    void this.pump().finally(() => {
      this.pumping = false;
      // An event queued between the pump's last check and here would otherwise wait for the next one.
      if (this.queue.length > 0) this.kick();
    });
  }

  private async pump(): Promise<void> {
    const connection = this.connection;
    const js = this.js;
    if (!connection || !js) return;
    try {
      if (this.options.jetStream && !this.streamReady) {
        await ensureCallsStream(
          await jetstreamManager(connection, { timeout: this.options.publishTimeoutMs }),
          this.options.limits,
        );
        this.streamReady = true;
      }
      for (;;) {
        const event = this.queue[0];
        if (event === undefined) break;
        const payload = JSON.stringify(event);
        this.inFlight = event;
        if (this.options.jetStream) {
          await js.publish(eventSubject(event), payload, {
            msgID: `${event.callId}.${event.phase}`,
            timeout: this.options.publishTimeoutMs,
          });
        } else {
          // Core NATS: hand the message over only while connected, otherwise the client's
          // own unbounded reconnect buffer would replace our bounded one.
          if (!this.connected) throw new Error("nats is reconnecting");
          connection.publish(eventSubject(event), payload);
        }
        this.inFlight = undefined;
        this.queue.shift();
        eventsBuffered.set(this.queue.length);
      }
      if (this.failingSince !== undefined) {
        this.options.logger.info({ failedForMs: Date.now() - this.failingSince }, "events: publishing again");
        this.failingSince = undefined;
      }
      if (!this.options.jetStream) await connection.flush();
      for (const resolve of this.drainedWaiters.splice(0)) resolve();
    } catch (error) {
      this.inFlight = undefined;
      if (this.failingSince === undefined) {
        this.failingSince = Date.now();
        this.options.logger.warn(
          { err: error, pending: this.queue.length },
          "events: publish failed; buffering and retrying",
        );
      }
      this.streamReady = this.streamReady && !/no responders|stream not found/i.test(String(error));
      // Retry on a timer as well as on reconnect: an ack timeout does not always mean a disconnect.
      this.retryTimer = setTimeout(() => {
        this.retryTimer = undefined;
        this.kick();
      }, 500);
      this.retryTimer.unref();
    }
  }
}

/** No NATS configured: one log line per event, so `make run` still shows the call flow. */
export class LoggingCallObserver implements StoppableObserver {
  constructor(private readonly logger: Logger) {}

  onEvent(event: ToolCallEvent): void {
    const level = event.phase === "started" ? "debug" : "info";
    // Built only when written: the started line is off at the default level.
    if (!this.logger.isLevelEnabled(level)) return;
    this.logger[level]({ event: { ...event }, subject: eventSubject(event) }, `tool call ${event.phase}`);
  }

  async stop(): Promise<void> {}
}

/** Fans one event out to several observers; one observer's failure never reaches the others or the caller. */
export function combineObservers(observers: StoppableObserver[], logger: Logger): StoppableObserver {
  return {
    onEvent(event) {
      for (const observer of observers) {
        try {
          observer.onEvent(event);
        } catch (error) {
          logger.error({ err: error }, "tool-call observer threw");
        }
      }
    },
    async stop(deadlineMs) {
      await Promise.all(observers.map((observer) => observer.stop(deadlineMs)));
    },
  };
}

/** The observer the config asks for: NATS when TOOLPLANE_NATS_URL is set, otherwise logging. */
export function createCallObserver(
  config: z.infer<z.ZodObject<typeof eventsConfigShape>>,
  logger: Logger,
): StoppableObserver {
  if (config.TOOLPLANE_NATS_URL === undefined) return new LoggingCallObserver(logger);
  const observer = new NatsCallObserver({
    url: config.TOOLPLANE_NATS_URL,
    jetStream: config.TOOLPLANE_EVENTS_JETSTREAM,
    bufferLimit: config.TOOLPLANE_EVENTS_BUFFER,
    publishTimeoutMs: config.TOOLPLANE_EVENTS_PUBLISH_TIMEOUT_MS,
    limits: {
      maxAgeSeconds: config.TOOLPLANE_EVENTS_MAX_AGE_S,
      maxBytes: config.TOOLPLANE_EVENTS_MAX_BYTES,
      maxMessages: config.TOOLPLANE_EVENTS_MAX_MSGS,
    },
    logger,
  });
  observer.ready().catch((error: unknown) => logger.error({ err: error }, "events: cannot connect to nats"));
  return observer;
}

/**
 * Every event of one trajectory still retained in TOOLPLANE_CALLS, in stream
 * order. Subjects are per tool, not per trajectory, so this scans the stream
 * once with an ordered consumer and filters on the payload.
 */
export async function readTrajectoryFromStream(url: string, trajectoryId: string): Promise<ToolCallEvent[]> {
  const connection = await connect({ servers: url, name: "toolplane-export", maxReconnectAttempts: 0 });
  try {
    const jsm = await jetstreamManager(connection);
    const info = await jsm.streams.info(CALLS_STREAM);
    const events: ToolCallEvent[] = [];
    if (info.state.messages === 0) return events;
    const consumer = await jetstream(connection).consumers.get(CALLS_STREAM);
    const messages = await consumer.consume();
    for await (const message of messages) {
      const event = message.json<ToolCallEvent>();
      if (event.trajectoryId === trajectoryId) events.push(event);
      if (message.info.pending === 0) break;
    }
    return events;
  } finally {
    await connection.close();
  }
}
