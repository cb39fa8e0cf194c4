/**
 * The seam between the client's features and where requests go: TCP servers or the in-memory
 * engine. Features are written once over this interface, so the memory layer runs the same code.
 */
import { Effect } from "effect"
import type { AuthenticationError, ConnectionError, CorruptResponse, McError, Timeout, UnsupportedServerVersion } from "../Errors.js"
import type { ServerVersion } from "../connection/Version.js"
import type { GetFlags, MetaRequest } from "../protocol/Request.js"
import type { Reply } from "../protocol/Reply.js"

export interface RequestOptions {
  readonly timeoutMillis: number
  /** may be retried on a connection error (never on a server's answer) */
  readonly idempotent: boolean
  /** the caller's key, for error context */
  readonly key: string
  /** called before each retry with the error that caused it (tracing: a span event) */
  readonly onRetry?: ((error: McError) => void) | undefined
}

class Options implements RequestOptions {
  constructor(
    readonly timeoutMillis: number,
    readonly idempotent: boolean,
    readonly key: string,
  ) {}
}

/** A request's options, built by a constructor like the request itself (see `getRequest`). */
export const requestOptions = (timeoutMillis: number, idempotent: boolean, key: string): RequestOptions =>
  new Options(timeoutMillis, idempotent, key)

/** One server as the client sees it (`McClient.status`). */
export interface ServerStatus {
  readonly address: string
  readonly state: "up" | "down"
  /** epoch millis of the last change of `state` (or of the client's start) */
  readonly since: number
  /** the last error a connection to this server ended with, and when (epoch millis) */
  readonly lastError: ConnectionError | Timeout | CorruptResponse | UnsupportedServerVersion | AuthenticationError | undefined
  readonly lastErrorAt: number | undefined
  /** the version the server announced, once a connection reached it */
  readonly version: string | undefined
  /** open connections (draining and probing ones included) */
  readonly connections: number
  /** requests awaiting replies (a getMulti batch counts its keys) */
  readonly inFlight: number
}

/** memcached's `stats`: each `STAT <name> <value>` line. */
export type ServerStats = ReadonlyMap<string, string>

/** Options of `getMany`. */
export interface ManyOptions {
  readonly timeoutMillis: number
  /** when the call began (epoch ms); its deadline is `startedAt + timeoutMillis` */
  readonly startedAt: number
  readonly broadcast: boolean
  /** called before each retry round with an error that caused it */
  readonly onRetry?: ((error: McError) => void) | undefined
}

/** A key's outcome in `getMany`: its hit (`VA`), `undefined` for a miss, or why it was not read. */
export type ManyOutcome = Reply | McError | undefined

/**
 * What `getMany` answers: the i-th key's outcome, and for a hit the server that answered.
 * The reader empties `outcomes` once it has taken the hits out (see `releaseReplies`).
 */
export interface ManyResult {
  readonly outcomes: Array<ManyOutcome>
  readonly servers: ReadonlyArray<string | undefined>
}

/**
 * Empties an array of replies that have been read. A batch's arrays live as long as the batch,
 * and V8 may allocate such arrays in the old generation (allocation-site pretenuring); an old
 * array keeps every reply in it, and each reply's value, alive through young collections until
 * the next full one, so they are all copied into the old generation. Measured on getMulti of 100
 * keys: 311 B of 695 B per key promoted, and 0.98 µs of CPU per key against 0.58 when emptied.
 */
export const releaseReplies = (replies: Array<unknown>): void => {
  replies.length = 0
}

export interface Transport {
  /**
   * Sends one request to the server that owns `routingKey` and decodes its reply in the socket's
   * callback (hot paths return an `Exit`, which resumes the caller with no extra step).
   * `decode` also gets the server's address and the caller's key (`options.key`), for error
   * context, so that one decoder can serve every call.
   */
  readonly request: <A, E>(
    routingKey: string,
    request: MetaRequest,
    decode: (reply: Reply, server: string, key: string) => Effect.Effect<A, E | McError>,
    options: RequestOptions,
  ) => Effect.Effect<A, E | McError>
  /**
   * A multi-get, pipelined per server: `mg <key> <flags> q O<opaque>` per key. The i-th entry of
   * the answer is key i's hit, `undefined` for a miss, or the typed error that kept the key from
   * being read. It never fails as a whole, and never reports a failure as a miss.
   * With `broadcast`, each key goes to every server `pickServer` lists for it, and the most
   * preferred server's hit wins; otherwise to the first healthy one.
   */
  readonly getMany: (
    routingKeys: ReadonlyArray<string>,
    wires: ReadonlyArray<string>,
    flags: GetFlags,
    options: ManyOptions,
  ) => Effect.Effect<ManyResult>
  /** The version of the server that owns `routingKey`. */
  readonly version: (routingKey: string) => Effect.Effect<ServerVersion, McError>
  /** Every server's state, connections and load (no I/O). */
  readonly status: Effect.Effect<ReadonlyArray<ServerStatus>>
  /**
   * memcached's `stats` on each server (`server`: only that one, one of the client's servers),
   * keyed by server address. Off the request path: its own short-lived connection.
   */
  readonly stats: (server: string | undefined, timeoutMillis: number) => Effect.Effect<ReadonlyMap<string, ServerStats>, McError>
}

/**
 * What a transport reports about its servers, for metrics (cold paths only: retries, failed
 * connections, health changes).
 */
export interface TransportEvents {
  readonly onRetry: (error: McError) => void
  readonly onConnectionFailed: (server: string, error: ConnectionError | Timeout | CorruptResponse | UnsupportedServerVersion | AuthenticationError) => void
  readonly onServerDown: (server: string) => void
  readonly onServerUp: (server: string) => void
  readonly onFailoverLogFull: (primary: string) => void
}

/** The register step of a request's `Effect.async`: it sends the request, and the reply resumes it. */
export type Register<A, E> = (resume: (outcome: Effect.Effect<A, E>) => void) => void | Effect.Effect<void>

// Set only while `captureRegister` builds an effect: the last register step `registered` made.
let capturing = false
interface Captured {
  readonly effect: unknown
  readonly register: Register<any, any>
}
let captured: Captured | undefined

/**
 * A request as `Effect.async(register)`. Code outside Effect (the Promise client) can get its
 * register step through `captureRegister` and send the request without starting a fiber, through
 * the same routing, slots and decoding. Only the transport's own request effect has one: an
 * operation that is more than one request, or is wrapped (spans, metrics), is an effect without it
 * and runs on the runtime. Nothing is attached to the effect (an extra property on every request
 * effect cost an allocation per call); outside a capture this is one boolean check.
 */
export const registered = <A, E>(register: Register<A, E>): Effect.Effect<A, E> => {
  const effect = Effect.async<A, E>(register)
  if (capturing) captured = { effect, register }
  return effect
}

/**
 * Builds an effect with `make` and returns it with its register step, when the effect is a
 * request's own (`registered`) and not something built around one.
 */
export const captureRegister = <A, E>(
  make: () => Effect.Effect<A, E>,
): { readonly effect: Effect.Effect<A, E>; readonly register: Register<A, E> | undefined } => {
  // Captures nest (a cache may capture while building what an outer capture asked for).
  const outer = capturing
  capturing = true
  captured = undefined
  let effect: Effect.Effect<A, E>
  try {
    effect = make()
  } finally {
    capturing = outer
  }
  // `make` sets it (TypeScript cannot see that through the call)
  const found = captured as Captured | undefined
  captured = undefined
  return { effect, register: found !== undefined && found.effect === effect ? found.register : undefined }
}

/** Offers a request effect built earlier (and its register step, if any) to a capture in progress. */
export const offerRegistered = <A, E>(effect: Effect.Effect<A, E>, register: Register<A, E> | undefined): void => {
  if (capturing && register !== undefined) captured = { effect, register }
}
