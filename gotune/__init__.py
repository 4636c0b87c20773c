"""gotune: provision and tune Go development machines with pyinfra."""

__version__ = "0.1.0"
