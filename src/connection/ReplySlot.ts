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
import { type Effect, Exit } from "effect"
import type { Reply } from "../protocol/Reply.js"
import type { Slot, SlotFailure } from "./Slot.js"

type Resume<A, E> = (effect: Effect.Effect<A, E>) => void

/** One request, one reply. */
export class SingleReplySlot<A, E> implements Slot {
  abandoned = false
  constructor(
    private readonly resume: Resume<A, E>,
    private readonly decode: (reply: Reply, server: string, key: string) => Effect.Effect<A, E>,
    private readonly recover: (error: SlotFailure) => Effect.Effect<A, E>,
    private readonly server: string,
    readonly key: string,
    readonly deadline: number,
    readonly timeoutMillis: number,
  ) {}

  onReply(reply: Reply): boolean {
    if (!this.abandoned) {
      this.abandoned = true
      this.resume(this.decode(reply, this.server, this.key))
    }
    return true
  }

  onFailure(error: SlotFailure): void {
    if (!this.abandoned) {
      this.abandoned = true
      this.resume(this.recover(error))
    }
  }
}

/** A pipelined batch of quiet requests closed by `mn`: collects every reply until `MN`. */
export class BatchSlot implements Slot {
  abandoned = false
  private readonly replies: Array<Reply> = []
  constructor(
    private readonly resume: Resume<ReadonlyArray<Reply>, SlotFailure>,
    readonly deadline: number,
    readonly timeoutMillis: number,
  ) {}

  get key(): undefined {
    return undefined
  }

  onReply(reply: Reply): boolean {
    if (reply.code === "MN") {
      if (!this.abandoned) {
        this.abandoned = true
        this.resume(Exit.succeed(this.replies))
      }
      return true
    }
    if (!this.abandoned) this.replies.push(reply)
    return false
  }

  onFailure(error: SlotFailure): void {
    if (!this.abandoned) {
      this.abandoned = true
      this.resume(Exit.fail(error))
    }
  }
}
