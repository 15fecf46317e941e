"""One module per part: `TITLE` and `run(ctx)`. Ordered by dccn_demo.__main__.STORIES."""
