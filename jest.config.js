// Unit tests: Pulumi mocks, renderers and config validation. No CLI, no Docker, no network.
// Type checking is `npm run typecheck`'s job; here ts-jest only transpiles, which keeps `npm test` fast.
/** @type {import('jest').Config} */
module.exports = {
    testEnvironment: "node",
    // Only test/ is crawled: the policy pack the tests import (policy/) has its own node_modules
    // (npm ci --prefix policy), which jest resolves through but must not collect tests or modules from.
    roots: ["<rootDir>/test"],
    testMatch: ["**/*.test.ts"],
    testPathIgnorePatterns: ["/integration/", "/node_modules/"],
    transform: { "^.+\\.ts$": ["ts-jest", { diagnostics: false }] },
    setupFiles: ["<rootDir>/test/setup.ts"],
    testTimeout: 30000,
};
