// Package shim returns the upstream docker provider for the Pulumi bridge.
package shim

import (
	"github.com/hashicorp/terraform-plugin-sdk/v2/helper/schema"
	upstream "github.com/terraform-providers/terraform-provider-docker/internal/provider"
)

// NewProvider returns a fresh upstream SDKv2 provider.
func NewProvider(version string) *schema.Provider { return upstream.New(version)() }
