/**
 * The example HTTP service:
 *
 *   npx tsx examples/http-service/main.ts                                 # in-memory cache
 *   MEMCACHE_SERVERS=127.0.0.1:11211 PORT=8080 npx tsx examples/http-service/main.ts
 *   curl localhost:3000/users/42   # slow the first time, then from the cache
 */
import { createServer } from "node:http"
import { HttpMiddleware, HttpServer } from "@effect/platform"
import { NodeHttpServer, NodeRuntime } from "@effect/platform-node"
import { Config, Layer } from "effect"
import { CacheLive, router } from "./app.js"
import { UserDirectory } from "./Users.js"

const ServerLive = NodeHttpServer.layerConfig(createServer, { port: Config.integer("PORT").pipe(Config.withDefault(3000)) })

router.pipe(
  HttpServer.serve(HttpMiddleware.logger),
  HttpServer.withLogAddress,
  Layer.provide([ServerLive, CacheLive, UserDirectory.layerSlow("1 second")]),
  Layer.launch,
  NodeRuntime.runMain,
)
