/**
 * What the memcached the tests run (MEMCACHED_BIN, or `memcached` on PATH) is: its version, asked
 * over the wire, so tests can account for documented differences between server versions.
 */
import * as net from "node:net"
import { parseServerVersion, type ServerVersion } from "../../src/connection/Version.js"

/** One request in the text protocol over a fresh socket, read until a reply ends in `until`. */
const exchange = (server: string, request: string, until: RegExp): Promise<string> =>
  new Promise((resolve, reject) => {
    const i = server.lastIndexOf(":")
    const socket = net.createConnection({ host: server.slice(0, i), port: Number(server.slice(i + 1)) })
    let data = ""
    socket.on("data", (d) => {
      data += d.toString("latin1")
      if (until.test(data)) {
        socket.destroy()
        resolve(data)
      }
    })
    socket.on("error", reject)
    socket.write(request)
  })

const versions = new Map<string, Promise<ServerVersion>>()

/** The server's `version` (asked once per address). */
export const serverVersion = (server: string): Promise<ServerVersion> => {
  let v = versions.get(server)
  if (v === undefined) {
    v = exchange(server, "version\r\n", /\r\n$/).then((line) => {
      const parsed = parseServerVersion(line.replace(/^VERSION /, ""))
      if (parsed === undefined) throw new Error(`unexpected version reply from ${server}: ${JSON.stringify(line)}`)
      return parsed
    })
    versions.set(server, v)
  }
  return v
}

/**
 * Whether incr/decr refuses a stored number of 2^63 or more because of a '-' after the number, as
 * memcached 1.6.18 does (safe_strtoull used strchr over the rest of the item data and beyond; later
 * servers look only at the text strtoull read). Probed, not inferred from the version.
 */
export const refusesMinusAfterNumber = (server: string): Promise<boolean> => {
  const key = `probe:minus:${process.pid}:${Date.now().toString(36)}`
  const value = "9223372036854775808 -"
  return exchange(server, `ms ${key} ${value.length}\r\n${value}\r\nma ${key}\r\nmd ${key} q\r\nmn\r\n`, /MN\r\n$/).then((replies) => {
    if (!replies.startsWith("HD\r\n")) throw new Error(`probe: unexpected replies ${JSON.stringify(replies)}`)
    return /CLIENT_ERROR cannot increment or decrement non-numeric value/.test(replies)
  })
}
