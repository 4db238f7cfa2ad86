// Package shim returns the upstream tls provider for the Pulumi bridge.
package shim

import (
	"github.com/hashicorp/terraform-plugin-framework/provider"
	upstream "github.com/hashicorp/terraform-provider-tls/internal/provider"
)

// NewProvider returns a fresh upstream plugin-framework provider.
func NewProvider() provider.Provider { return upstream.New() }
