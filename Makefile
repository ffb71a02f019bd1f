# Two commands: `make run` starts the gateway with its embedded defaults, `make test` runs every test.
# Both create .venv with Python 3.12 and install what they need.
PYTHON ?= $(shell command -v python3.12 2>/dev/null || ls $$HOME/.pyenv/versions/3.12*/bin/python3.12 2>/dev/null | head -n1)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run console test bench venv clean

$(STAMP): pyproject.toml
	@test -n "$(PYTHON)" || { echo "Python 3.12 not found: install it (pyenv install 3.12) or set PYTHON=..." >&2; exit 1; }
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(STAMP)

venv: $(STAMP)

# The policy's category lists first, when none are installed (one line and on when the download
# cannot be reached: the gateway then starts in the policy's settings.missing_lists mode).
run: $(STAMP)
	$(BIN)/poortwachter lists ensure --policy policy/default.yaml
	$(BIN)/poortwachter run --policy policy/default.yaml --listen 127.0.0.1:8080 --dns 127.0.0.1:5300

console: $(STAMP)
	$(BIN)/poortwachter console --listen 127.0.0.1:8090 --policy policy/default.yaml

# Debian packages the tests drive for real: chromium (block page, console), prometheus (promtool and
# a live server), nftables and iproute2 (transparent interception and the sensor in namespaces).
TEST_TOOLS := chromium:chromium promtool:prometheus nft:nftables ip:iproute2 systemd-analyze:systemd nsd:nsd dig:bind9-dnsutils

test: $(STAMP)
	@missing=$$(for t in $(TEST_TOOLS); do command -v $${t%%:*} >/dev/null || echo $${t#*:}; done); \
	if [ -n "$$missing" ]; then apt-get update && apt-get install -y $$missing; fi
	$(BIN)/python -m pytest

bench: $(STAMP)
	$(BIN)/python tests/bench/bench_decide.py
	$(BIN)/python tests/bench/bench_lists.py
	$(BIN)/python tests/bench/bench_squidguard.py
	$(BIN)/python tests/bench/bench_proxy.py
	$(BIN)/python tests/bench/bench_proxy.py --gateway-option poortwachter_audit=off
	$(BIN)/python tests/bench/bench_audit.py
	$(BIN)/python tests/bench/bench_audit_verify.py
	$(BIN)/python tests/bench/bench_workers.py   # root: network namespaces
	$(BIN)/python tests/bench/bench_sensor.py   # root: network namespaces
	$(BIN)/python tests/bench/bench_hooks.py
	$(BIN)/python tests/bench/bench_dns.py

clean:
	rm -rf $(VENV)
