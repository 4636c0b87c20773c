"""SSD wear monitoring: SMART and eMMC readings, history, projections, state for the mirror.

Everything in this package uses only the Python standard library: it runs on
target hosts from the gotune zipapp (``python3 /opt/gotune/gotune.pyz wear``).
"""
