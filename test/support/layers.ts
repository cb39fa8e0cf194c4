/** The layers the shared behaviour suites run against: real memcached (plain and TLS) and the in-memory engine. */
import { Layer } from "effect"
import { inject } from "vitest"
import { McClient } from "../../src/index.js"
import type { McClientOptions } from "../../src/index.js"

export interface Target {
  readonly name: string
  readonly layer: (options?: Omit<McClientOptions, "servers">) => Layer.Layer<McClient, unknown>
}

export const targets: ReadonlyArray<Target> = [
  {
    name: "memcached",
    layer: (options = {}) => McClient.layer({ ...options, servers: [inject("memcached")] }),
  },
  {
    // The whole behaviour suite over TLS (memcached -Z), verifying the test CA's certificate.
    name: "memcached-tls",
    layer: (options = {}) =>
      McClient.layer({ ...options, servers: [inject("memcachedTls")], tls: { ca: inject("memcachedTlsCa") } }),
  },
  {
    name: "memory",
    layer: (options = {}) => McClient.layerMemory(options),
  },
]

let counter = 0
/** A key no other test uses. */
export const uniqueKey = (name: string) => `${name}:${process.pid}:${Date.now().toString(36)}:${counter++}`

export const text = (v: Uint8Array) => Buffer.from(v).toString("utf8")
