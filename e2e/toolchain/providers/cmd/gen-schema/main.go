// Command gen-schema writes the Pulumi package schema of one bridged provider:
//
//	gen-schema NAME VERSION OUT.json
package main

import (
	"encoding/json"
	"fmt"
	"os"

	"github.com/pulumi/pulumi-terraform-bridge/v3/pkg/tfgen"
	"github.com/pulumi/pulumi/sdk/v3/go/common/diag"
	"github.com/pulumi/pulumi/sdk/v3/go/common/diag/colors"

	"vps-stack/e2e/toolchain/providers/internal/providers"
	"vps-stack/e2e/toolchain/providers/internal/version"
)

func main() {
	if len(os.Args) != 4 {
		fmt.Fprintln(os.Stderr, "usage: gen-schema NAME VERSION OUT.json")
		os.Exit(2)
	}
	version.Version = os.Args[2]
	info, err := providers.ByName(os.Args[1])
	if err == nil {
		var res *tfgen.GenerateSchemaResult
		sink := diag.DefaultSink(os.Stderr, os.Stderr, diag.FormatOptions{Color: colors.Never})
		res, err = tfgen.GenerateSchemaWithOptions(tfgen.GenerateSchemaOptions{
			ProviderInfo: info, DiagnosticsSink: sink, XInMemoryDocs: true,
		})
		if err == nil {
			var out []byte
			if out, err = json.Marshal(res.PackageSpec); err == nil {
				err = os.WriteFile(os.Args[3], out, 0o644)
			}
		}
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "gen-schema:", err)
		os.Exit(1)
	}
}
