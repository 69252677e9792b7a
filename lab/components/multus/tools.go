//go:build tools

// Package tools pins the lab's Multus (thin plugin): building
// gopkg.in/k8snetworkplumbingwg/multus-cni.v4/cmd/multus in this module builds exactly the
// version go.mod requires.
package tools

import _ "gopkg.in/k8snetworkplumbingwg/multus-cni.v4/cmd/multus"
