//go:build tools

// Package tools only records that this module builds Consul's main package
// (github.com/hashicorp/consul), so that `go mod tidy` keeps Consul and its
// whole module graph in go.mod and go.sum. It is never compiled: build Consul
// with `go build github.com/hashicorp/consul` (see README.md).
package tools

import _ "github.com/hashicorp/consul"
