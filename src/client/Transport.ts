/**
 * The seam between the client's features and where requests go: TCP servers or the in-memory
 * engine. Features are written once over this interface, so the memory layer runs the same code.
 */
import type { Effect } from "effect"
import type { McError } from "../Errors.js"
import type { ServerVersion } from "../connection/Version.js"
import type { GetFlags, MetaRequest } from "../protocol/Request.js"
import type { Reply } from "../protocol/Reply.js"

export interface RequestOptions {
  readonly timeoutMillis: number
  /** may be retried on a connection error (never on a server's answer) */
  readonly idempotent: boolean
  /** the caller's key, for error context */
  readonly key: string
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
  /** The server a key is sent to now: pickServer's first healthy choice. */
  readonly serverFor: (routingKey: string) => string | McError
  /** Every server pickServer lists for a key, primary first. */
  readonly serversFor: (routingKey: string) => ReadonlyArray<string>
  /**
   * A pipelined multi-get on one server: `mg <key> <flags> O<opaque>` per key (the flags include
   * `q`), closed by `mn`. Succeeds with every reply that came back before `MN`: quiet gets answer
   * only hits (and errors).
   */
  readonly batch: (
    server: string,
    keys: ReadonlyArray<string>,
    opaques: ReadonlyArray<string>,
    flags: GetFlags,
    timeoutMillis: number,
  ) => Effect.Effect<ReadonlyArray<Reply>, McError>
  /** The version of the server that owns `routingKey`. */
  readonly version: (routingKey: string) => Effect.Effect<ServerVersion, McError>
}
