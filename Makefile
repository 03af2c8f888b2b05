# Quick start: `make demo` (leaderboard on built-in data), `make test` (the test suite).
# Both create .venv and install what they need; torch is pinned to the CPU build first,
# because a bare torch requirement on a fresh machine pulls a multi-GB CUDA build.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test install clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet torch==2.13.0 || $(BIN)/pip install --quiet "torch>=2.2,<3"
	$(BIN)/pip install --quiet -e ".[test]"
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

clean:
	rm -rf $(VENV) .unlearnbench-cache unlearnbench.db
