// Pulumi captures a stack trace for every resource and promise; with source maps each costs milliseconds.
// A short trace keeps the mocked program fast; failures still show the test's own frames.
Error.stackTraceLimit = 2;
