// Exposes the upstream Terraform random provider constructor. The module path
// sits under the upstream module so that it may import its internal package.
module github.com/terraform-providers/terraform-provider-random/shim

go 1.25.8

require github.com/terraform-providers/terraform-provider-random v1.3.2-0.20240911140632-e546ae44b440
