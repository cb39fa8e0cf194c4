/**
 * Test certificates, made with `openssl` into a temporary directory (never committed):
 * - `ca`: the CA the tests trust; `otherCa`: one they do not;
 * - `server`: for "localhost" and 127.0.0.1, signed by `ca`;
 * - `client`: a client certificate signed by `ca`, for mutual TLS.
 */
import { execFileSync } from "node:child_process"
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"

export interface TestCerts {
  readonly dir: string
  readonly caFile: string
  readonly ca: string
  readonly otherCa: string
  readonly serverCertFile: string
  readonly serverKeyFile: string
  readonly clientCert: string
  readonly clientKey: string
}

const openssl = (dir: string, args: ReadonlyArray<string>) => execFileSync("openssl", args, { cwd: dir, stdio: "pipe" })

const makeCa = (dir: string, name: string) => {
  openssl(dir, ["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", `/CN=${name}`, "-keyout", `${name}.key`, "-out", `${name}.pem`])
}

const makeLeaf = (dir: string, name: string, ca: string, ext: string) => {
  openssl(dir, ["req", "-newkey", "rsa:2048", "-nodes", "-subj", `/CN=${name}`, "-keyout", `${name}.key`, "-out", `${name}.csr`])
  writeFileSync(join(dir, `${name}.ext`), ext)
  openssl(dir, [
    "x509", "-req", "-in", `${name}.csr`, "-CA", `${ca}.pem`, "-CAkey", `${ca}.key`, "-CAcreateserial",
    "-days", "2", "-extfile", `${name}.ext`, "-out", `${name}.pem`,
  ])
}

export const makeTestCerts = (): TestCerts => {
  const dir = mkdtempSync(join(tmpdir(), "effect-memcache-certs-"))
  makeCa(dir, "ca")
  makeCa(dir, "otherca")
  makeLeaf(dir, "server", "ca", "subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n")
  makeLeaf(dir, "client", "ca", "extendedKeyUsage=clientAuth\n")
  const read = (f: string) => readFileSync(join(dir, f), "utf8")
  return {
    dir,
    caFile: join(dir, "ca.pem"),
    ca: read("ca.pem"),
    otherCa: read("otherca.pem"),
    serverCertFile: join(dir, "server.pem"),
    serverKeyFile: join(dir, "server.key"),
    clientCert: read("client.pem"),
    clientKey: read("client.key"),
  }
}

/** memcached's arguments for TLS with these certificates; `mutual` requires a client certificate. */
export const tlsArgs = (certs: TestCerts, mutual = false): ReadonlyArray<string> => [
  "-Z",
  "-o",
  `ssl_chain_cert=${certs.serverCertFile},ssl_key=${certs.serverKeyFile}` +
    (mutual ? `,ssl_ca_cert=${certs.caFile},ssl_verify_mode=3` : ""),
]
