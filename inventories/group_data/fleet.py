"""Settings shared by every host in inventories/fleet.py (``gotune_`` prefix)."""
