// Command pulumi-resource-command is a compact implementation of the Pulumi
// "command" provider (package "command", as used by the @pulumi/command SDK),
// built from the public pulumi-go-provider framework because the upstream
// provider module is not published on the Go module proxy.
//
// Implemented: command:local:Command, command:remote:Command and the
// command:local:run function, with the same input/output names as the SDK.
// Not implemented: command:remote:CopyToRemote, command:remote:CopyFile and
// the assetPaths/archivePaths outputs of local commands.
package main

import (
	"context"
	"fmt"
	"os"

	p "github.com/pulumi/pulumi-go-provider"
	"github.com/pulumi/pulumi-go-provider/infer"
)

// Version is stamped with -ldflags "-X main.Version=X.Y.Z".
var Version = "0.0.0-dev"

func main() {
	prov, err := infer.NewProviderBuilder().
		WithNamespace("pulumi").
		WithDisplayName("Command").
		WithDescription("The Pulumi Command Provider enables you to execute commands and scripts either locally or remotely as part of the Pulumi resource model.").
		WithLicense("Apache-2.0").
		WithResources(
			infer.Resource(&LocalCommand{}),
			infer.Resource(&RemoteCommand{}),
		).
		WithFunctions(infer.Function(&Run{})).
		Build()
	if err == nil {
		err = p.RunProvider(context.Background(), "command", Version, prov)
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "pulumi-resource-command: %v\n", err)
		os.Exit(1)
	}
}
