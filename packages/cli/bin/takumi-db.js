#!/usr/bin/env node
// The `takumi-db` command: the compiled entry point, plain JavaScript (no TypeScript loader).
import "../dist/main.js"
