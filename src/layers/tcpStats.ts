/**
 * memcached's `stats` command over its own short-lived connection.
 *
 * `stats` is a text command whose reply (`STAT <name> <value>` lines, then `END`) the pipelined
 * connections' meta reply parser does not know. Teaching that parser a second reply grammar would
 * put a branch on the hot path for a command run by hand or by a dashboard, so `stats` opens a
 * socket, sends one line, reads to `END` and closes.
 */
import * as net from "node:net"
import { Effect } from "effect"
import { ConnectionError, ServerError, Timeout } from "../Errors.js"

const connectOptions = (server: string): net.NetConnectOpts => {
  if (server.startsWith("/")) return { path: server }
  const colon = server.lastIndexOf(":")
  return { host: server.slice(0, colon).replace(/^\[(.*)\]$/, "$1"), port: Number(server.slice(colon + 1)) }
}

/** Parses a complete `stats` reply; `undefined` while `END` has not arrived. */
export const parseStats = (text: string): Map<string, string> | ServerError | undefined => {
  const stats = new Map<string, string>()
  let at = 0
  while (true) {
    const end = text.indexOf("\r\n", at)
    if (end < 0) return undefined
    const line = text.slice(at, end)
    at = end + 2
    if (line === "END") return stats
    if (line.startsWith("STAT ")) {
      const space = line.indexOf(" ", 5)
      if (space < 0) stats.set(line.slice(5), "")
      else stats.set(line.slice(5, space), line.slice(space + 1))
      continue
    }
    return new ServerError({ server: "", reason: `unexpected stats line ${JSON.stringify(line)}` })
  }
}

/** Runs `stats` on `server` within `timeoutMillis` (connecting included). */
export const fetchStats = (
  server: string,
  timeoutMillis: number,
): Effect.Effect<ReadonlyMap<string, string>, ConnectionError | Timeout | ServerError> =>
  Effect.async((resume) => {
    let text = ""
    let done = false
    const socket = net.createConnection(connectOptions(server))
    const finish = (result: Effect.Effect<ReadonlyMap<string, string>, ConnectionError | Timeout | ServerError>) => {
      if (done) return
      done = true
      clearTimeout(timer)
      socket.destroy()
      resume(result)
    }
    const timer = setTimeout(
      () => finish(Effect.fail(new Timeout({ server, timeoutMillis, key: undefined }))),
      Math.min(2 ** 31 - 1, timeoutMillis),
    )
    socket.setEncoding("latin1")
    socket.on("data", (chunk: string) => {
      text += chunk
      const parsed = parseStats(text)
      if (parsed === undefined) return
      finish(parsed instanceof ServerError ? Effect.fail(new ServerError({ server, reason: parsed.reason })) : Effect.succeed(parsed))
    })
    socket.on("error", (e) => finish(Effect.fail(new ConnectionError({ server, reason: e.message }))))
    socket.on("close", () => finish(Effect.fail(new ConnectionError({ server, reason: "connection closed before END" }))))
    socket.write("stats\r\n")
    return Effect.sync(() => finish(Effect.fail(new ConnectionError({ server, reason: "interrupted" }))))
  })
