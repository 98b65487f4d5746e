/**
 * What every published package's manifest promises a user, checked against the tree: an export
 * for each public module and nothing else, compiled targets, Effect as a peer, no TypeScript
 * loader at run time, a license. The consumer test proves the packages work once installed; this
 * names the manifest field that broke when one does not.
 */
import { assert, describe, it } from "@effect/vitest"
import * as Fs from "node:fs"
import * as Path from "node:path"
import { fileURLToPath } from "node:url"

const packagesDir = fileURLToPath(new URL("../packages", import.meta.url))
const folders = Fs.readdirSync(packagesDir).sort()

interface Manifest {
  readonly name: string
  readonly private?: boolean
  readonly license?: string
  readonly files?: ReadonlyArray<string>
  readonly sideEffects?: unknown
  readonly exports: Readonly<Record<string, string | Readonly<Record<string, string>>>>
  readonly dependencies?: Readonly<Record<string, string>>
  readonly peerDependencies?: Readonly<Record<string, string>>
  readonly peerDependenciesMeta?: Readonly<Record<string, { readonly optional?: boolean }>>
  readonly repository?: { readonly directory?: string }
}

const manifest = (folder: string): Manifest =>
  JSON.parse(Fs.readFileSync(Path.join(packagesDir, folder, "package.json"), "utf8"))

/** `src/<Module>.ts` files, the public modules (`main.ts` is the CLI's entry point, not a module). */
const publicModules = (folder: string) =>
  Fs.readdirSync(Path.join(packagesDir, folder, "src"))
    .filter((file) => file.endsWith(".ts") && file !== "index.ts" && file !== "main.ts")
    .map((file) => file.slice(0, -3))
    .sort()

describe("package manifests", () => {
  for (const folder of folders) {
    describe(folder, () => {
      const pkg = manifest(folder)

      it("is publishable: not private, MIT with a LICENSE file, repository directory, sideEffects []", () => {
        assert.notStrictEqual(pkg.private, true)
        assert.strictEqual(pkg.license, "MIT")
        assert.isTrue(Fs.existsSync(Path.join(packagesDir, folder, "LICENSE")))
        assert.strictEqual(pkg.repository?.directory, `packages/${folder}`)
        assert.deepStrictEqual(pkg.sideEffects, [])
        assert.includeMembers([...(pkg.files ?? [])], ["dist", "src"])
        assert.notInclude([...(pkg.files ?? [])], "test")
      })

      it("exports '.', ./package.json and exactly one subpath per public module, each built into dist", () => {
        const subpaths = Object.keys(pkg.exports).filter((key) => key !== "." && key !== "./package.json").sort()
        assert.deepStrictEqual(subpaths, publicModules(folder).map((module) => `./${module}`))
        assert.strictEqual(pkg.exports["./package.json"], "./package.json")
        for (const [subpath, target] of Object.entries(pkg.exports)) {
          if (typeof target === "string") continue
          const module = subpath === "." ? "index" : subpath.slice(2)
          assert.deepStrictEqual(target, {
            "@takumi/source": `./src/${module}.ts`,
            types: `./dist/${module}.d.ts`,
            default: `./dist/${module}.js`
          })
        }
      })

      it("has effect as a peer and no TypeScript loader or second Effect among its dependencies", () => {
        assert.isString(pkg.peerDependencies?.["effect"])
        const dependencies = Object.keys(pkg.dependencies ?? {})
        for (const forbidden of ["tsx", "ts-node", "typescript", "effect", "@effect/platform", "@effect/sql", "@effect/sql-pg"]) {
          assert.notInclude(dependencies, forbidden)
        }
      })
    })
  }

  it("keep the secrets clients optional peers, out of every package's dependencies", () => {
    const secrets = manifest("secrets")
    for (const client of ["node-vault", "@aws-sdk/client-secrets-manager"]) {
      assert.isString(secrets.peerDependencies?.[client])
      assert.isTrue(secrets.peerDependenciesMeta?.[client]?.optional)
      for (const folder of folders) assert.notInclude(Object.keys(manifest(folder).dependencies ?? {}), client)
    }
  })

  it("keep @effect/platform-node (and its cluster, rpc and workflow peers) out of @takumi/config", () => {
    const config = manifest("config")
    assert.notInclude(Object.keys({ ...config.dependencies, ...config.peerDependencies }), "@effect/platform-node")
    const sources = Fs.readdirSync(Path.join(packagesDir, "config/src"), { recursive: true, encoding: "utf8" })
      .filter((file) => file.endsWith(".ts"))
    for (const file of sources) {
      assert.notMatch(Fs.readFileSync(Path.join(packagesDir, "config/src", file), "utf8"), /from "@effect\/platform-node/, file)
    }
  })
})
