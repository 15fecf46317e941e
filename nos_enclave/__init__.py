"""The NOS enclave: the process that alone holds the oracle signing key, terminates TLS to the
data source in memory, and signs responses (cli.py is `nos-enclave`).

This package imports nothing from the rest of the project, so its measurement (the hash of every
file in it, measurement.py) covers all the project code the enclave runs. The relay and clients
depend on it (`nos_enclave.protocol`, `.framing`, `.crypto`), never the reverse."""
