"""NOS oracle services: the relay (follows requests, carries the enclave's TLS bytes, submits
deliveries) and the dApp client. The enclave (holds the key, terminates TLS, signs) is its own
package, `nos_enclave`, which this one imports (protocol, framing, crypto), never the reverse."""
