module nicportal.lab/components/host-device-v1.2.0

go 1.25.0

require github.com/containernetworking/plugins v1.2.0

require (
	github.com/containernetworking/cni v1.1.2 // indirect
	github.com/coreos/go-iptables v0.6.0 // indirect
	github.com/safchain/ethtool v0.2.0 // indirect
	github.com/vishvananda/netlink v1.2.1-beta.2 // indirect
	github.com/vishvananda/netns v0.0.0-20210104183010-2eb08e3e575f // indirect
	golang.org/x/sys v0.4.0 // indirect
)
