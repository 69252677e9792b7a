"""The ``--netns`` child: enters a named network namespace, remounts sysfs, answers on a pipe.

Run by collector.NetnsCollector as ``python -m nodeagent.netns_worker --netns NAME``; see the
design note there. Protocol (JSON lines): first line ``{"ready": true, "netns_inode": N}`` or
``{"ready": false, "error": "..."}``; then one reply per request line on stdin: the request
``{"op": "facts", "have": V}`` (V the version the parent holds, or null) is answered
``{"ok": true, "version": V}`` when the facts are still those, else
``{"ok": true, "version": W, "facts": {...}}``. ``{"event": "changed"}`` is sent whenever the
facts changed. EOF on stdin (the parent is gone) ends the worker.
"""

from __future__ import annotations

import argparse
import ctypes
import json
import os
import sys
import threading

CLONE_NEWNS = 0x00020000
CLONE_NEWNET = 0x40000000
MS_REC = 0x4000
MS_SLAVE = 1 << 19
MNT_DETACH = 2


def _check(result: int, what: str) -> None:
    if result != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")


def enter_namespace(name: str) -> None:
    """What ``ip netns exec`` does: join the netns, then give it its own view of /sys.

    Opening /run/netns/NAME read-only never creates anything: a missing namespace is an error.
    Must run while the process is single-threaded (unshare(CLONE_NEWNS) requires it).
    """
    libc = ctypes.CDLL(None, use_errno=True)
    fd = os.open(os.path.join("/run/netns", name), os.O_RDONLY | os.O_CLOEXEC)
    try:
        _check(libc.setns(fd, CLONE_NEWNET), f"setns {name}")
    finally:
        os.close(fd)
    _check(libc.unshare(CLONE_NEWNS), "unshare mount namespace")
    # Keep our mounts private so the sysfs remount never leaks back into the host.
    _check(libc.mount(b"none", b"/", None, MS_SLAVE | MS_REC, None), "make / rslave")
    libc.umount2(b"/sys", MNT_DETACH)  # may not be mounted at all; the mount below decides
    _check(libc.mount(name.encode(), b"/sys", b"sysfs", 0, None), "mount sysfs")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="nodeagent.netns_worker")
    parser.add_argument("--netns", required=True)
    parser.add_argument("--sysfs-root", default="/sys")
    parser.add_argument("--no-pci-scan", dest="pci_scan", action="store_false")
    args = parser.parse_args(argv)
    out = sys.stdout.buffer
    out_lock = threading.Lock()

    def send(message: dict) -> None:
        data = json.dumps(message, separators=(",", ":")).encode() + b"\n"
        with out_lock:
            try:
                out.write(data)
                out.flush()
            except (OSError, ValueError):
                pass  # parent gone; stdin EOF ends us

    try:
        enter_namespace(args.netns)
    except OSError as error:
        send({"ready": False, "error": f"cannot enter network namespace {args.netns!r}: {error}"})
        return 3

    from nodeagent.collector import CollectorError, LocalCollector
    from nodeagent.logs import log

    collector = LocalCollector(
        args.sysfs_root, on_change=lambda: send({"event": "changed"}), pci_scan=args.pci_scan
    )
    try:
        collector.start()
    except CollectorError as error:
        send({"ready": False, "error": f"cannot read {args.netns!r}: {error}"})
        return 3
    send({"ready": True, "netns_inode": os.stat("/proc/self/ns/net").st_ino})
    for line in sys.stdin.buffer:
        if not line.strip():
            continue
        try:
            request = json.loads(line)
            version, facts = collector.current()
            reply: dict = {"ok": True, "version": version}
            if request.get("have") != version:
                reply["facts"] = facts
            send(reply)
        except Exception as error:  # noqa: BLE001 - any failure becomes a 503, never a crash
            log("error", "netns_collect_failed", netns=args.netns, error=repr(error))
            send({"ok": False, "error": f"collecting facts in {args.netns!r} failed: {error}"})
    collector.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
