# The two commands (see README): `make demo` and `make test`.
.PHONY: demo test install bench lint clean

install:
	@bash tools/bootstrap.sh

demo: install
	@APE_DATA_FOLDER=$(CURDIR)/.ape PATH="$(CURDIR)/.venv/bin:$(CURDIR)/node_modules/.bin:$$PATH" \
		.venv/bin/python -m dccn_demo $(ARGS)

test: install
	@bash tools/test.sh $(ARGS)

bench: install
	@APE_DATA_FOLDER=$(CURDIR)/.ape PATH="$(CURDIR)/.venv/bin:$(CURDIR)/node_modules/.bin:$$PATH" \
		.venv/bin/python -m bench $(ARGS)

lint: install
	@.venv/bin/ruff check .

clean:
	rm -rf .build .ape demo-run .pytest_cache .hypothesis
