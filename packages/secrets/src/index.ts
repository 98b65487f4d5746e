/**
 * @since 0.1.0
 */
export * from "./SecretError.js"
export * from "./SecretsBackend.js"
