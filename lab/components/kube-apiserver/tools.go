//go:build tools

// Package tools pins the lab's kube-apiserver: `go build k8s.io/kubernetes/cmd/kube-apiserver`
// in this module builds exactly the version go.mod requires.
package tools

import _ "k8s.io/kubernetes/cmd/kube-apiserver"
