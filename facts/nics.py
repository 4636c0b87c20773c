"""Network interfaces: driver, link speed, NUMA locality, virtual or physical.

Sources: /sys/class/net/NAME (a symlink into /sys/devices; virtual interfaces
live under /sys/devices/virtual/net), its operstate, speed, carrier, and the
device/driver and device/numa_node of the hardware behind it.
"""

from __future__ import annotations

from gotune.facts.collect import Dump
from gotune.facts.model import Nic
from gotune.facts.sysfs import parse_int

NET_CLASS = "/sys/class/net"


def parse_nics(dump: Dump) -> list[Nic]:
    nics = []
    for name in dump.children(NET_CLASS):
        base = f"{NET_CLASS}/{name}"
        link = dump.links.get(base, "")
        driver_link = dump.links.get(f"{base}/device/driver")
        state = (dump.value(f"{base}/operstate") or "").lower()
        # Loopback and some virtual devices report "unknown" while working: trust carrier then.
        up = state == "up" or (state == "unknown" and dump.value(f"{base}/carrier") == "1")
        speed = parse_int(dump.value(f"{base}/speed"))
        numa = parse_int(dump.value(f"{base}/device/numa_node"))
        nics.append(
            Nic(
                name=name,
                driver=driver_link.rstrip("/").rsplit("/", 1)[-1] or None if driver_link else None,
                speed_mbps=speed if up and speed is not None and speed > 0 else None,
                numa_node=numa if numa is not None and numa >= 0 else None,
                virtual="/devices/virtual/" in link or (not link and driver_link is None),
                up=up,
            )
        )
    return nics
