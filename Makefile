# Terminal orders: the two commands a newcomer needs are `make demo` and `make test`.
# Everything they need (pinned Python tools in .venv/, .venv-lint/ and .venv-checkov/,
# asl-validator in infra/node_modules/) is installed by the targets themselves.

SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

PYTHON     ?= python3
VENV       := .venv
STACK_DIR  ?= .local/stack
TEST_STACK ?= target/test-stack
CHAOS_STACK ?= target/chaos-stack
CHAOS_ORDERS ?= 1000
CARGO      ?= cargo
LOCAL      := target/debug/local-stack

# Ports of the development stack (make up); make test always picks free ones.
export AWS_PORT         ?= 4599
export MOTO_SERVER_PORT ?= 4598
export LAMBDA_PORT      ?= 9099

.PHONY: help venv build up down status verify demo reconcile lint package test chaos clean

help: ## Show the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

$(VENV)/.installed: infra/requirements-stack.txt infra/constraints-stack.txt
	@echo "==> installing the local stack's pinned tools into $(VENV)"
	@$(PYTHON) -m venv $(VENV)
	@$(VENV)/bin/python -m pip install --quiet --require-virtualenv -r infra/requirements-stack.txt
	@touch $@

venv: $(VENV)/.installed ## Install moto and cargo-lambda (pinned) into .venv

build: ## Build the whole workspace (functions, router, local-stack, tests)
	$(CARGO) build --workspace --all-targets --locked

up: venv build ## Start the local stack (AWS emulator, invoke router, partner simulator, cargo lambda watch)
	$(LOCAL) up --dir $(STACK_DIR)

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

reconcile: ## Run the reconciler once against the `make up` stack (GRACE seconds, default 900)
	@[ -x target/debug/orderctl ] || $(CARGO) build --locked --quiet --bin orderctl
	target/debug/orderctl --env-file $(STACK_DIR)/stack.env reconcile --grace-seconds $(or $(GRACE),900)

lint: ## Formatting, clippy, and the offline template / ASL checks
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets --locked -- -D warnings
	bash infra/lint.sh

package: venv ## Build what deploys: sam build (rust-cargolambda, release) of every function; ARCH=arm64|x86_64
	bash infra/package.sh

test: venv lint build package ## Everything: lints, the deployable build, unit tests, and the integration tests on a stack of their own
	@status=0; \
	$(LOCAL) exec --dir $(TEST_STACK) --free-ports --no-reload -- \
		$(CARGO) test --workspace --locked --no-fail-fast 2>&1 | tee target/test-output.log || status=$$?; \
	awk '/^test result:/ { passed += $$4; failed += $$6 } \
		END { printf "tests: %d passed, %d failed\n", passed, failed }' target/test-output.log; \
	exit $$status

chaos: venv build ## Orders (CHAOS_ORDERS) under faults, an outage and crashes: proves none lost, none done twice
	$(LOCAL) exec --dir $(CHAOS_STACK) --free-ports --no-reload -- target/debug/chaos --orders $(CHAOS_ORDERS)

clean: down ## Stop the stack and remove build output and installed tools
	rm -rf target $(VENV) .venv-lint .venv-checkov infra/node_modules .local .aws-sam
