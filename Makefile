# Terminal orders: the two commands a newcomer needs are `make demo` and `make test`.
# Everything they need (pinned Python tools in .venv/ and .venv-lint/, asl-validator in
# infra/node_modules/) is installed by the targets themselves.

SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

PYTHON     ?= python3
VENV       := .venv
STACK_DIR  ?= .local/stack
TEST_STACK ?= target/test-stack
CARGO      ?= cargo
LOCAL      := target/debug/local-stack

# Ports of the development stack (make up); make test always picks free ones.
export AWS_PORT         ?= 4599
export MOTO_SERVER_PORT ?= 4598
export LAMBDA_PORT      ?= 9099

.PHONY: help venv build up down status verify demo lint test clean

help: ## Show the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-8s %s\n", $$1, $$2}'

$(VENV)/.installed: infra/requirements-stack.txt infra/constraints-stack.txt
	@echo "==> installing the local stack's pinned tools into $(VENV)"
	@$(PYTHON) -m venv $(VENV)
	@$(VENV)/bin/python -m pip install --quiet --require-virtualenv -r infra/requirements-stack.txt
	@touch $@

venv: $(VENV)/.installed ## Install moto and cargo-lambda (pinned) into .venv

build: ## Build the whole workspace (functions, router, local-stack, tests)
	$(CARGO) build --workspace --all-targets --locked

up: venv build ## Start the local stack (AWS emulator, invoke router, cargo lambda watch)
	$(LOCAL) up --dir $(STACK_DIR)

down: ## Stop exactly what `make up` started
	@[ -x $(LOCAL) ] || $(CARGO) build --locked --quiet --bin local-stack
	$(LOCAL) down --dir $(STACK_DIR)

status: ## Show the local stack's processes and endpoints
	@[ -x $(LOCAL) ] || $(CARGO) build --locked --quiet --bin local-stack
	@$(LOCAL) status --dir $(STACK_DIR) || true

verify: ## Check the running stack's resources against template.yaml
	$(LOCAL) verify --dir $(STACK_DIR)

demo: up ## Place an order and follow it to COMPLETED on the local stack
	$(LOCAL) demo --dir $(STACK_DIR)
	@echo "The stack keeps running: try GET $$(grep ^ORDERS_API_URL= $(STACK_DIR)/stack.env | cut -d= -f2)/orders/<id>; stop it with make down."

lint: ## Formatting, clippy, and the offline template / ASL checks
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets --locked -- -D warnings
	bash infra/lint.sh

test: venv lint build ## Everything: lints, unit tests, and the integration tests on a stack of their own
	@status=0; \
	$(LOCAL) exec --dir $(TEST_STACK) --free-ports --no-reload -- \
		$(CARGO) test --workspace --locked --no-fail-fast 2>&1 | tee target/test-output.log || status=$$?; \
	awk '/^test result:/ { passed += $$4; failed += $$6 } \
		END { printf "tests: %d passed, %d failed\n", passed, failed }' target/test-output.log; \
	exit $$status

clean: down ## Stop the stack and remove build output and installed tools
	rm -rf target $(VENV) .venv-lint infra/node_modules .local
