"""pyinfra facts for gotune: one collector command per host, pure parsers."""
