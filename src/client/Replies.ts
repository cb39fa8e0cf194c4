/** Turning meta replies into results and typed errors, shared by every operation. */
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

