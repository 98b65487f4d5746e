/**
 * The README's code is the code CI compiles: the service program it shows is
 * `examples/service.ts` verbatim (type-checked by `npm run typecheck`, compiled and run with plain
 * node by the consumer test), and the install line names every peer the packages declare.
 */
import { assert, describe, it } from "@effect/vitest"
import * as Fs from "node:fs"
import { fileURLToPath } from "node:url"

const read = (path: string) => Fs.readFileSync(fileURLToPath(new URL(`../${path}`, import.meta.url)), "utf8")

describe("README", () => {
  it("shows examples/service.ts verbatim as the service program", () => {
    assert.include(read("README.md"), "```ts\n" + read("examples/service.ts") + "```")
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
