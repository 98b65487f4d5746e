#!/usr/bin/env node
// The `takumi-db` command. The packages run TypeScript directly (no build step), so the bin
// registers tsx's ESM loader and then imports the entry point.
import { register } from "tsx/esm/api"

register()
await import("../src/main.ts")
