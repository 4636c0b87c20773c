"""The default inventory: this machine, reached without SSH.

``gotune apply`` with no INVENTORY uses this file when gotune runs from this
checkout (``pip install -e .``); installed as a package it uses plain ``@local``,
the same host with no host data. Host data set here (for example
``gotune_users``) applies to this machine only: edit it and name the file,
``gotune apply inventories/local.py``, to be sure it is read.
"""

hosts = ["@local"]
