/** Turning meta replies into results and typed errors, shared by every operation. */
import { Exit } from "effect"
import {
  CacheMiss,
  CASConflict,
  ClientError,
  CorruptResponse,
  type McError,
  NotStored,
  ServerError,
  withoutStack,
} from "../Errors.js"
import type { Reply } from "../protocol/Reply.js"

export const cacheMiss = (key: string, server: string | undefined) => withoutStack(() => new CacheMiss({ key, server }))
export const notStored = (key: string, server: string | undefined) => withoutStack(() => new NotStored({ key, server }))
export const casConflict = (key: string, server: string | undefined) => withoutStack(() => new CASConflict({ key, server }))

/** A reply no operation expects in its place: server errors pass through, the rest is corrupt. */
export const unexpected = (reply: Reply, server: string, key: string): McError => {
  switch (reply.code) {
    case "SERVER_ERROR":
      return new ServerError({ server, key, reason: reply.message ?? "" })
    case "CLIENT_ERROR":
      return new ClientError({ server, key, reason: reply.message ?? "" })
    case "ERROR":
      return new ClientError({ server, key, reason: "ERROR (command not understood)" })
    default:
      return new CorruptResponse({ server, key, reason: `unexpected ${reply.code} reply` })
  }
}

/** Decodes a reply that is `HD` on success and `miss` when the key is absent (md: NF, mg: EN). */
const doneOrMiss =
  (miss: "NF" | "EN") =>
  (reply: Reply, server: string, key: string): Exit.Exit<void, CacheMiss | McError> =>
    reply.code === "HD"
      ? Exit.void
      : reply.code === miss
        ? Exit.fail(cacheMiss(key, server))
        : Exit.fail(unexpected(reply, server, key))
export const deleted = doneOrMiss("NF")
export const touched = doneOrMiss("EN")

/** Decodes the reply of an `ms`. */
export const storeReply = (reply: Reply, server: string, key: string): Exit.Exit<void, NotStored | CASConflict | CacheMiss | McError> => {
  switch (reply.code) {
    case "HD":
      return Exit.void
    case "NS":
      return Exit.fail(notStored(key, server))
    case "EX":
      return Exit.fail(casConflict(key, server))
    case "NF":
      return Exit.fail(cacheMiss(key, server))
    default:
      return Exit.fail(unexpected(reply, server, key))
  }
}
