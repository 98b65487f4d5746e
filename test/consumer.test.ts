/**
 * The packages as a service gets them: every workspace package packed with `npm pack`, the
 * tarballs installed into a new project in a temporary folder outside the repository (its own
 * `package.json`, an Effect 3.22 patch other than ours, no tsx), two programs compiled there with
 * `tsc --strict` (NodeNext, `skipLibCheck: false`) and run with plain `node` against a real TLS
 * PostgreSQL, and the installed `takumi-db` CLI run from `node_modules/.bin`.
 *
 * It runs the built `dist/` (`npm test` builds first). Under another Node version (`.ci/run` runs
 * the suite on Node 22 and 24) the programs and the CLI run on that Node too.
 */
import { assert, describe, layer } from "@effect/vitest"
import { TestDatabase } from "@takumi/testing"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Fs from "node:fs"
import * as FsP from "node:fs/promises"
import * as Os from "node:os"
import * as Path from "node:path"
import { fileURLToPath } from "node:url"
import { type Run, run } from "./internal/run.js"

const repoRoot = fileURLToPath(new URL("..", import.meta.url))
const PASSWORD = "consumer-Pw-4b7e1d"

/** The Effect patch the consumer installs: deliberately not the one this workspace is locked to. */
const CONSUMER_EFFECT = "3.22.3"

const node = (cwd: string, args: ReadonlyArray<string>, env: Record<string, string> = {}) =>
  run(process.execPath, args, { cwd, env })

const version = (name: string): string =>
  JSON.parse(Fs.readFileSync(Path.join(repoRoot, "node_modules", name, "package.json"), "utf8")).version

const fail = (message: string, result?: Run) =>
  Effect.dieMessage(result === undefined ? message : `${message} (exit ${result.code})\n${result.stdout}\n${result.stderr}`)

/** The tarballs, by package name, packed from the built workspace into `folder`. */
const pack = (folder: string) =>
  Effect.gen(function*() {
    if (!Fs.existsSync(Path.join(repoRoot, "packages/db/dist/index.js"))) {
      return yield* fail("packages/*/dist is missing: run `npm run build` first (`npm test` does)")
    }
    const packed = yield* run("npm", ["pack", "--workspaces", "--json", "--pack-destination", folder], { cwd: repoRoot })
    if (packed.code !== 0) return yield* fail("npm pack failed", packed)
    const entries: ReadonlyArray<{ name: string; filename: string }> = JSON.parse(packed.stdout)
    return Object.fromEntries(entries.map((entry) => [entry.name, `file:${Path.join(folder, entry.filename)}`]))
  })

const tsconfig = {
  compilerOptions: {
    target: "ES2022",
    module: "NodeNext",
    moduleResolution: "NodeNext",
    strict: true,
    skipLibCheck: false,
    types: ["node"],
    rootDir: "src",
    outDir: "dist"
  },
  include: ["src"]
}

/** The installed project, and what `tsc` said when it compiled the two programs. */
class Consumer extends Context.Tag("test/Consumer")<Consumer, {
  readonly folder: string
  readonly compiled: Run
}>() {}

const makeConsumer = Effect.gen(function*() {
  const folder = yield* Effect.acquireRelease(
    Effect.promise(() => FsP.mkdtemp(Path.join(Os.tmpdir(), "takumi-consumer-"))),
    (folder) => Effect.promise(() => FsP.rm(folder, { recursive: true, force: true }))
  )
  const tarballs = yield* pack(folder)
  const manifest = {
    name: "takumi-consumer",
    private: true,
    type: "module",
    dependencies: {
      "@takumi/config": tarballs["@takumi/config"],
      "@takumi/secrets": tarballs["@takumi/secrets"],
      "@takumi/db": tarballs["@takumi/db"],
      "@takumi/db-cli": tarballs["@takumi/db-cli"],
      effect: CONSUMER_EFFECT,
      "@effect/experimental": `^${version("@effect/experimental")}`,
      "@effect/platform": `^${version("@effect/platform")}`,
      "@effect/sql": `^${version("@effect/sql")}`,
      "@effect/sql-pg": `^${version("@effect/sql-pg")}`
    },
    devDependencies: { "@types/node": version("@types/node") }
  }
  yield* Effect.promise(async () => {
    await FsP.writeFile(Path.join(folder, "package.json"), JSON.stringify(manifest, null, 2))
    await FsP.writeFile(Path.join(folder, "tsconfig.json"), JSON.stringify(tsconfig, null, 2))
    await FsP.mkdir(Path.join(folder, "src"))
    await FsP.copyFile(Path.join(repoRoot, "examples/service.ts"), Path.join(folder, "src/service.ts"))
    await FsP.copyFile(Path.join(repoRoot, "test/consumer/mockLayers.ts"), Path.join(folder, "src/mockLayers.ts"))
  })
  const installed = yield* run("npm", ["install", "--no-audit", "--no-fund", "--prefer-offline"], { cwd: folder })
  if (installed.code !== 0) return yield* fail("npm install of the tarballs failed", installed)
  // the workspace's TypeScript compiler, resolving every type from the consumer's node_modules
  const compiled = yield* node(folder, [Path.join(repoRoot, "node_modules/typescript/bin/tsc"), "-p", "."])
  return { folder, compiled }
})

const ConsumerLive = Layer.scoped(Consumer, makeConsumer)

const Fixture = Layer.merge(
  ConsumerLive,
  TestDatabase.layer({ roles: [{ name: "app", password: PASSWORD }], database: "app" })
)

const versionMismatch = /Executing an Effect versioned/

describe("the packed packages in a project outside the repository", () => {
  layer(Fixture, { timeout: "300 seconds" })((it) => {
    it.effect("type-check a service program and a mock-layer test program (tsc --strict, NodeNext, skipLibCheck false)", () =>
      Effect.gen(function*() {
        const { compiled } = yield* Consumer
        assert.strictEqual(`${compiled.stdout}${compiled.stderr}`, "")
        assert.strictEqual(compiled.code, 0)
      }))

    it.effect("run the service program with plain node against TLS PostgreSQL, TakumiDb.layer reading the environment", () =>
      Effect.gen(function*() {
        const { folder } = yield* Consumer
        const { pki, server } = yield* TestDatabase.TestDatabase
        const result = yield* node(folder, ["dist/service.js"], {
          NODE_ENV: "development",
          DB_HOST: server.host,
          DB_PORT: String(server.port),
          DB_NAME: "app",
          DB_USER: "app",
          DB_PASSWORD: PASSWORD,
          DB_SSL: "true",
          DB_SSL_CA: pki.ca.certPath,
          SECRETS_BACKEND: "env"
        })
        assert.strictEqual(result.code, 0, result.stderr)
        assert.include(result.stdout, "connected: ssl=true protocol=TLSv1.3")
        assert.notMatch(`${result.stdout}${result.stderr}`, versionMismatch)
      }))

    it.effect("run SecureSqlClient.layer on mock config and secrets layers; a wrong password is AuthenticationFailed", () =>
      Effect.gen(function*() {
        const { folder } = yield* Consumer
        const { pki, server } = yield* TestDatabase.TestDatabase
        const args = ["dist/mockLayers.js", server.host, String(server.port), pki.ca.certPath, "app"]
        const accepted = yield* node(folder, [...args, PASSWORD])
        assert.strictEqual(accepted.code, 0, accepted.stderr)
        assert.include(accepted.stdout, "current_user=app")
        const refused = yield* node(folder, [...args, "not-the-password"])
        assert.strictEqual(refused.code, 1)
        assert.include(refused.stderr, "AuthenticationFailed user=app")
        assert.notInclude(refused.stderr, "not-the-password")
      }))

    it.effect("install neither secrets client, and name the package to install when a backend needs one", () =>
      Effect.gen(function*() {
        const { folder } = yield* Consumer
        for (const client of ["node-vault", "@aws-sdk/client-secrets-manager", "tsx", "esbuild"]) {
          assert.isFalse(Fs.existsSync(Path.join(folder, "node_modules", client)), `${client} is installed`)
        }
        const development = { NODE_ENV: "development", DB_HOST: "127.0.0.1", DB_NAME: "app", DB_USER: "app" }
        const vault = yield* node(folder, ["dist/service.js"], {
          ...development,
          SECRETS_BACKEND: "vault",
          VAULT_ADDR: "https://127.0.0.1:8200",
          VAULT_TOKEN: "hvs.consumer-token",
          VAULT_PATH: "secret/takumi/development"
        })
        assert.strictEqual(vault.code, 1)
        assert.include(vault.stderr, "(SecretsBackendUnavailable): SECRETS_BACKEND=vault needs the optional package node-vault")
        assert.include(vault.stderr, "npm install node-vault@^0.12")
        const aws = yield* node(folder, ["dist/service.js"], {
          ...development,
          SECRETS_BACKEND: "aws-secrets-manager",
          AWS_REGION: "eu-west-1"
        })
        assert.strictEqual(aws.code, 1)
        assert.include(aws.stderr, "npm install @aws-sdk/client-secrets-manager@^3.1164")
      }))

    it.effect(`hold exactly one copy of effect (${CONSUMER_EFFECT}, not the workspace's own patch)`, () =>
      Effect.gen(function*() {
        const { folder } = yield* Consumer
        assert.notStrictEqual(version("effect"), CONSUMER_EFFECT)
        const listed = yield* run("npm", ["ls", "effect", "--all", "--parseable", "--long"], { cwd: folder })
        assert.strictEqual(listed.code, 0, listed.stderr)
        const copies = [...new Set(listed.stdout.trim().split("\n"))]
        assert.deepStrictEqual(copies, [`${Path.join(folder, "node_modules/effect")}:effect@${CONSUMER_EFFECT}`])
      }))

    it.effect("run the installed takumi-db CLI with npx, compiled JavaScript under plain node", () =>
      Effect.gen(function*() {
        const { folder } = yield* Consumer
        const result = yield* run("npx", ["--no-install", "takumi-db", "pool-size", "--max-connections", "200", "--instances", "4"], {
          cwd: folder
        })
        assert.strictEqual(result.code, 0, result.stderr)
        assert.strictEqual(result.stdout.split("\n")[0], "40")
        assert.include(result.stdout, "floor((200 / 4) * 0.8)")
        assert.notMatch(`${result.stdout}${result.stderr}`, versionMismatch)
      }))
  })
})
