"""An example fleet: workstations reached over SSH.

Copy this file, list your machines, and run ``gotune apply inventories/fleet.py``
or ``pyinfra inventories/fleet.py deploys/laptop.py``. Group data for every host in
this file lives in ``group_data/fleet.py``; per-host data goes in the tuples.
"""

workstations = [
    ("dev-01.example.internal", {"ssh_user": "root"}),
    ("dev-02.example.internal", {"ssh_user": "root"}),
]
