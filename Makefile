# The two commands a new user needs; both set everything up first (idempotent).
#   make demo   sample futures of a simulated push with the shipped model (runs/demo/)
#   make test   run the test suite (what CI runs)
.PHONY: setup demo test

setup:
	@bash scripts/bootstrap.sh

demo: setup
	.venv/bin/motion-prior demo --out runs/demo

# pytest exits 5 when it collected no test: a failure like any other non-zero code.
test: setup
	@.venv/bin/python -m pytest -q; status=$$?; \
	if [ $$status -eq 5 ]; then echo "make test: pytest collected no tests" >&2; fi; exit $$status
