# The two commands a new user needs; both set everything up first (idempotent).
#   make demo   generate a few simulated clips and draw their tracks (runs/demo/)
#   make test   run the test suite (what CI runs)
.PHONY: setup demo test

setup:
	@bash scripts/bootstrap.sh

demo: setup
	.venv/bin/motion-prior data generate --out runs/demo/clips --clips 8 --workers 2 --seed 0 --store-frames-every 4
	.venv/bin/motion-prior data show runs/demo/clips --index 0 --out runs/demo/clip-00000.png
	.venv/bin/motion-prior data show runs/demo/clips --index 1 --out runs/demo/clip-00001.gif

# pytest exits 5 when it collected no test: a failure like any other non-zero code.
test: setup
	@.venv/bin/python -m pytest -q; status=$$?; \
	if [ $$status -eq 5 ]; then echo "make test: pytest collected no tests" >&2; fi; exit $$status
