# The two commands of the README.
.PHONY: demo test check bench

demo:   ## install and run `tokenyard demo` (embedded SQLite, simulated providers)
	scripts/demo

test:   ## install everything (venv, PostgreSQL, Redis) and run every check and test
	scripts/test

check:  ## the gate alone, when the environment is already set up
	scripts/check

bench:  ## the benchmark (on demand; prints a table)
	.venv/bin/python bench/run.py
