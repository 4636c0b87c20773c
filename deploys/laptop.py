"""The main deploy: tune each host for Go development.

Run it with ``gotune apply [INVENTORY]`` (which shows the plan and asks first) or
with plain pyinfra: ``pyinfra inventories/fleet.py deploys/laptop.py``. Settings
come from host and group data (``gotune_*``, see gotune/settings.py); pyinfra
prepares every host before it changes any, so a bad setting on one host stops
the run before anything changes anywhere.
"""

from gotune.deploys.tune import plan_current_host, tune

tune(plan_current_host())
