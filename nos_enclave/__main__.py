"""`python -m nos_enclave` is `nos-enclave`."""

from nos_enclave.cli import main

if __name__ == "__main__":
    main()
