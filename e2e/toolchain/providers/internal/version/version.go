// Package version holds the provider version, stamped at link time with
// -ldflags "-X vps-stack/e2e/toolchain/providers/internal/version.Version=X.Y.Z".
package version

// Version is the plugin version reported to the Pulumi engine.
var Version = "0.0.0-dev"
