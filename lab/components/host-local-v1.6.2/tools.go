//go:build tools

// Package tools pins host-local v1.6.2, the IPAM of the lab's cluster network (pod eth0
// addresses): building github.com/containernetworking/plugins/plugins/ipam/host-local in this
// module builds exactly the version go.mod requires.
package tools

import _ "github.com/containernetworking/plugins/plugins/ipam/host-local"
