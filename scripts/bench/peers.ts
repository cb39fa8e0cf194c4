/**
 * The peers, each used the way its README shows, with defaults unless noted:
 * - memjs (binary protocol, one connection). No multi-get: getMulti is 100 pipelined gets (Promise.all).
 * - memcache-client (text protocol). Multi-get is `get([keys])`.
 * - memcached by 3rd-Eden (text protocol, connection pool). Multi-get is `getMulti`.
 * Every store sets "never expire", so preloaded keys stay for the whole run.
 */
import { MemcacheClient, type MultiRetrievalResponse } from "memcache-client"
import Memcached from "memcached"
import memjs from "memjs"
import {
  type AsyncOps,
  KEY_COUNT,
  makeBatches,
  makeKeys,
  preloadWith,
  type Runner,
  runAsyncScenario,
  VALUE,
} from "./types.js"

const makePeer = <G>(
  meta: { readonly id: string; readonly label: string; readonly column: string; readonly notes: string },
  space: string,
  build: (keys: ReadonlyArray<string>, batches: ReadonlyArray<ReadonlyArray<string>>) => AsyncOps<G>,
  close: () => void,
): Runner => {
  const keys = makeKeys(space)
  const ops = build(keys, makeBatches(keys))
  return {
    ...meta,
    group: "peer",
    preload: () => preloadWith(ops.set, KEY_COUNT),
    run: (scenario, durationMs) => runAsyncScenario(ops, scenario, durationMs),
    close: async () => close(),
  }
}

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
    (keys, batches) => ({
      get: (i) => client.get(keys[i]!),
      value: (r) => r.value,
      set: (i) => client.set(keys[i]!, VALUE, { expires: 0 }),
      getMulti: async (b) => {
        const replies = await Promise.all(batches[b]!.map((k) => client.get(k)))
        let found = 0
        for (const r of replies) if (r.value !== null) found++
        return found
      },
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
    (keys, batches) => ({
      get: (i) => client.get<Buffer>(keys[i]!),
      value: (r) => r?.value,
      set: (i) => client.set(keys[i]!, VALUE, { lifetime: 0 }),
      getMulti: async (b) => {
        const found = await client.get<MultiRetrievalResponse<Buffer>>(batches[b] as Array<string>)
        let n = 0
        for (const k in found) if (found[k]!.value !== undefined) n++
        return n
      },
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
    (keys, batches) => ({
      get: (i) =>
        new Promise<Buffer | string | undefined>((resolve, reject) =>
          client.get(keys[i]!, (e, data) => (e ? reject(e) : resolve(data))),
        ),
      value: (r) => (typeof r === "string" ? Buffer.from(r, "latin1") : r),
      set: (i) =>
        new Promise<boolean>((resolve, reject) =>
          client.set(keys[i]!, VALUE, 0, (e, ok) => (e ? reject(e) : resolve(ok))),
        ),
      getMulti: (b) =>
        new Promise<number>((resolve, reject) =>
          client.getMulti(batches[b]!, (e, data) => (e ? reject(e) : resolve(Object.keys(data).length))),
        ),
    }),
    () => client.end(),
  )
}
