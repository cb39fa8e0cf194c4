/**
 * Slots that hand a connection's replies to a waiting `Effect.async` callback.
 *
 * Each operation is one `Effect.async`: the slot carries its `resume`, and the reply is decoded
 * synchronously in the socket's data callback, so the fiber resumes once with the final result.
 *
 * Interruption needs no canceler: the slot keeps its place in the connection's queue whatever
 * happens to the caller, so the reply is still consumed in order; a resume after interruption is
 * ignored by Effect. Registering a canceler would wrap every operation in onInterrupt/onExit steps
 * (measured: half of the per-get allocation).
 */
import { Effect, Exit } from "effect"
import { ClientError, ServerError } from "../Errors.js"
import { type Reply, replyBit } from "../protocol/Reply.js"
import { acceptedReplies, lineParts, type MetaRequest } from "../protocol/Request.js"
import type { Connection } from "./Connection.js"
import { DESYNC, DONE, MORE, type ReplyFit, type Slot, type SlotFailure } from "./Slot.js"

type Resume<A, E> = (effect: Effect.Effect<A, E>) => void

/** Error replies carry no opaque token: they answer whatever request is at the head. */
const isErrorReply = (reply: Reply): boolean => reply.code === "CLIENT_ERROR" || reply.code === "SERVER_ERROR"

/**
 * What a single request's slot needs from the operation that sent it: the reply codes that can
 * answer it, how to decode the reply, and what a failure of the connection turns into. One object
 * per call (the transport's), read by every run of the call's effect: a slot adds no closures.
 */
export interface RequestSpec<A, E> {
  /** the reply codes that can answer the request (`acceptedReplies`) */
  readonly accepts: number
  /** the caller's key, for error context */
  readonly key: string
  readonly timeoutMillis: number
  decode(reply: Reply, server: string): Effect.Effect<A, E>
  /** the connection failed under the request; `deadline` is the call's */
  recover(error: SlotFailure, deadline: number): Effect.Effect<A, E>
}

/** One request, one reply. */
export class SingleReplySlot<A, E> implements Slot {
  abandoned = false
  /** the opaque token the reply must echo; set by the connection when it queues the request */
  opaque = 0
  constructor(
    private readonly resume: Resume<A, E>,
    private readonly spec: RequestSpec<A, E>,
    private readonly server: string,
    readonly deadline: number,
  ) {}

  get key(): string {
    return this.spec.key
  }

  get timeoutMillis(): number {
    return this.spec.timeoutMillis
  }

  get weight(): number {
    return 1
  }

  onReply(reply: Reply): ReplyFit {
    if (reply.opaque === this.opaque ? (this.spec.accepts & replyBit[reply.code]) === 0 : !(reply.opaque === undefined && isErrorReply(reply)))
      return DESYNC
    if (!this.abandoned) {
      this.abandoned = true
      this.resume(this.spec.decode(reply, this.server))
    }
    return DONE
  }

  onFailure(error: SlotFailure): void {
    if (!this.abandoned) {
      this.abandoned = true
      this.resume(this.spec.recover(error, this.deadline))
    }
  }
}

/** What one server answered to a batch of gets. */
export interface BatchResult {
  /** the hit of each key, by its index in the batch; `undefined`: no hit. Emptied once read. */
  readonly hits: Array<Reply | undefined>
  /**
   * An error reply inside the batch. Error replies carry no opaque token, so the keys without a
   * hit may have failed rather than missed.
   */
  readonly error: ClientError | ServerError | undefined
}

/**
 * A pipelined batch of quiet gets (`Connection.sendBatch`). Replies must come in key order with the
 * opaque tokens the connection gave them, and (text keys) under the key that was asked; the
 * batch ends at the reply to its closing request.
 */
export class BatchSlot implements Slot {
  abandoned = false
  /** the opaque token of the first key; set by the connection when it queues the batch */
  firstOpaque = 0
  private readonly hits: Array<Reply | undefined>
  private last = -1
  private error: ClientError | ServerError | undefined = undefined
  constructor(
    private readonly resume: Resume<BatchResult, SlotFailure>,
    private readonly server: string,
    /** the keys as sent */
    readonly keys: ReadonlyArray<string>,
    /** the replies carry their key (`k`), and it must be the one asked */
    private readonly checkKeys: boolean,
    readonly deadline: number,
    readonly timeoutMillis: number,
  ) {
    this.hits = new Array(keys.length)
  }

  get key(): undefined {
    return undefined
  }

  get weight(): number {
    return this.keys.length
  }

  onReply(reply: Reply): ReplyFit {
    if (reply.opaque === undefined) {
      if (!isErrorReply(reply)) return DESYNC
      this.error ??=
        reply.code === "SERVER_ERROR"
          ? new ServerError({ server: this.server, reason: reply.message ?? "" })
          : new ClientError({ server: this.server, reason: reply.message ?? "" })
      return MORE
    }
    if (typeof reply.opaque !== "number") return DESYNC
    const index = reply.opaque - this.firstOpaque
    const n = this.keys.length
    if (!(index > this.last && index <= n)) return DESYNC
    this.last = index
    if (index === n) {
      if (reply.code !== "HD" && reply.code !== "EN") return DESYNC
      if (!this.abandoned) {
        this.abandoned = true
        this.resume(Exit.succeed({ hits: this.hits, error: this.error }))
      }
      return DONE
    }
    if (this.checkKeys && reply.key !== this.keys[index]) return DESYNC
    // A quiet get answers a hit (VA) and nothing on a miss; EN is tolerated (servers or proxies
    // that ignore `q`).
    if (reply.code === "VA") {
      if (!this.abandoned) this.hits[index] = reply
    } else if (reply.code !== "EN") return DESYNC
    return MORE
  }

  onFailure(error: SlotFailure): void {
    if (!this.abandoned) {
      this.abandoned = true
      this.resume(Exit.fail(error))
    }
  }
}

/** One request on a given connection, answered with its raw reply (cold paths: repairs). */
export const requestOn = (conn: Connection, req: MetaRequest, timeoutMillis: number): Effect.Effect<Reply, SlotFailure> => {
  const spec: RequestSpec<Reply, SlotFailure> = {
    accepts: acceptedReplies(req),
    key: req.command === "mn" ? "" : req.key,
    timeoutMillis,
    decode: Exit.succeed,
    recover: Exit.fail,
  }
  return Effect.async<Reply, SlotFailure>((resume) => {
    conn.send(lineParts(req), req.command === "ms" ? req.value : undefined, new SingleReplySlot(resume, spec, conn.server, Date.now() + timeoutMillis))
  })
}
