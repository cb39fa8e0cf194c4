/**
 * A place in a connection's reply queue. Requests and slots are queued in the same synchronous
 * step, so the n-th reply on the socket belongs to the n-th slot (FIFO matching). Position alone
 * is not trusted: every request carries an opaque token that its reply must echo, and a slot
 * checks that the reply's code can answer its request. A reply that does not fit is a desync: the
 * connection is destroyed, so that no later reply reaches the wrong caller.
 */
import type { AuthenticationError, ConnectionError, CorruptResponse, Timeout, UnsupportedServerVersion } from "../Errors.js"
import type { Reply } from "../protocol/Reply.js"

export type SlotFailure = ConnectionError | Timeout | CorruptResponse | UnsupportedServerVersion | AuthenticationError

/** The slot wants more replies. */
export const MORE = 0
/** The slot has all its replies. */
export const DONE = 1
/** The reply cannot belong to this slot: the connection lost sync. */
export const DESYNC = 2
export type ReplyFit = typeof MORE | typeof DONE | typeof DESYNC

export interface Slot {
  /** Receives the next reply and says whether it fits. */
  readonly onReply: (reply: Reply) => ReplyFit
  /** The connection failed (or the deadline passed) before the slot completed. */
  readonly onFailure: (error: SlotFailure) => void
  /** epoch millis after which the caller gets `Timeout` (may be `Infinity`) */
  readonly deadline: number
  readonly timeoutMillis: number
  /** the caller's key, for error context */
  readonly key: string | undefined
  /** requests the slot stands for (a batch counts its keys), for load balancing */
  readonly weight: number
  /**
   * Set when the caller stopped waiting (timed out, or failed). The slot keeps its place so that
   * its reply is read and dropped instead of reaching the next caller. `onReply` and `onFailure`
   * do not resume an abandoned slot.
   */
  abandoned: boolean
}
