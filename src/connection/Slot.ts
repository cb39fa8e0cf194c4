/**
 * A place in a connection's reply queue. Requests and slots are queued in the same synchronous
 * step, so the n-th reply on the socket belongs to the n-th slot (FIFO matching).
 */
import type { ConnectionError, CorruptResponse, Timeout, UnsupportedServerVersion } from "../Errors.js"
import type { Reply } from "../protocol/Reply.js"

export type SlotFailure = ConnectionError | Timeout | CorruptResponse | UnsupportedServerVersion

export interface Slot {
  /** Receives the next reply. Returns true once the slot has all its replies. */
  readonly onReply: (reply: Reply) => boolean
  /** The connection failed (or the deadline passed) before the slot completed. */
  readonly onFailure: (error: SlotFailure) => void
  /** epoch millis after which the caller gets `Timeout` */
  readonly deadline: number
  readonly timeoutMillis: number
  /** the caller's key, for error context */
  readonly key: string | undefined
  /**
   * Set when the caller stopped waiting (interrupted, timed out, or failed). The slot keeps its
   * place so that its reply is read and dropped instead of reaching the next caller. `onReply`
   * and `onFailure` do not resume an abandoned slot.
   */
  abandoned: boolean
}
