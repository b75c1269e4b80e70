//go:build tools

// Package tools pins the provider's main package into this wrapper's module graph.
package tools

import _ "github.com/pulumi/pulumi-kubernetes/provider/v4/cmd/pulumi-resource-kubernetes"
