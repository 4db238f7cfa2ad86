// Package providers maps upstream Terraform providers onto the Pulumi package
// names and tokens used by the published @pulumi/random, @pulumi/tls and
// @pulumi/docker SDKs, so that locally built plugins serve those SDKs.
package providers

import (
	"context"
	"errors"
	"fmt"

	pftfbridge "github.com/pulumi/pulumi-terraform-bridge/v3/pkg/pf/tfbridge"
	"github.com/pulumi/pulumi-terraform-bridge/v3/pkg/tfbridge"
	"github.com/pulumi/pulumi-terraform-bridge/v3/pkg/tfbridge/tokens"
	shimv2 "github.com/pulumi/pulumi-terraform-bridge/v3/pkg/tfshim/sdk-v2"
	"github.com/pulumi/pulumi/sdk/v3/go/common/resource"

	tlsshim "github.com/hashicorp/terraform-provider-tls/shim"
	dockershim "github.com/terraform-providers/terraform-provider-docker/shim"
	randomshim "github.com/terraform-providers/terraform-provider-random/shim"

	"vps-stack/e2e/toolchain/providers/internal/version"
)

// Names lists the packages this module can build.
var Names = []string{"random", "tls", "docker"}

// ByName returns the bridge configuration for one package.
func ByName(name string) (tfbridge.ProviderInfo, error) {
	switch name {
	case "random":
		return Random(), nil
	case "tls":
		return TLS(), nil
	case "docker":
		return Docker(), nil
	}
	return tfbridge.ProviderInfo{}, fmt.Errorf("unknown provider %q", name)
}

// Random bridges the plugin-framework random provider; every token gets a
// "Random" prefix (random_password -> random:index/randomPassword:RandomPassword).
func Random() tfbridge.ProviderInfo {
	info := tfbridge.ProviderInfo{
		P:            pftfbridge.ShimProvider(randomshim.NewProvider()),
		Name:         "random",
		Description:  "A Pulumi package to safely use randomness in Pulumi programs.",
		License:      "Apache-2.0",
		Version:      version.Version,
		MetadataInfo: emptyMetadata(),
		Resources: map[string]*tfbridge.ResourceInfo{
			// random_bytes has no "id" attribute upstream; use its base64 value.
			"random_bytes": {ComputeID: idFrom("base64")},
		},
	}
	prefixed := func(module, name string) (string, error) {
		return tokens.MakeStandard("random")(module, "Random"+name)
	}
	info.MustComputeTokens(tokens.SingleModule("random_", "index", prefixed))
	return info
}

// TLS bridges the plugin-framework tls provider (tls_private_key ->
// tls:index/privateKey:PrivateKey, data source tls_public_key -> getPublicKey).
func TLS() tfbridge.ProviderInfo {
	info := tfbridge.ProviderInfo{
		P:                              pftfbridge.ShimProvider(tlsshim.NewProvider()),
		Name:                           "tls",
		Description:                    "A Pulumi package to create TLS resources in Pulumi programs.",
		License:                        "Apache-2.0",
		Version:                        version.Version,
		EnableZeroDefaultSchemaVersion: true,
		MetadataInfo:                   emptyMetadata(),
	}
	info.MustComputeTokens(tokens.SingleModule("tls_", "index", tokens.MakeStandard("tls")))
	return info
}

// Docker bridges the SDKv2 docker provider with the names the @pulumi/docker
// SDK uses (docker_image -> RemoteImage, docker_config -> ServiceConfig, ...).
func Docker() tfbridge.ProviderInfo {
	res := func(name string) *tfbridge.ResourceInfo {
		return &tfbridge.ResourceInfo{Tok: tfbridge.MakeResource("docker", "index", name)}
	}
	ds := func(name string) *tfbridge.DataSourceInfo {
		return &tfbridge.DataSourceInfo{Tok: tfbridge.MakeDataSource("docker", "index", name)}
	}
	container := res("Container")
	container.DeleteBeforeReplace = true
	container.Fields = map[string]*tfbridge.SchemaInfo{
		"command":           {Name: "command"},
		"networks_advanced": {Name: "networksAdvanced"},
	}
	remoteImage := res("RemoteImage")
	remoteImage.Fields = map[string]*tfbridge.SchemaInfo{"name": {Name: "name"}}

	info := tfbridge.ProviderInfo{
		P:            shimv2.NewProvider(dockershim.NewProvider(version.Version)),
		Name:         "docker",
		Description:  "A Pulumi package for interacting with Docker in Pulumi programs",
		License:      "Apache-2.0",
		Version:      version.Version,
		MetadataInfo: emptyMetadata(),
		Config: map[string]*tfbridge.SchemaInfo{
			"host": {Default: &tfbridge.DefaultInfo{
				Value: "unix:///var/run/docker.sock", EnvVars: []string{"DOCKER_HOST"},
			}},
			"registry_auth": {Name: "registryAuth", MaxItemsOne: tfbridge.False()},
		},
		Resources: map[string]*tfbridge.ResourceInfo{
			"docker_config":         res("ServiceConfig"),
			"docker_container":      container,
			"docker_image":          remoteImage,
			"docker_network":        res("Network"),
			"docker_secret":         res("Secret"),
			"docker_service":        res("Service"),
			"docker_volume":         res("Volume"),
			"docker_registry_image": res("RegistryImage"),
			"docker_plugin":         res("Plugin"),
			"docker_tag":            res("Tag"),
		},
		DataSources: map[string]*tfbridge.DataSourceInfo{
			"docker_network":        ds("getNetwork"),
			"docker_registry_image": ds("getRegistryImage"),
			"docker_plugin":         ds("getPlugin"),
			"docker_image":          ds("getRemoteImage"),
		},
	}
	info.MustComputeTokens(tokens.SingleModule("docker_", "index", tokens.MakeStandard("docker")))
	info.SetAutonaming(255, "-")
	return info
}

// emptyMetadata stands in for the bridge-metadata.json that upstream builds
// embed: it only carries alias history and mux data, which fresh stacks lack.
func emptyMetadata() *tfbridge.MetadataInfo { return tfbridge.NewProviderMetadata([]byte("{}")) }

func idFrom(key resource.PropertyKey) func(context.Context, resource.PropertyMap) (resource.ID, error) {
	return func(_ context.Context, state resource.PropertyMap) (resource.ID, error) {
		v, ok := state[key]
		if !ok {
			return "", fmt.Errorf("state has no %q property", key)
		}
		if v.IsSecret() {
			v = v.SecretValue().Element
		}
		if !v.IsString() {
			return "", errors.New("expected a string for " + string(key))
		}
		return resource.ID(v.StringValue()), nil
	}
}
