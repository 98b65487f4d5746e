/**
 * The `takumi-db` executable (`bin/takumi-db.js` imports its compiled `dist/main.js`): runs the command line on the Node
 * runtime and exits with the code `Cli.teardown` chooses.
 *
 * @since 0.1.0
 */
import * as NodeContext from "@effect/platform-node/NodeContext"
import * as NodeRuntime from "@effect/platform-node/NodeRuntime"
import * as Effect from "effect/Effect"
import * as Cli from "./Cli.js"

const terminal: Cli.Terminal = {
  stdoutIsTerminal: process.stdout.isTTY === true,
  stderrIsTerminal: process.stderr.isTTY === true
}

NodeRuntime.runMain(Cli.main(process.argv, terminal).pipe(Effect.provide(NodeContext.layer)), {
  disableErrorReporting: true,
  // Cli.run installs the only logger (logfmt on standard error); the pretty one would print on stdout too
  disablePrettyLogger: true,
  teardown: Cli.teardown
})
