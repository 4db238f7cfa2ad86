// Unit tests: Pulumi mocks, renderers and config validation. No CLI, no Docker, no network.
// Type checking is `npm run typecheck`'s job; here ts-jest only transpiles, which keeps `npm test` fast.
/** @type {import('jest').Config} */
module.exports = {
    testEnvironment: "node",
    roots: ["<rootDir>/test"],
    testMatch: ["**/*.test.ts"],
    testPathIgnorePatterns: ["/integration/"],
    transform: { "^.+\\.ts$": ["ts-jest", { diagnostics: false }] },
    setupFiles: ["<rootDir>/test/setup.ts"],
    testTimeout: 30000,
};
