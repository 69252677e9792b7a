"""The project's own test cluster on one Linux machine, with the real host-device plugin.

    python -m lab up [--name demo] [--layout FILE.yaml] [--portal-url URL] [--api-port P]
    python -m lab status [--name demo] [--json]
    python -m lab down [--name demo]

- lab/layout.py    nodes and their NICs as data (built-in 3-node layout or a YAML file)
- lab/topology.py  network namespaces `nplab-<lab>-<node>`, `nplab-<lab>-switch`, pods
                   `nplab-<lab>-pod-<uid12>`; NICs are veths whose peers sit in the switch
- lab/kube_api.py  KMock's Kubernetes emulator on 127.0.0.1, with its gaps worked around
- lab/kubelet.py   pods -> namespaces, real host-device ADD/DEL, network-status or Events
- lab/multus.py    the lab's own reading/writing of the Multus annotations
- lab/daemon.py    `python -m lab serve`: API + kubelet + one node agent per node
- lab/control.py   up / down / status; lab/state.py the state dir
- lab/handle.py    LabHandle, what tests use; lab/pytest_plugin.py the fixtures

Never imported by the product (inventory/, nicportal/, nodeagent/), and it imports none of it:
it emulates kubelet and Multus on its own, so the portal is tested against an independent
implementation.
"""
