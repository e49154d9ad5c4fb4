# Terminal orders: the two commands a newcomer needs are `make demo` and `make test`.
# Everything they need (pinned Python tools in .venv/, .venv-lint/, .venv-checkov/ and
# .venv-ministack/, asl-validator in infra/node_modules/) is installed by the targets
# themselves.

SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

PYTHON     ?= python3
VENV       := .venv
STACK_DIR  ?= .local/stack
TEST_STACK ?= target/test-stack
CHAOS_STACK ?= target/chaos-stack
# make chaos: PROFILE=default (1,000 orders) or storm (200); CHAOS_ORDERS=N overrides the count.
PROFILE ?= default
CHAOS_ORDERS ?=
# The Rust toolchain rust-toolchain.toml pins, there before any cargo runs
# (infra/toolchain.sh: installed by rustup, or the machine's stable of that version linked
# under its name where rustup cannot download).
TOOLCHAIN := $(shell bash infra/toolchain.sh)
ifneq ($(TOOLCHAIN),ok)
$(error the Rust toolchain that rust-toolchain.toml pins is not there; `bash infra/toolchain.sh` says why)
endif
CARGO      ?= cargo
LOCAL      := target/debug/local-stack
# The emulator of `make up` / `make demo`: moto (development: cargo lambda watch, reloads)
# or ministack (template.yaml through sam deploy and MiniStack's CloudFormation).
EMULATOR   ?= moto
MINISTACK_TEST_STACK ?= target/test-stack-ministack
# The architecture of this machine, in the template's words: what MiniStack can run.
HOST_ARCH  := $(subst aarch64,arm64,$(shell uname -m))
# make package builds arm64 (what deploys to AWS) unless told otherwise; make test and
# make up EMULATOR=ministack build for this machine, which MiniStack runs.
ifeq ($(EMULATOR),ministack)
ARCH ?= $(HOST_ARCH)
endif
ARCH ?= arm64
export ARCH

# Ports of the development stack (make up); make test always picks free ones.
export AWS_PORT         ?= 4599
export MOTO_SERVER_PORT ?= 4598
export LAMBDA_PORT      ?= 9099
# The ops console `make up` starts (orderctl console, on 127.0.0.1).
export CONSOLE_PORT     ?= 8765

.PHONY: help venv ministack-venv contract-venv lint-tools check build up down status verify demo reconcile console browser screenshots lint package test test-ministack chaos bench simulate clean

help: ## Show the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

# Each venv is installed from its lock (every package pinned with its sha256; regenerated
# by infra/lock-python.py), hash-checked, and again only when the lock changes.
$(VENV)/.installed: infra/requirements-stack.lock infra/requirements-stack.txt infra/constraints-stack.txt
	@$(PYTHON) infra/lock-python.py --check >/dev/null
	@echo "==> installing the local stack's pinned tools into $(VENV)"
	@$(PYTHON) -m venv $(VENV)
	@$(VENV)/bin/python -m pip install --quiet --require-virtualenv --require-hashes --no-deps -r infra/requirements-stack.lock
	@touch $@

venv: $(VENV)/.installed ## Install moto and cargo-lambda (pinned) into .venv

ministack-venv: ## Install MiniStack (pinned) into .venv-ministack
	@bash infra/ministack/install.sh

.venv-openapi/.installed: infra/requirements-openapi.lock infra/requirements-openapi.txt infra/constraints-openapi.txt
	@$(PYTHON) infra/lock-python.py --check >/dev/null
	@echo "==> installing openapi.yaml's pinned tools (schemathesis, openapi-spec-validator) into .venv-openapi"
	@$(PYTHON) -m venv .venv-openapi
	@.venv-openapi/bin/python -m pip install --quiet --require-virtualenv --require-hashes --no-deps -r infra/requirements-openapi.lock
	@touch $@

contract-venv: .venv-openapi/.installed ## Install schemathesis and openapi-spec-validator (pinned) into .venv-openapi

# The inner loop, no stack: what a change is checked with before make test. One cargo
# test over the workspace, so it builds exactly what `make build` built (features unified
# by infra/workspace-hack). The template tests read the SAM-translated template (the lint
# tools in .venv-lint: make lint-tools); the stream poller's unit tests start a moto of
# their own (.venv: make venv).
CHECK_TESTS := --lib --bins --test saga --test simulation --test racing --test workflow_definition \
	--test release_template --test security_template --test dependencies
check: venv ## The inner loop, no stack (about a minute on a warm tree): fmt, clippy, every crate's unit tests, the saga tests on the in-memory twin, the simulator's 10,000 orders, the definition and template tests
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets --locked -- -D warnings
	@[ -x .venv-lint/bin/python ] || bash infra/lint.sh --install-only
	$(CARGO) test --workspace --locked $(CHECK_TESTS)

build: ## Build the whole workspace (functions, router, local-stack, tests)
	$(CARGO) build --workspace --all-targets --locked

up: venv build $(if $(filter ministack,$(EMULATOR)),ministack-venv package) ## Start the local stack (EMULATOR=moto: moto, invoke router, partner simulator, cargo lambda watch; EMULATOR=ministack: MiniStack with the packaged template)
	$(LOCAL) up --dir $(STACK_DIR) --emulator $(EMULATOR)

down: ## Stop exactly what `make up` started
	@[ -x $(LOCAL) ] || $(CARGO) build --locked --quiet --bin local-stack
	$(LOCAL) down --dir $(STACK_DIR)

status: ## Show the local stack's processes and endpoints
	@[ -x $(LOCAL) ] || $(CARGO) build --locked --quiet --bin local-stack
	@$(LOCAL) status --dir $(STACK_DIR) || true

verify: ## Check the running stack's resources against template.yaml
	$(LOCAL) verify --dir $(STACK_DIR)

demo: up ## Place six orders (every kind, a decline, an outage, a cancel) and show their timelines
	$(LOCAL) demo --dir $(STACK_DIR)
	@echo "The stack keeps running: try GET $$(grep ^ORDERS_API_URL= $(STACK_DIR)/stack.env | cut -d= -f2)/orders/<id>; stop it with make down."
	@echo "The ops console: $$(grep ^CONSOLE_URL= $(STACK_DIR)/stack.env | cut -d= -f2-) (open this URL in a browser on this machine: it carries the console's secret)"

reconcile: ## Run the reconciler once against the `make up` stack (GRACE seconds, default 900)
	@[ -x target/debug/orderctl ] || $(CARGO) build --locked --quiet --bin orderctl
	target/debug/orderctl --env-file $(STACK_DIR)/stack.env reconcile --grace-seconds $(or $(GRACE),900)

console: ## Run another ops console in the foreground against the `make up` stack, on a free port (make up starts one on CONSOLE_PORT): open the URL it prints, which carries its per-launch secret
	@[ -x target/debug/orderctl ] || $(CARGO) build --locked --quiet --bin orderctl
	target/debug/orderctl --env-file $(STACK_DIR)/stack.env console --port 0

# The browser tests (tests/console.rs) drive Debian's Chromium through chromedriver.
# CI runs as root on a clean Debian machine; elsewhere apt-get runs through sudo.
SUDO := $(if $(filter 0,$(shell id -u)),,sudo)
browser: ## Install Chromium and chromedriver (Debian's chromium, chromium-driver) for the browser tests, when missing
	@if [ -x /usr/bin/chromium ] && [ -x /usr/bin/chromedriver ]; then \
		echo "chromium and chromedriver are installed: $$(/usr/bin/chromedriver --version | cut -d' ' -f1-2)"; \
	else \
		echo "==> installing chromium and chromium-driver (apt-get)"; \
		$(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq chromium chromium-driver; \
	fi

screenshots: venv build browser ## Regenerate the ops console's screenshots in infra/orderctl/screenshots/ (the browser tests, on a stack of their own)
	CONSOLE_SCREENSHOTS=$(CURDIR)/infra/orderctl/screenshots $(LOCAL) exec --dir target/screenshot-stack --free-ports --no-reload -- \
		$(CARGO) test --locked -p system-tests --test console

lint: contract-venv ## Formatting, clippy, cargo-deny (licences, bans, sources; offline), and the offline template / ASL / OpenAPI checks
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets --locked -- -D warnings
	bash infra/check-unified-features.sh
	bash infra/deny.sh
	bash infra/lint.sh
	.venv-openapi/bin/openapi-spec-validator openapi.yaml

package: venv ## Build what deploys: every function's release bootstrap in one cargo run, then sam build (which copies them); ARCH=arm64|x86_64 (default arm64)
	bash infra/package.sh

# What deploys: every function's release bootstrap from one `cargo lambda build` over the
# function crates (one dependency graph, features unified once), into
# target/lambda/$(ARCH)/<binary>/bootstrap. The stamp depends on every file those crates
# are built from, so a change anywhere else (this Makefile, the README, a test, infra/)
# does not even ask cargo; a change to one function relinks that bootstrap only.
FUNCTIONS      := $(notdir $(wildcard functions/*))
LAMBDA_DIR     := target/lambda/$(ARCH)
LAMBDA_SOURCES := Cargo.toml Cargo.lock $(shell find shared/Cargo.toml shared/catalogue.json shared/src functions -type f 2>/dev/null)

$(LAMBDA_DIR)/.built: $(LAMBDA_SOURCES) | $(VENV)/.installed
	@echo "==> cargo lambda build --release ($(ARCH)): the $(words $(FUNCTIONS)) functions in one run"
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" $(CARGO) lambda build --release --locked \
		--lambda-dir $(LAMBDA_DIR) $(if $(filter arm64,$(ARCH)),--arm64,) $(addprefix -p ,$(FUNCTIONS))
	@touch $@

# `sam build` (BuildMethod: makefile, built in source) asks for one function at a time,
# as `build-<LogicalId>` with ARTIFACTS_DIR set: FooBarFunction is the binary foo-bar.
build-%Function: $(LAMBDA_DIR)/.built
	@binary=$$(echo '$*' | sed -E 's/([a-z0-9])([A-Z])/\1-\2/g' | tr '[:upper:]' '[:lower:]'); \
	if [ ! -f "$(LAMBDA_DIR)/$$binary/bootstrap" ]; then \
		echo "$*Function: no bootstrap at $(LAMBDA_DIR)/$$binary (is functions/$$binary a function crate?)" >&2; exit 1; \
	fi; \
	cp "$(LAMBDA_DIR)/$$binary/bootstrap" "$${ARTIFACTS_DIR:?sam build sets ARTIFACTS_DIR}/bootstrap"

# make test packages for this machine (ARCH=$(HOST_ARCH)): MiniStack runs those bootstraps.
# The arm64 cross build that deploys to AWS is `make package` (not part of make test).
# make test, phase by phase: each phase prints its time as it ends, and the run ends with
# a table of them (infra/phase.sh, target/phases.tsv), so a slow phase shows in CI's log.
# The installs (pip, npm, apt-get: network and unpacking) run beside the workspace build
# (the compiler), not before it; the two stacks' tests run at once (their lines in the log
# prefixed `moto |` and `ministack |`): the suites mostly wait on workflows and timers.
PHASE := bash infra/phase.sh run
TEST_LOGS := target/test-output.log target/test-output-own-stacks.log target/test-output-ministack.log
test: ARCH := $(HOST_ARCH)
test: ## Everything: lints, the deployable build, unit tests, and the integration tests (the ops console's in a headless Chromium) on a moto stack and (end-to-end, API, contract, events, IAM, chaos) a MiniStack stack
	@bash infra/phase.sh reset
	@$(PHASE) "tools (5 venvs, npm, chromium) beside the workspace build" \
		$(MAKE) --no-print-directory -j7 venv ministack-venv contract-venv lint-tools browser build
	@$(PHASE) "lint: fmt, clippy, template, definition, OpenAPI" $(MAKE) --no-print-directory lint
	@$(PHASE) "package: release bootstraps ($(ARCH)) and sam build" $(MAKE) --no-print-directory package
	@status=0; \
	( $(PHASE) "moto stack: every test (two lanes)" $(RUN_MOTO_TESTS) 2>&1 | sed -u 's/^/moto      | /' ) & moto=$$!; \
	trap 'kill $$moto 2>/dev/null' EXIT; \
	$(PHASE) "MiniStack stack: deploy, its suites, chaos run" $(RUN_MINISTACK_TESTS) 2>&1 | sed -u 's/^/ministack | /' || status=$$?; \
	wait $$moto || status=$$?; \
	trap - EXIT; \
	grep -h '^skipped on ' $(TEST_LOGS) | sort -u || true; \
	bash infra/phase.sh table; \
	cat $(TEST_LOGS) | awk \
		'/^test result:/ { passed += $$4; failed += $$6 } /^skipped on / { skipped += 1 } \
		END { printf "tests: %d passed, %d failed, %d skipped\n", passed - skipped, failed, skipped }'; \
	exit $$status

lint-tools: ## Install the offline checks' pinned tools (.venv-lint, .venv-checkov, asl-validator, cargo-deny)
	@bash infra/lint.sh --install-only
	@bash infra/deny.sh --install-only

# Every test on a moto stack of its own (make test runs it first).
# Two lanes at once (infra/test-lanes.sh): the suites with stacks of their own beside
# everything else on the shared one; their logs are target/test-output{,-own-stacks}.log.
RUN_MOTO_TESTS = $(LOCAL) exec --dir $(TEST_STACK) --free-ports --no-reload -- \
	env CARGO=$(CARGO) bash infra/test-lanes.sh

# What of the integration tests runs on MiniStack (make test runs it after the moto run).
MINISTACK_TESTS ?= --test end_to_end --test api --test callers --test webhook --test recovery --test orderctl \
	--test iam_enforcement --test contract --test events --test chaos
RUN_MINISTACK_TESTS = bash -o pipefail -c '$(LOCAL) exec --emulator ministack --dir $(MINISTACK_TEST_STACK) --free-ports -- \
	$(CARGO) test -p system-tests --locked --no-fail-fast $(MINISTACK_TESTS) 2>&1 \
	| tee target/test-output-ministack.log'

test-ministack: ARCH := $(HOST_ARCH)
test-ministack: venv ministack-venv contract-venv build package ## The suites that run on MiniStack (end-to-end, API, contract, events, IAM, the 100-order chaos run; template.yaml deployed through its CloudFormation)
	@$(RUN_MINISTACK_TESTS)

chaos: venv build ## Orders under faults, an outage and crashes (PROFILE=storm: our own infrastructure throttled and down instead): proves none lost, none done twice, none rolled back for infrastructure trouble
	$(LOCAL) exec --dir $(CHAOS_STACK) --free-ports --no-reload -- target/debug/chaos --profile $(PROFILE) $(if $(CHAOS_ORDERS),--orders $(CHAOS_ORDERS))

# make bench measures what runs here: the bootstraps make package builds for this machine,
# beside a no-op lambda_runtime bootstrap built the same way (cargo lambda, release); then,
# on a local stack of its own, the work of BENCH_ORDERS orders of each kind, and its cost.
BENCH_RUNS ?= 20
BENCH_ORDERS ?= 3
bench: ARCH := $(HOST_ARCH)
bench: venv build package ## Cold start of every deployable bootstrap against a no-op floor (BENCH_RUNS starts each, default 20), a function's first invocation against a bare-SDK floor, then work and cost per order on a local stack (BENCH_ORDERS of each kind, default 3): tables, and JSON and Markdown in target/bench
	@# One build each: built together, cargo would unify their features and the no-op
	@# floor would carry the SDK floor's.
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" $(CARGO) lambda build --release --locked -p noop-bootstrap $(if $(filter arm64,$(ARCH)),--arm64,)
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" $(CARGO) lambda build --release --locked -p sdk-floor-bootstrap $(if $(filter arm64,$(ARCH)),--arm64,)
	$(LOCAL) exec --dir target/bench-stack --free-ports --no-reload -- \
		target/debug/bench --runs $(BENCH_RUNS) --orders $(BENCH_ORDERS)

# The deterministic simulator (infra/simulator): SEEDS seeds from SEED on, ORDERS orders
# each, run at once in one simulated world per seed, our infrastructure failing in
# windows, resumers racing and AwaitDelivery's copies arriving late; optimised build. make test runs 10,000 orders over 100
# seeds in its debug build (infra/simulator/tests).
SEED ?= 1
SEEDS ?= 100
ORDERS ?= 1000
simulate: ## The saga on a simulated clock with seeded faults, interleavings and racing resumers (SEEDS seeds of ORDERS orders each, default 100 x 1000): orders per second, and for a broken invariant the replay command and the trace of the order that broke
	$(CARGO) run --release --locked -p simulator --bin simulate -- --seed $(SEED) --seeds $(SEEDS) --orders $(ORDERS) --infrastructure-faults --racing-resumers --late-callback-copies

clean: down ## Stop the stack and remove build output and installed tools
	rm -rf target $(VENV) .venv-lint .venv-checkov .venv-ministack .venv-openapi infra/node_modules .local .aws-sam
