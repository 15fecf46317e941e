"""The one-command demo: start chains, deploy with the deploy script, start the
services, and run each part's story (`dccn_demo/stories/<part>.py`)."""
