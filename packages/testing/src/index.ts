/**
 * @since 0.1.0
 */

/**
 * Test PKI: CA, server, client and deliberately broken certificates generated at test time.
 *
 * @since 0.1.0
 */
export * as TestPki from "./TestPki.js"
