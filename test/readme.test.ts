/**
 * The README's code is the code CI compiles: the service program it shows is
 * `examples/service.ts` verbatim (type-checked by `npm run typecheck`, compiled and run with plain
 * node by the consumer test), and so are the mock layers (`test/consumer/mockLayers.ts`) and the
 * logging setup (`examples/logging.ts`, run by `test/logging.test.ts`); the files it links to
 * exist, and the install line names every peer the packages declare. Every package README's
 * TypeScript is likewise a file under `examples/readme/<package>/` (or another checked file).
 */
import { assert, describe, it } from "@effect/vitest"
import * as Fs from "node:fs"
import { fileURLToPath } from "node:url"

const read = (path: string) => Fs.readFileSync(fileURLToPath(new URL(`../${path}`, import.meta.url)), "utf8")

/** Every TypeScript file the typecheck compiles under `examples/` and `test/consumer/`. */
const checkedFiles = (): ReadonlyArray<string> =>
  ["examples", "test/consumer"].flatMap((folder) =>
    Fs.readdirSync(fileURLToPath(new URL(`../${folder}`, import.meta.url)), { recursive: true, encoding: "utf8" })
      .filter((name) => name.endsWith(".ts"))
      .map((name) => read(`${folder}/${name}`))
  )

const readmes = ["README.md", ...Fs.readdirSync(fileURLToPath(new URL("../packages", import.meta.url))).map((pkg) => `packages/${pkg}/README.md`)]
  .filter((path) => Fs.existsSync(fileURLToPath(new URL(`../${path}`, import.meta.url))))

describe("every README", () => {
  it("shows only TypeScript that CI compiles: each ```ts block is a file under examples/ or test/consumer/, verbatim", () => {
    const files = new Set(checkedFiles())
    for (const path of readmes) {
      const blocks = Array.from(read(path).matchAll(/```ts\n([\s\S]*?)```/g), (match) => match[1]!)
      for (const block of blocks) {
        assert.isTrue(files.has(block), `${path}: this block is not a type-checked file (put it under examples/readme/):\n${block}`)
      }
    }
  })
})

describe("README", () => {
  it("shows examples/service.ts verbatim as the service program", () => {
    assert.include(read("README.md"), "```ts\n" + read("examples/service.ts") + "```")
  })

  it("shows test/consumer/mockLayers.ts verbatim as the mock-layers program", () => {
    assert.include(read("README.md"), "```ts\n" + read("test/consumer/mockLayers.ts") + "```")
  })

  it("shows examples/testing/test-server.ts verbatim as the test-server snippet", () => {
    assert.include(read("README.md"), "```ts\n" + read("examples/testing/test-server.ts") + "```")
  })

  it("shows examples/logging.ts verbatim as the production logging setup", () => {
    assert.include(read("README.md"), "```ts\n" + read("examples/logging.ts") + "```")
  })

  it("links only to files that are in the repository", () => {
    const readme = read("README.md")
    for (const [, target] of readme.matchAll(/\]\(((?:docs|examples|test|packages)\/[^)#]+)[^)]*\)/g)) {
      assert.isTrue(Fs.existsSync(fileURLToPath(new URL(`../${target}`, import.meta.url))), `README links to ${target}`)
    }
    assert.notInclude(readme, "database-security.md")
  })

  it("installs every required peer of @takumi/db, config and secrets at its declared range", () => {
    const line = read("README.md").split("\n").find((text) => text.startsWith("npm install @takumi/db "))
    assert.isString(line)
    for (const folder of ["config", "secrets", "db"]) {
      const pkg = JSON.parse(read(`packages/${folder}/package.json`))
      const optional: Record<string, unknown> = pkg.peerDependenciesMeta ?? {}
      for (const [name, range] of Object.entries<string>(pkg.peerDependencies)) {
        if (name in optional) continue
        assert.include(line, `${name}@${range}`, `${folder} peer ${name}`)
      }
    }
  })
})
