// Package shim returns the upstream random provider for the Pulumi bridge.
package shim

import (
	"github.com/hashicorp/terraform-plugin-framework/provider"
	upstream "github.com/terraform-providers/terraform-provider-random/internal/provider"
)

// NewProvider returns a fresh upstream plugin-framework provider.
func NewProvider() provider.Provider { return upstream.New() }
