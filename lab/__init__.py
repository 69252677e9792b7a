"""The project's own test cluster on one Linux machine, with the real host-device plugin.

    python -m lab up [--name demo] [--layout FILE.yaml] [--portal-url URL] [--api-port P]
    python -m lab status [--name demo] [--json]
    python -m lab down [--name demo]
    python -m lab build [COMPONENT ...]
    python -m lab pod create|delete|list|netns ... [--lab demo]

- lab/layout.py    nodes and their NICs as data (built-in 3-node layout or a YAML file)
- lab/topology.py  network namespaces `nplab-<lab>-<node>`, `nplab-<lab>-switch`, pods
                   `nplab-<lab>-pod-<uid12>`; NICs are veths whose peers sit in the switch
- lab/components.py  the real kube-apiserver, etcd, host-device releases, Multus v4.2.3 and
                   host-local, built from the pinned Go modules in lab/components/ into a
                   machine-wide cache
- lab/control_plane.py  etcd + kube-apiserver on 127.0.0.1 (TLS, tokens, RBAC, NAD CRD)
- lab/api.py       the lab actors' asyncio client of that API server
- lab/kubelet.py   scheduling, pods -> namespaces, graceful deletion, sandbox retry, Events
- lab/cni.py       each node's real Multus (binDir, conf, kubeconfig), running it as the
                   runtime does, the API server forwarded into the node namespaces
- lab/calico_cni.py  the cluster network plugin Multus delegates eth0 to (Calico's veth, with
                   the real host-local as IPAM)
- lab/multus.py    the networks-annotation parser; Multus 3.9 reproduced for 3.9 nodes
- lab/kube_api.py  Node, agent DaemonSet and agent pod objects; KMock's emulator, kept for
                   fast unit tests
- lab/daemon.py    `python -m lab serve`: control plane + kubelet + one agent per node
- lab/control.py   up / down / status; lab/state.py the state dir
- lab/pods.py      `python -m lab pod`: create a pod and wait for its outcome, list, delete
- lab/handle.py    LabHandle, what tests use; lab/pytest_plugin.py the fixtures

Never imported by the product (inventory/, nicportal/, nodeagent/), and it imports none of it
but `nodeagent.auth` (to derive each agent's node key): it emulates kubelet on its own and runs
real Multus, so the portal is tested against independent implementations.
"""
