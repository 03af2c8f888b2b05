# Quick start: `make demo` (leaderboard on built-in data), `make test` (the test suite).
# Both create .venv and install what they need; torch is pinned to the CPU build first,
# because a bare torch requirement on a fresh machine pulls a multi-GB CUDA build. Every
# install goes through constraints.txt, the exact versions the suite last passed with.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
LOCK := constraints.txt

.PHONY: demo test test-numeric install lock clean

$(STAMP): pyproject.toml $(LOCK)
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet -c $(LOCK) torch
	$(BIN)/pip install --quiet -c $(LOCK) -e ".[test]"
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/unlearnbench run --benchmark digits-random10 --methods retrain,finetune,ga,rl --seeds 3
	$(BIN)/unlearnbench show --benchmark digits-random10

# The HTML report's browser test needs Debian's chromium and the server-store tests Debian's
# postgresql (both installed here when apt-get can); without them those tests skip and say why.
test: $(STAMP)
	command -v chromedriver >/dev/null || ((apt-get update -q && apt-get install -y -q chromium chromium-driver) >/dev/null 2>&1 \
		|| echo "chromium not installable: the browser test will skip")
	ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || command -v initdb >/dev/null || ((apt-get update -q && apt-get install -y -q postgresql) >/dev/null 2>&1 \
		|| echo "postgresql not installable: the server store tests will skip")
	$(BIN)/python -m pytest

# Refresh the lock deliberately: a fresh venv takes the newest versions pyproject.toml allows
# (torch stays the CPU build), and constraints.txt is rewritten from it; run `make test` after.
lock:
	rm -rf .venv-lock && $(PYTHON) -m venv .venv-lock
	.venv-lock/bin/pip install --quiet torch==2.13.0
	.venv-lock/bin/pip install --quiet -e ".[test]"
	head -3 $(LOCK) > $(LOCK).new
	.venv-lock/bin/pip freeze --exclude-editable | sed -E 's/^(torch==[^+]*)\+.*/\1/' >> $(LOCK).new
	mv $(LOCK).new $(LOCK) && rm -rf .venv-lock

# The tests that compare floats computed by methods, metrics and statistics, rerun with torch's
# unvectorised kernels (ATEN_CPU_CAPABILITY=default; the native run uses AVX2/AVX-512 or NEON),
# so a tolerance that holds only for one CPU's rounding fails here, not on a user's machine.
NUMERIC_TESTS := tests/test_methods_distill.py tests/test_methods_importance.py \
	tests/test_methods_optml.py tests/test_methods_exact.py tests/test_methods_amnesiac.py \
	tests/test_metrics.py tests/test_metrics_mufac_zrf.py tests/test_metrics_registered.py \
	tests/test_mia_text.py tests/test_text_scores.py tests/test_population_stats.py \
	tests/test_uncertainty.py tests/test_ranking.py tests/test_language_methods.py \
	tests/test_language_methods_more.py tests/test_language_eval.py tests/test_uld.py \
	tests/test_forget_kinds.py tests/test_precision.py tests/test_worst_case_forget.py \
	tests/test_population_run.py tests/test_language_sequence.py
CAPABILITY ?= default
test-numeric: $(STAMP)
	ATEN_CPU_CAPABILITY=$(CAPABILITY) $(BIN)/python -m pytest $(NUMERIC_TESTS)

clean:
	rm -rf $(VENV) .unlearnbench-cache unlearnbench.db
