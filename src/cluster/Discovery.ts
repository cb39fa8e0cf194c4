/**
 * AWS ElastiCache auto-discovery: the node list of a cluster, read from its configuration
 * endpoint.
 *
 * One exchange per poll, on its own connection (TLS and credentials as for the nodes):
 * `config get cluster`, or `get AmazonElastiCache:cluster` when the engine does not know the
 * former (it answers `ERROR`). The payload is a version line, then `host|ip|port` entries separated
 * by spaces. Clients connect to the IP and keep the host name for TLS (SNI and verification).
 *
 * The first answer is awaited (within `dialTimeout + timeout`, else `NoServers` naming the
 * endpoint). Afterwards a poll changes the ring only when the version goes up; a failed poll, or
 * one with no nodes, keeps the last good list and logs a warning.
 */
import { Duration, Effect, Schedule, type Scope } from "effect"
import { authOutcome, authRequest } from "../connection/Auth.js"
import { dial, socketError } from "../connection/Dial.js"
import {
  type AuthenticationError,
  ConnectionError,
  CorruptResponse,
  NoServers,
  Timeout,
  withoutStack,
} from "../Errors.js"
import type { AuthOptions, TlsOptions } from "../Options.js"

export interface DiscoveredNode {
  /** the node's DNS name (TLS SNI and verification) */
  readonly host: string
  /** may be empty: then the host is connected to */
  readonly ip: string
  readonly port: number
}

export interface ClusterConfig {
  readonly version: number
  readonly nodes: ReadonlyArray<DiscoveredNode>
}

export type DiscoveryFailure = ConnectionError | CorruptResponse | Timeout | AuthenticationError

/** "ip:port" (brackets for IPv6), or "host:port" without an IP. */
export const nodeAddress = (node: DiscoveredNode): string => {
  const at = node.ip !== "" ? node.ip : node.host
  return `${at.includes(":") ? `[${at}]` : at}:${node.port}`
}

/** Parses the payload of the configuration reply; a string says what is wrong. */
export const parseClusterConfig = (payload: string): ClusterConfig | string => {
  const lines = payload
    .split("\n")
    .map((l) => l.trim())
    .filter((l) => l.length > 0)
  if (lines.length < 1 || !/^\d{1,15}$/.test(lines[0]!)) return `no version line in ${JSON.stringify(payload.slice(0, 60))}`
  if (lines.length > 2) return `unexpected lines after the node list in ${JSON.stringify(payload.slice(0, 60))}`
  const nodes: Array<DiscoveredNode> = []
  for (const entry of (lines[1] ?? "").split(/\s+/).filter((e) => e.length > 0)) {
    const parts = entry.split("|")
    const port = Number(parts[2])
    if (parts.length !== 3 || (parts[0] === "" && parts[1] === "") || !/^\d+$/.test(parts[2]!) || port < 1 || port > 65535)
      return `bad node entry ${JSON.stringify(entry.slice(0, 60))}`
    nodes.push({ host: parts[0]!, ip: parts[1]!, port })
  }
  return { version: Number(lines[0]), nodes }
}

const CONFIG_GET = "config get cluster\r\n"
const LEGACY_GET = "get AmazonElastiCache:cluster\r\n"
// A configuration payload is a few hundred bytes per node; anything this large is garbage.
const MAX_REPLY = 1024 * 1024

export interface EndpointOptions {
  readonly endpoint: string
  readonly tls?: TlsOptions | undefined
  readonly auth?: AuthOptions | undefined
}

/** Asks the configuration endpoint once, within `timeoutMillis` (connecting included). */
export const fetchClusterConfig = (options: EndpointOptions, timeoutMillis: number): Effect.Effect<ClusterConfig, DiscoveryFailure> =>
  Effect.async<ClusterConfig, DiscoveryFailure>((resume) => {
    const server = options.endpoint
    const { socket, connectedEvent } = dial(server, options.tls)
    let done = false
    const finish = (result: Effect.Effect<ClusterConfig, DiscoveryFailure>) => {
      if (done) return
      done = true
      clearTimeout(timer)
      socket.destroy()
      resume(result)
    }
    const corrupt = (reason: string) => finish(Effect.fail(withoutStack(() => new CorruptResponse({ server, reason }))))
    const timer = setTimeout(() => finish(Effect.fail(withoutStack(() => new Timeout({ server, timeoutMillis })))), timeoutMillis)
    // What is being waited for: the authentication reply, then the configuration (either command).
    let phase: "auth" | "config" | "legacy" = options.auth === undefined ? "config" : "auth"
    let buffer: Buffer = Buffer.alloc(0)
    const onData = (chunk: Buffer) => {
      buffer = buffer.length === 0 ? chunk : Buffer.concat([buffer, chunk])
      if (buffer.length > MAX_REPLY) return corrupt("configuration reply too large")
      for (;;) {
        const eol = buffer.indexOf("\r\n")
        if (eol < 0) return
        const line = buffer.toString("latin1", 0, eol)
        if (phase === "auth") {
          buffer = buffer.subarray(eol + 2)
          const space = line.indexOf(" ")
          const code = space < 0 ? line : line.slice(0, space)
          const refused = authOutcome(server, options.auth!, code, space < 0 ? undefined : line.slice(space + 1))
          if (refused !== undefined) return finish(Effect.fail(refused))
          phase = "config"
          socket.write(CONFIG_GET)
          continue
        }
        if (phase === "config" && (line === "ERROR" || line.startsWith("ERROR "))) {
          // An engine older than 1.4.14: the legacy key.
          buffer = buffer.subarray(eol + 2)
          phase = "legacy"
          socket.write(LEGACY_GET)
          continue
        }
        if (phase === "legacy" && line === "END") return corrupt("the endpoint has no AmazonElastiCache:cluster key")
        const header = /^(?:CONFIG cluster|VALUE AmazonElastiCache:cluster) \d+ (\d+)$/.exec(line)
        if (header === null) return corrupt(`unexpected reply ${JSON.stringify(line.slice(0, 60))}`)
        const size = Number(header[1])
        const end = eol + 2 + size
        if (buffer.length < end + 7) return
        if (buffer.toString("latin1", end, end + 7) !== "\r\nEND\r\n") return corrupt("configuration reply not terminated by END")
        const parsed = parseClusterConfig(buffer.toString("utf8", eol + 2, end))
        return typeof parsed === "string" ? corrupt(parsed) : finish(Effect.succeed(parsed))
      }
    }
    socket.on("data", onData)
    socket.on("error", (cause) => finish(Effect.fail(socketError(server, cause))))
    socket.on("close", () =>
      finish(Effect.fail(withoutStack(() => new ConnectionError({ server, reason: "connection closed by the endpoint" })))),
    )
    socket.once(connectedEvent, () => {
      socket.write(options.auth === undefined ? CONFIG_GET : authRequest(options.auth))
    })
    return Effect.sync(() => {
      done = true
      clearTimeout(timer)
      socket.destroy()
    })
  })

export interface DiscoveryOptions extends EndpointOptions {
  readonly intervalMillis: number
  /** dialTimeout + timeout: the deadline of the first answer, and of each poll */
  readonly timeoutMillis: number
  /** a newer version with nodes: apply it */
  readonly onChange: (config: ClusterConfig) => void
}

/**
 * Waits for the first node list (retrying within `timeoutMillis`), then polls in the scope. The
 * first list is returned; later, newer ones go to `onChange`.
 */
export const startDiscovery = (options: DiscoveryOptions): Effect.Effect<ClusterConfig, NoServers, Scope.Scope> =>
  Effect.gen(function* () {
    const deadline = Date.now() + options.timeoutMillis
    const first = yield* Effect.suspend(() => fetchClusterConfig(options, Math.max(1, deadline - Date.now()))).pipe(
      Effect.filterOrFail(
        (config) => config.nodes.length > 0,
        () => withoutStack(() => new ConnectionError({ server: options.endpoint, reason: "the endpoint lists no nodes" })),
      ),
      // A refused authentication is an answer: asking again would only be refused again.
      Effect.retry({ schedule: Schedule.spaced("50 millis"), while: (e) => e._tag !== "AuthenticationError" && Date.now() < deadline }),
      Effect.mapError(
        (e) =>
          new NoServers({
            reason: `no node list from the configuration endpoint ${options.endpoint} within ${options.timeoutMillis} ms (${e.message})`,
          }),
      ),
    )
    let current = first.version
    const poll = fetchClusterConfig(options, options.timeoutMillis).pipe(
      Effect.flatMap((config) => {
        if (config.version <= current) return Effect.void
        if (config.nodes.length === 0) {
          return Effect.logWarning(
            `memcache: configuration endpoint ${options.endpoint} lists no nodes (version ${config.version}); keeping the last node list (version ${current})`,
          )
        }
        current = config.version
        options.onChange(config)
        return Effect.logInfo(
          `memcache: cluster configuration version ${config.version} from ${options.endpoint}: ${config.nodes.map(nodeAddress).join(", ")}`,
        )
      }),
      Effect.catchAll((e) =>
        Effect.logWarning(
          `memcache: discovery poll of ${options.endpoint} failed (${e.message}); keeping the last node list (version ${current})`,
        ),
      ),
    )
    yield* Effect.forkScoped(
      Effect.repeat(Effect.sleep(Duration.millis(options.intervalMillis)).pipe(Effect.zipRight(poll)), Schedule.forever),
    )
    return first
  })
