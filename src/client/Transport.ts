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

/** A key's outcome in `getMany`. */
export type ManyOutcome = Hit | McError | undefined

/** A key's value, and the server it came from. */
export class Hit {
  constructor(
    readonly reply: Reply,
    readonly server: string,
  ) {}
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
    /** `startedAt`: when the call began (epoch ms); its deadline is `startedAt + timeoutMillis` */
    options: { readonly timeoutMillis: number; readonly startedAt: number; readonly broadcast: boolean },
  ) => Effect.Effect<ReadonlyArray<ManyOutcome>>
  /** The version of the server that owns `routingKey`. */
  readonly version: (routingKey: string) => Effect.Effect<ServerVersion, McError>
}
