"""NOS oracle services: the enclave (holds the key, terminates TLS, signs) and the
relay (follows requests, carries the enclave's TLS bytes, submits deliveries)."""
