/**
 * The peers, each used the way its README shows, with defaults unless noted:
 * - memjs (binary protocol, one connection). No multi-get: getMulti is 100 pipelined gets (Promise.all).
 * - memcache-client (text protocol). Multi-get is `get([keys])`.
 * - memcached by 3rd-Eden (text protocol, connection pool). Multi-get is `getMulti`.
 * - memcache by jaredwray (text protocol, string values). Multi-get is `gets(keys)`.
 * Every store sets "never expire", so preloaded keys stay for the whole run. Every value is
 * checked as for effect-memcache: its length on every call, the whole of it on the sampled calls.
 * Each timed run starts with one untimed get, so that a peer that dropped its idle connection
 * while the others ran reconnects before the clock starts, not in a burst of N racing calls.
 */
import { Memcache } from "memcache"
import { MemcacheClient, type MultiRetrievalResponse } from "memcache-client"
import Memcached from "memcached"
import memjs from "memjs"
import { type AsyncOps, makeWorkload, preloadWith, type Runner, runAsyncScenario, type Workload } from "./types.js"

const makePeer = <G, M>(
  meta: { readonly id: string; readonly label: string; readonly column: string; readonly notes: string },
  space: string,
  build: (data: Workload) => AsyncOps<G, M>,
  close: () => unknown,
): Runner => {
  const data = makeWorkload(space)
  const ops = build(data)
  return {
    ...meta,
    group: "peer",
    callingStyle: "plain-async",
    preload: () => preloadWith(ops.set, data),
    run: async (scenario, durationMs) => {
      await ops.get(data.keys[0]!)
      return runAsyncScenario(ops, data, scenario, durationMs)
    },
    close: async () => {
      await close()
    },
  }
}

type MemjsReply = { readonly value: Buffer | null }

export const memjsRunner = (server: string): Runner => {
  const client = memjs.Client.create(server)
  return makePeer(
    {
      id: "memjs",
      label: "memjs",
      column: "memjs",
      notes: "Client.create(server) (1 connection); promise API; getMulti = Promise.all of 100 gets",
    },
    "mj",
    () => ({
      get: (key) => client.get(key),
      value: (r: MemjsReply) => r.value,
      set: (key, value) => client.set(key, value, { expires: 0 }),
      getMulti: (batch) => Promise.all(batch.map((k) => client.get(k))),
      found: (replies: ReadonlyArray<MemjsReply>) => {
        let n = 0
        for (const r of replies) if (r.value !== null) n++
        return n
      },
      multiValue: (replies, _, j) => replies[j]?.value,
    }),
    () => client.close(),
  )
}

export const memcacheClientRunner = (server: string): Runner => {
  // Defaults: noDelay off, which measured a few percent faster here than noDelay: true.
  const client = new MemcacheClient({ server })
  return makePeer(
    {
      id: "memcache-client",
      label: "memcache-client",
      column: "memcache-client",
      notes: "new MemcacheClient({ server }) (defaults: 1 connection, noDelay off); get([keys]) for getMulti",
    },
    "mc",
    () => ({
      get: (key) => client.get<Buffer>(key),
      value: (r) => r?.value,
      set: (key, value) => client.set(key, value, { lifetime: 0 }),
      getMulti: (batch) => client.get<MultiRetrievalResponse<Buffer>>(batch as Array<string>),
      found: (found) => {
        let n = 0
        for (const k in found) if (found[k]!.value !== undefined) n++
        return n
      },
      multiValue: (found, key) => found[key]?.value,
    }),
    () => client.shutdown(),
  )
}

export const memcachedRunner = (server: string): Runner => {
  const client = new Memcached(server)
  return makePeer(
    {
      id: "memcached",
      label: "memcached (npm)",
      column: "memcached",
      notes: "new Memcached(server) (pool of up to 10 connections, the default); callbacks in promises; getMulti",
    },
    "md",
    () => ({
      get: (key) =>
        new Promise<Buffer | string | undefined>((resolve, reject) => client.get(key, (e, data) => (e ? reject(e) : resolve(data)))),
      value: (r) => r,
      set: (key, value) =>
        new Promise<boolean>((resolve, reject) => client.set(key, value, 0, (e, ok) => (e ? reject(e) : resolve(ok)))),
      getMulti: (batch) =>
        new Promise<Record<string, Buffer | string>>((resolve, reject) =>
          client.getMulti(batch, (e, data) => (e ? reject(e) : resolve(data))),
        ),
      found: (data) => Object.keys(data).length,
      multiValue: (data, key) => data[key],
    }),
    () => client.end(),
  )
}

export const memcacheRunner = (server: string): Runner => {
  const client = new Memcache(server)
  return makePeer(
    {
      id: "memcache",
      label: "memcache (npm)",
      column: "memcache",
      notes:
        "new Memcache(server) (defaults: 1 connection per node); string values; gets(keys) for getMulti. " +
        "It closes its socket after 5 s idle (its `timeout`), and calls racing to reconnect can fail (returned as misses) " +
        "or never complete: each run starts with one untimed get, as for every peer",
    },
    "mn",
    (data) => ({
      get: (key) => client.get(key),
      value: (r) => r,
      // Its API takes strings: the workload's own text, not a conversion per call.
      set: (key, value, k) => client.set(key, k === undefined ? value.toString("latin1") : data.texts[k]!, 0),
      getMulti: (batch) => client.gets(batch as Array<string>),
      found: (m) => m.size,
      multiValue: (m, key) => m.get(key),
    }),
    () => client.disconnect(),
  )
}
