/**
 * Starts memcached processes on free loopback ports, for tests, the tour and the benchmark.
 */
import { type ChildProcess, spawn } from "node:child_process"
import * as net from "node:net"

export interface MemcachedProcess {
  readonly port: number
  readonly address: string
  readonly process: ChildProcess
  /** SIGTERM (or the given signal) and wait for exit */
  readonly stop: (signal?: NodeJS.Signals) => Promise<void>
}

/** A port nobody listens on right now (the OS picks it). */
export const freePort = (): Promise<number> =>
  new Promise((resolve, reject) => {
    const srv = net.createServer()
    srv.unref()
    srv.on("error", reject)
    srv.listen(0, "127.0.0.1", () => {
      const { port } = srv.address() as net.AddressInfo
      srv.close(() => resolve(port))
    })
  })

const canConnect = (target: net.NetConnectOpts): Promise<boolean> =>
  new Promise((resolve) => {
    const s = net.createConnection(target)
    s.once("connect", () => {
      s.destroy()
      resolve(true)
    })
    s.once("error", () => resolve(false))
  })

/**
 * The memcached binary the tests run: `MEMCACHED_BIN` (a path, e.g. the build of
 * scripts/memcached-source.sh), or `memcached` on PATH.
 */
export const memcachedBin = (): string => {
  const bin = process.env["MEMCACHED_BIN"]
  return bin !== undefined && bin !== "" ? bin : "memcached"
}

/**
 * Starts `<memcachedBin()> -l 127.0.0.1 -U 0 -p <port>` (or `-s <socketPath>`) and waits until it
 * accepts connections. `host` listens elsewhere, e.g. "::1" (the address is then "[::1]:<port>").
 * `extraArgs` go to memcached (e.g. ["-t", "1"], ["-I", "2m"]).
 */
export const startMemcached = async (
  options: {
    readonly port?: number
    readonly socketPath?: string
    readonly host?: string
    readonly extraArgs?: ReadonlyArray<string>
  } = {},
): Promise<MemcachedProcess> => {
  const port = options.socketPath === undefined ? (options.port ?? (await freePort())) : 0
  const host = options.host ?? "127.0.0.1"
  const listen = options.socketPath === undefined ? ["-l", host, "-p", String(port)] : ["-s", options.socketPath]
  const args = [...listen, "-U", "0", "-m", "64", ...(options.extraArgs ?? [])]
  if (process.getuid?.() === 0) args.push("-u", "root")
  const child = spawn(memcachedBin(), args, { stdio: ["ignore", "ignore", "pipe"] })
  let stderr = ""
  let spawnError: Error | undefined
  child.once("error", (e) => (spawnError = e))
  child.stderr?.on("data", (d) => (stderr += String(d)))
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()))
  for (let i = 0; i < 200; i++) {
    if (spawnError !== undefined) throw new Error(`cannot run ${memcachedBin()} (MEMCACHED_BIN): ${spawnError.message}`)
    if (child.exitCode !== null) throw new Error(`${memcachedBin()} exited at start (port ${port}): ${stderr}`)
    if (await canConnect(options.socketPath === undefined ? { host, port } : { path: options.socketPath })) {
      return {
        port,
        address: options.socketPath ?? (host.includes(":") ? `[${host}]:${port}` : `${host}:${port}`),
        process: child,
        stop: async (signal = "SIGTERM") => {
          if (child.exitCode === null && child.signalCode === null) child.kill(signal)
          await exited
        },
      }
    }
    await new Promise((r) => setTimeout(r, 25))
  }
  child.kill("SIGKILL")
  throw new Error(`memcached did not start on port ${port}: ${stderr}`)
}
