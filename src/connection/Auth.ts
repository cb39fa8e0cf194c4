/**
 * memcached's text-protocol authentication (`memcached -Y <authfile>`): the first request of a
 * connection is `set <any> 0 0 <n>\r\n<user> <pass>\r\n`, answered by `STORED`. Until then the
 * server answers every other request with `CLIENT_ERROR unauthenticated`; a wrong password gets
 * `CLIENT_ERROR authentication failure`.
 *
 * The password is read out of its `Redacted` only here, into the bytes of the request; no error or
 * log line carries it.
 */
import { Redacted } from "effect"
import { AuthenticationError, withoutStack } from "../Errors.js"
import type { AuthOptions } from "../Options.js"
import type { Reply } from "../protocol/Reply.js"
import { DESYNC, DONE, type Slot, type SlotFailure } from "./Slot.js"

/** The authentication request (the key, flags and TTL are ignored by the server). */
export const authRequest = (auth: AuthOptions): string => {
  const token = `${auth.username} ${Redacted.value(auth.password)}`
  return `set auth 0 0 ${Buffer.byteLength(token)}\r\n${token}\r\n`
}

const refused = (server: string, reason: string) => withoutStack(() => new AuthenticationError({ server, reason }))

/** The outcome of the authentication reply: undefined when accepted. */
export const authOutcome = (server: string, auth: AuthOptions, code: string, message: string | undefined): AuthenticationError | undefined => {
  if (code === "STORED") return undefined
  const said = code === "CLIENT_ERROR" ? (message ?? "") : code
  return refused(server, `the server refused user ${JSON.stringify(auth.username)} (${said})`)
}

/**
 * A reply that says the server wants authentication the client did not send (the answer to the
 * connection's first request, when the client has no `auth`).
 */
export const unauthenticated = (server: string, reply: Reply): AuthenticationError | undefined =>
  reply.code === "CLIENT_ERROR" && reply.message?.startsWith("unauthenticated") === true
    ? refused(server, "the server requires authentication and the client has no auth option")
    : undefined

/**
 * The slot of the authentication request, first in a connection's queue. `done` gets undefined
 * when the server accepted the credentials, else the error to close the connection with.
 */
export const authSlot = (
  server: string,
  auth: AuthOptions,
  timeoutMillis: number,
  done: (error: AuthenticationError | undefined) => void,
): Slot => ({
  onReply: (reply) => {
    if (reply.code !== "STORED" && reply.code !== "CLIENT_ERROR") return DESYNC
    done(authOutcome(server, auth, reply.code, reply.message))
    return DONE
  },
  onFailure: (_: SlotFailure) => {},
  deadline: Date.now() + timeoutMillis,
  timeoutMillis,
  key: undefined,
  weight: 1,
  abandoned: false,
})
