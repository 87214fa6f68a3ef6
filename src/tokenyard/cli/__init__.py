"""The ``tokenyard`` command."""
