//go:build tools

// Package tools pins etcd at v3.7.3 for the lab: building go.etcd.io/etcd/server/v3 in this module
// builds exactly the version go.mod requires.
package tools

import _ "go.etcd.io/etcd/server/v3"
