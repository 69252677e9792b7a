//go:build tools

// Package tools pins host-device-v1.6.2 at v1.6.2 for the lab: building github.com/containernetworking/plugins/plugins/main/host-device in this module
// builds exactly the version go.mod requires.
package tools

import _ "github.com/containernetworking/plugins/plugins/main/host-device"
