"""gotune's own pyinfra operations, one module per subject (pyinfra convention).

Each operation reads facts, compares them with what is wanted, and either
notes "already ..." or yields the commands; every change is recorded first in
the host's undo directory (``operations/state.py``) so ``gotune undo`` can put
back what was there.
"""
