/**
 * A vitest project for the leak guard's own test (test/LeakGuard.test.ts runs it in a child
 * process): the repository's leak guard (setup file and reporter), over planted.leak.ts only.
 */
import { fileURLToPath } from "node:url"
import { defineConfig } from "vitest/config"

const repo = (path: string) => fileURLToPath(new URL(`../../${path}`, import.meta.url))

export default defineConfig({
  ssr: { resolve: { conditions: ["@takumi/source", "node", "development|production"] } },
  test: {
    root: fileURLToPath(new URL(".", import.meta.url)),
    include: ["planted.leak.ts"],
    pool: "forks",
    setupFiles: [repo("vitest.leak-guard-setup.ts")],
    reporters: ["default", repo("vitest.leak-guard.ts")]
  }
})
