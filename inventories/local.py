"""The default inventory: this machine, reached without SSH.

``gotune apply`` with no INVENTORY uses this file. Host data set here (for
example ``gotune_users``) applies to this machine only.
"""

hosts = ["@local"]
