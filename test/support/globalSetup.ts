/**
 * Starts the memcached instances the integration tests share: one for the behaviour suite, three
 * for the cluster tests. Tests that kill servers start their own (scripts/memcached.ts).
 */
import type { TestProject } from "vitest/node"
import { type MemcachedProcess, startMemcached } from "../../scripts/memcached.js"

declare module "vitest" {
  export interface ProvidedContext {
    memcached: string
    memcachedCluster: ReadonlyArray<string>
  }
}

export default async function setup(project: TestProject) {
  const started: Array<MemcachedProcess> = []
  try {
    const single = await startMemcached()
    started.push(single)
    for (let i = 0; i < 3; i++) started.push(await startMemcached())
  } catch (e) {
    await Promise.all(started.map((p) => p.stop()))
    throw e
  }
  project.provide("memcached", started[0]!.address)
  project.provide("memcachedCluster", started.slice(1).map((p) => p.address))
  return async () => {
    await Promise.all(started.map((p) => p.stop()))
  }
}
