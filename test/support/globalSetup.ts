/**
 * Starts the memcached instances the integration tests share: one for the behaviour suite, three
 * for the cluster tests. Tests that kill servers start their own (scripts/memcached.ts).
 */
import type { TestProject } from "vitest/node"
import { type MemcachedProcess, startMemcached } from "../../scripts/memcached.js"
import { makeTestCerts, tlsArgs } from "./certs.js"

declare module "vitest" {
  export interface ProvidedContext {
    memcached: string
    memcachedCluster: ReadonlyArray<string>
    /** memcached over TLS (-Z), and the CA (PEM) its certificate chains to */
    memcachedTls: string
    memcachedTlsCa: string
  }
}

export default async function setup(project: TestProject) {
  const started: Array<MemcachedProcess> = []
  try {
    const single = await startMemcached()
    started.push(single)
    for (let i = 0; i < 3; i++) started.push(await startMemcached())
    const certs = makeTestCerts()
    const tls = await startMemcached({ extraArgs: tlsArgs(certs) })
    started.push(tls)
    project.provide("memcachedTls", tls.address)
    project.provide("memcachedTlsCa", certs.ca)
  } catch (e) {
    await Promise.all(started.map((p) => p.stop()))
    throw e
  }
  project.provide("memcached", started[0]!.address)
  project.provide("memcachedCluster", started.slice(1, 4).map((p) => p.address))
  return async () => {
    await Promise.all(started.map((p) => p.stop()))
  }
}
