/**
 * `McClient`: the service tag, its accessors, and its layers (TCP, config, memory).
 */
import { Config, type ConfigError, Context, Duration, Effect, Layer, Schedule, type Schema, type Scope } from "effect"
import type { CodecOption } from "./Codec.js"
import { type ClusterConfig, nodeAddress, startDiscovery } from "./cluster/Discovery.js"
import { makeKetamaRing, parseServerSpec, type ServerSpec } from "./cluster/Ketama.js"
import type { McClientService, PartialItems } from "./client/Client.js"
import { makeClient } from "./client/Client.js"
import { gzip } from "./client/Compression.js"
import { makeKeyEncoder } from "./client/Keys.js"
import { metricEvents, recordStatus } from "./client/Metrics.js"
import { type ObserveConfig, observeClient, observeReadThrough, observeTransport } from "./client/Observability.js"
import { type GetOrSetOptions, makeGetOrSet, makeReadThroughOps } from "./client/ReadThrough.js"
import type { ServerStats, Transport } from "./client/Transport.js"
import type { DecodeError, InvalidOption, McError, NoServers } from "./Errors.js"
import { checkOptions } from "./OptionsCheck.js"
import type { Item, ItemInput } from "./Item.js"
import { makeMemoryTransport, type MemoryOptions } from "./layers/memory.js"
import { defaultReconnect, defaultRetry, makeTcpTransport } from "./layers/tcp.js"
import type {
  DeleteOptions,
  Expiration,
  GetMultiOptions,
  GetOptions,
  IncrDecrOptions,
  McClientOptions,
  ServerConfig,
  SetOptions,
  TlsOptions,
  TimeoutOption,
} from "./Options.js"

export type { McClientService, PartialItems } from "./client/Client.js"
export type { ServerStats, ServerStatus } from "./client/Transport.js"

const millis = (d: Duration.DurationInput | undefined, fallback: number) =>
  d === undefined ? fallback : Duration.toMillis(Duration.decode(d))

/** A bare number is seconds, as memcached's TTLs are; a Duration is rounded up to whole seconds. */
const seconds = (d: Duration.DurationInput | undefined, fallback: number) =>
  d === undefined ? fallback : typeof d === "number" ? d : Math.ceil(Duration.toSeconds(Duration.decode(d)))

/** What to observe; `undefined` when nothing (the client is then not wrapped at all). */
const observeConfigOf = (options: Partial<McClientOptions>): ObserveConfig | undefined => {
  const t = options.tracing
  const tracing =
    t === undefined || t === false
      ? undefined
      : t === true
        ? { keys: false, attributes: {} }
        : { keys: t.keys === true, attributes: { ...t.attributes } }
  const metrics = options.metrics === true
  return tracing === undefined && !metrics ? undefined : { tracing, metrics }
}

/**
 * The service over a transport. `scope`: the client's, where getOrSet's background refreshes run
 * (closing it interrupts them); without one they are daemon fibers.
 */
const clientOver = (base: Transport, options: Partial<McClientOptions>, scope: Scope.Scope | undefined): McClientService => {
  // Tracing and metrics wrap the transport and the operations once, here; off, nothing is wrapped.
  const observe = observeConfigOf(options)
  const transport = observe === undefined ? base : observeTransport(base, observe)
  const keys = makeKeyEncoder({ binary: options.disableBinaryEncodedKeys !== true, hash: options.keyHash ?? "sha256-128" })
  const timeoutMillis = millis(options.timeout, 200)
  const client = makeClient(transport, { keys, timeoutMillis, compression: options.compression ?? gzip })
  const ops = makeReadThroughOps(transport, keys)
  const getOrSet = makeGetOrSet(observe === undefined ? ops : observeReadThrough(ops, observe), {
    keys,
    timeoutMillis,
    background: (refresh) => Effect.asVoid(scope === undefined ? Effect.forkDaemon(refresh) : Effect.forkIn(refresh, scope)),
    tracing: observe?.tracing !== undefined,
  })
  const service: McClientService = { ...client, getOrSet }
  return observe === undefined ? service : observeClient(service, observe)
}

// The connection and in-flight gauges are sampled from `status` this often.
const GAUGE_INTERVAL = "1 second"

const tlsOf = (tls: boolean | TlsOptions | undefined): TlsOptions | undefined =>
  tls === undefined || tls === false ? undefined : tls === true ? {} : tls

/** A server's own `tls` overrides the client's: `false` turns it off, `true` takes the client's (or the defaults). */
const serverTls = (own: ServerConfig["tls"], client: TlsOptions | undefined): TlsOptions | undefined =>
  own === undefined ? client : own === false ? undefined : own === true ? (client ?? {}) : { ...client, ...own }

/**
 * Builds a client over TCP in the current scope; closing the scope closes every socket and timer.
 * Invalid options fail with `InvalidOption` (`NoServers` for an empty list) before anything opens.
 */
export const make = (given: McClientOptions): Effect.Effect<McClientService, NoServers | InvalidOption, Scope.Scope> =>
  Effect.gen(function* () {
    // A checked plain copy: nothing below reads the caller's object again.
    const options = yield* checkOptions(given, "required")
    const dialTimeoutMillis = millis(options.dialTimeout, 200)
    const clientTls = tlsOf(options.tls)
    // TLS per server, where it differs from the client's.
    const tlsByServer = new Map<string, TlsOptions | undefined>()
    const security = (server: string) => ({
      tls: server.startsWith("/") ? undefined : tlsByServer.has(server) ? tlsByServer.get(server) : clientTls,
      auth: options.auth,
    })
    // Discovered nodes: connect to the IP, verify (and SNI) the host name.
    const discoveredSpecs = (config: ClusterConfig): ReadonlyArray<ServerSpec> =>
      config.nodes.map((node) => {
        const address = parseServerSpec(nodeAddress(node)).address
        if (clientTls !== undefined) tlsByServer.set(address, { ...clientTls, servername: node.host !== "" ? node.host : clientTls.servername })
        return { address, weight: 1 }
      })
    const discovery = options.discovery
    let specs: ReadonlyArray<ServerSpec>
    let onChange: (config: ClusterConfig) => void = () => {}
    if (discovery === undefined) {
      specs = options.servers!.map((s) => {
        if (typeof s === "string") return parseServerSpec(s)
        const spec = parseServerSpec(s.weight === undefined ? { address: s.address } : { address: s.address, weight: s.weight })
        if (s.tls !== undefined) tlsByServer.set(spec.address, serverTls(s.tls, clientTls))
        return spec
      })
    } else {
      const first = yield* startDiscovery({
        endpoint: parseServerSpec(discovery.configEndpoint).address,
        tls: clientTls,
        auth: options.auth,
        intervalMillis: millis(discovery.interval, 60_000),
        // A Node timer; an infinite `timeout` leaves the dial timeout plus a timer's longest delay.
        timeoutMillis: Math.min(2 ** 31 - 1, dialTimeoutMillis + millis(options.timeout, 200)),
        onChange: (config) => onChange(config),
      })
      specs = discoveredSpecs(first)
    }
    const ring = options.pickServer === undefined ? makeKetamaRing(specs) : undefined
    const transport = yield* makeTcpTransport({
      servers: specs.map((s) => s.address),
      pickServer: options.pickServer ?? ring!.pick,
      security,
      dialTimeoutMillis,
      stallTimeoutMillis: millis(options.stallTimeout, 1000),
      connMaxLifetimeMillis: millis(options.connMaxLifetime, 60_000),
      maxConnections: Math.max(1, options.maxIdleConnsPerAddr ?? 10),
      retry: options.retry ?? defaultRetry,
      reconnect: options.reconnect ?? defaultReconnect,
      failoverTtlSeconds: seconds(options.failoverTtl, 30),
      events: options.metrics === true ? metricEvents : undefined,
    })
    if (options.metrics === true) {
      yield* Effect.forkScoped(
        Effect.repeat(Effect.map(transport.status, recordStatus), Schedule.spaced(GAUGE_INTERVAL)),
      )
    }
    onChange = (config) => {
      const next = makeKetamaRing(discoveredSpecs(config))
      transport.cluster.setServers(next.servers, next.pick)
    }
    return clientOver(transport, options, yield* Effect.scope)
  })

type MemoryClientOptions = MemoryOptions & Omit<Partial<McClientOptions>, "servers" | "pickServer">

const memoryIn = (given: MemoryClientOptions | undefined, scope: Scope.Scope | undefined) =>
  Effect.map(
    checkOptions(given, "unused") as Effect.Effect<MemoryClientOptions, InvalidOption>,
    (options) => clientOver(makeMemoryTransport(options), options, scope),
  )

/**
 * The in-memory engine with memcached's semantics; client options other than servers apply.
 * Invalid options fail with `InvalidOption`. (Without a scope, getOrSet's background refreshes
 * are daemon fibers; `layerMemory` runs them in the layer's scope.)
 */
export const makeMemory = (given?: MemoryClientOptions): Effect.Effect<McClientService, InvalidOption> =>
  memoryIn(given, undefined)

/** `MEMCACHE_SERVERS`: a comma-separated list of servers. */
export const serversFromEnv: Config.Config<ReadonlyArray<string>> = Config.string("MEMCACHE_SERVERS").pipe(
  Config.map((s) =>
    s
      .split(",")
      .map((x) => x.trim())
      .filter((x) => x.length > 0),
  ),
)

export class McClient extends Context.Tag("effect-memcache/McClient")<McClient, McClientService>() {
  /** Real servers over TCP. Fails only for invalid options: `InvalidOption`, `NoServers` for an empty list. */
  static readonly layer = (options: McClientOptions): Layer.Layer<McClient, NoServers | InvalidOption> =>
    Layer.scoped(McClient, make(options))

  /** Options from `Config`, e.g. `McClient.layerConfig({ servers: McClient.serversFromEnv })`. */
  static readonly layerConfig = (
    config: Config.Config.Wrap<McClientOptions>,
  ): Layer.Layer<McClient, NoServers | InvalidOption | ConfigError.ConfigError> =>
    Layer.scoped(McClient, Effect.flatMap(Config.unwrap(config), make))

  /** Servers from `MEMCACHE_SERVERS` (comma-separated `host:port`), other options as given. */
  static readonly layerFromEnv = (
    options: Omit<McClientOptions, "servers"> = {},
  ): Layer.Layer<McClient, NoServers | InvalidOption | ConfigError.ConfigError> =>
    Layer.scoped(
      McClient,
      Effect.flatMap(serversFromEnv, (servers) =>
        Effect.flatMap(checkOptions(options, "unused"), (checked) => make({ ...checked, servers })),
      ),
    )

  /** The in-memory engine: memcached semantics, time from Effect's Clock. */
  static readonly layerMemory = (options?: MemoryClientOptions): Layer.Layer<McClient, InvalidOption> =>
    Layer.scoped(McClient, Effect.flatMap(Effect.scope, (scope) => memoryIn(options, scope)))

  static readonly serversFromEnv = serversFromEnv

  // Accessors: `yield* McClient.get(key)`.
  static readonly get = (key: string, options?: GetOptions) => Effect.flatMap(McClient, (mc) => mc.get(key, options))
  static readonly getMulti: {
    (
      keys: Iterable<string>,
      options: GetMultiOptions & { readonly partial: true },
    ): Effect.Effect<PartialItems, McError | DecodeError, McClient>
    (keys: Iterable<string>, options?: GetMultiOptions): Effect.Effect<ReadonlyMap<string, Item>, McError | DecodeError, McClient>
  } = ((keys: Iterable<string>, options?: GetMultiOptions) =>
    Effect.flatMap(McClient, (mc) => mc.getMulti(keys, options))) as typeof McClient.getMulti
  static readonly set = (item: ItemInput, options?: SetOptions) => Effect.flatMap(McClient, (mc) => mc.set(item, options))
  static readonly add = (item: ItemInput, options?: SetOptions) => Effect.flatMap(McClient, (mc) => mc.add(item, options))
  static readonly replace = (item: ItemInput, options?: SetOptions) =>
    Effect.flatMap(McClient, (mc) => mc.replace(item, options))
  static readonly append = (item: ItemInput, options?: SetOptions) =>
    Effect.flatMap(McClient, (mc) => mc.append(item, options))
  static readonly prepend = (item: ItemInput, options?: SetOptions) =>
    Effect.flatMap(McClient, (mc) => mc.prepend(item, options))
  static readonly compareAndSwap = (item: ItemInput, options?: SetOptions) =>
    Effect.flatMap(McClient, (mc) => mc.compareAndSwap(item, options))
  static readonly del = (key: string, options?: DeleteOptions) => Effect.flatMap(McClient, (mc) => mc.del(key, options))
  static readonly inc = (key: string, delta: bigint | number, expiration?: Expiration, options?: IncrDecrOptions) =>
    Effect.flatMap(McClient, (mc) => mc.inc(key, delta, expiration, options))
  static readonly dec = (key: string, delta: bigint | number, expiration?: Expiration, options?: IncrDecrOptions) =>
    Effect.flatMap(McClient, (mc) => mc.dec(key, delta, expiration, options))
  static readonly touch = (key: string, expiration: Expiration, options?: TimeoutOption) =>
    Effect.flatMap(McClient, (mc) => mc.touch(key, expiration, options))
  static readonly purgeNamespace = (namespace: string, options?: TimeoutOption) =>
    Effect.flatMap(McClient, (mc) => mc.purgeNamespace(namespace, options))
  static readonly status = Effect.flatMap(McClient, (mc) => mc.status)
  static readonly stats: {
    (server: string): Effect.Effect<ServerStats, McError, McClient>
    (): Effect.Effect<ReadonlyMap<string, ServerStats>, McError, McClient>
  } = ((server?: string) =>
    Effect.flatMap(McClient, (mc): Effect.Effect<ServerStats | ReadonlyMap<string, ServerStats>, McError> =>
      server === undefined ? mc.stats() : mc.stats(server),
    )) as typeof McClient.stats
  static readonly getOrSet = <A, I, E, R>(key: string, lookup: Effect.Effect<A, E, R>, options: GetOrSetOptions<A, I>) =>
    Effect.flatMap(McClient, (mc) => mc.getOrSet(key, lookup, options))
  static readonly getAs = <A, I>(schema: Schema.Schema<A, I, never>, key: string, options?: GetOptions & CodecOption) =>
    Effect.flatMap(McClient, (mc) => mc.getAs(schema, key, options))
  static readonly setAs = <A, I>(
    schema: Schema.Schema<A, I, never>,
    item: { readonly key: string; readonly value: A; readonly flags?: number | undefined },
    options?: SetOptions & CodecOption,
  ) => Effect.flatMap(McClient, (mc) => mc.setAs(schema, item, options))
}
