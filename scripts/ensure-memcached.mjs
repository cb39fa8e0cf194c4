// Makes sure a `memcached` binary is on PATH before the tests start.
// As root on a machine without it, installs Debian's package; otherwise explains what to do.
import { execSync, spawnSync } from "node:child_process"

const has = () => spawnSync("memcached", ["-V"], { stdio: "ignore" }).status === 0

if (!has()) {
  const isRoot = typeof process.getuid === "function" && process.getuid() === 0
  if (!isRoot) {
    console.error("memcached is not installed. Install it (e.g. `sudo apt-get install -y memcached`) and run `npm test` again.")
    process.exit(1)
  }
  console.log("memcached not found: installing Debian's package…")
  const env = { ...process.env, DEBIAN_FRONTEND: "noninteractive" }
  try {
    execSync("apt-get install -y memcached", { stdio: "inherit", env })
  } catch {
    execSync("apt-get update && apt-get install -y memcached", { stdio: "inherit", env })
  }
  if (!has()) {
    console.error("memcached could not be installed.")
    process.exit(1)
  }
}
// The package starts a system instance on 11211; the tests start their own on free ports and do not need it.
console.log(execSync("memcached -V").toString().trim())
