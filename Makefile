# cdcd. `make test` is the whole check: it starts PostgreSQL, kinesalite and
# local-kms under .cache/ (test/infra/up.sh), runs vet and the race-enabled
# tests against them, and stops them again, keeping the tests' exit status.
#
#   make test            everything, as CI runs it (.ci/run)
#   make test KEEP_INFRA=1   ... and leave the servers running afterwards
#   make test PKGS=./sink/...   only some packages
#   make infra-up        start the servers; then `. .cache/env` and go test
#   make infra-down      stop them
#   make lint            actionlint on .github/workflows, systemd-analyze verify on the unit
#   make build           bin/cdcd
#   make demo            servers + build + a live demo (test/infra/demo.sh)
#   make fuzz            every fuzz target for FUZZTIME each (default 5m)
#   make fuzz-short      every fuzz target for FUZZ_SHORT inputs each, as make test does
#   make soak            the soak test for SOAK_DURATION (10m), seed SOAK_SEED (test/soak)
#   make bench           the micro-benchmarks (go test -bench)
#   make bench-e2e       the end-to-end benchmark, flags in BENCH_E2E_FLAGS (BENCHMARKS.md)

SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := test

GO ?= go
PKGS ?= ./...
# -p 1: the integration packages share one PostgreSQL, kinesalite and
# local-kms, and several at once overload a 2-core machine (see README).
# -parallel 4: within a package, up to 4 tests that call t.Parallel run at
# once; most of their time is spent waiting (test/testenv says which tests
# may).
TEST_FLAGS ?= -race -count=1 -p 1 -parallel 4 -timeout 15m
VERSION ?= $(shell git describe --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -X main.version=$(VERSION)
INFRA := test/infra
ENVFILE := .cache/env
# Marks servers that `make test` started and so must stop.
OWNED := .cache/run/make-owned
# Built from the module proxy by `go run pkg@version`, into the usual Go
# caches; go.mod is not involved.
ACTIONLINT := github.com/rhysd/actionlint/cmd/actionlint@v1.7.12

# Fuzzing: how long each target runs under `make fuzz` and, after the tests,
# under `make test`; fuzz workers per target (the machine is shared with
# the integration servers); and how long minimizing a new input may take:
# go test's default of 60s lets a slow target (the config parser) spend a
# whole run minimizing instead of fuzzing. make test's budget is a count of
# inputs, not a duration: Go 1.26's fuzz coordinator can fail a target with
# a bare "context deadline exceeded" when a duration ends while a worker is
# busy, which a loaded CI machine hits; a count has no deadline to race.
FUZZTIME ?= 5m
FUZZ_SHORT ?= 10000x
FUZZ_PARALLEL ?= 2
FUZZ_MINIMIZE ?= 2s

.PHONY: test lint build demo soak infra-up infra-down bench bench-e2e fuzz fuzz-short fuzz-run fuzz-targets fmt fmt-check tidy-check vet docker clean distclean

# The servers stop at the end, pass or fail, if this run started them: not
# with KEEP_INFRA=1, nor when `make infra-up` started them (its developer
# stops them). Runs in one checkout take turns (a lock on .cache/run/users):
# tests use cluster-wide names (slots, streams) that concurrent runs against
# the same servers would fight over. Commands get the lock's descriptor
# closed (8>&-): a server a test restarts must not inherit, and so hold,
# the lock after the run.
test:
	@mkdir -p .cache/run; exec 8>>.cache/run/users; \
	if ! flock -n -x 8; then echo "make test: waiting for another make test in this checkout"; flock -x 8; fi; \
	if [ ! -f $(ENVFILE) ]; then touch $(OWNED); fi; \
	if [ -n "$(KEEP_INFRA)" ]; then rm -f $(OWNED); fi; \
	trap 'if [ -f $(OWNED) ]; then rm -f $(OWNED); bash $(INFRA)/down.sh; \
		else echo "make test: servers left running; make infra-down stops them"; fi' EXIT; \
	bash $(INFRA)/up.sh 8>&-; \
	set -a; . ./$(ENVFILE); set +a; \
	$(MAKE) --no-print-directory tidy-check fmt-check lint 8>&-; \
	echo "go vet $(PKGS)"; \
	$(GO) vet $(PKGS) 8>&-; \
	echo "go test $(TEST_FLAGS) $(PKGS)"; \
	SOAK_SEED=$${SOAK_SEED:-$(SOAK_SMOKE_SEED)} $(GO) test $(TEST_FLAGS) $(PKGS) 8>&-; \
	$(MAKE) --no-print-directory fuzz-short 8>&-

build:
	$(GO) build -trimpath -ldflags '$(LDFLAGS)' -o bin/cdcd ./cmd/cdcd

demo: infra-up build
	bash $(INFRA)/demo.sh

# The soak (test/soak): a seeded workload and seeded faults against the
# daemon for SOAK_DURATION, then the checks; its summary goes to
# .cache/soak/. Servers as for `make test` (test/infra/with-servers.sh).
# go test's timeout is the duration plus 10 minutes for setup and checks.
SOAK_DURATION ?= 10m
SOAK_SEED ?=
# make test's one-minute soak runs this seed (unless SOAK_SEED is set), so
# that a test run is reproducible: exploring seeds is what `make soak`,
# with a new one from the clock each time, is for.
SOAK_SMOKE_SEED ?= 630556002
soak:
	@secs=$$(awk -v d='$(SOAK_DURATION)' 'BEGIN { s = 0; \
		while (match(d, /^[0-9]+(\.[0-9]+)?(h|ms|m|s)/)) { t = substr(d, 1, RLENGTH); d = substr(d, RLENGTH + 1); \
			n = t + 0; u = t; sub(/^[0-9.]+/, "", u); s += n * (u == "h" ? 3600 : u == "m" ? 60 : u == "s" ? 1 : 0.001) } \
		if (d != "" || s <= 0) exit 1; printf "%d", s + 600 }') || \
		{ echo "make soak: SOAK_DURATION=$(SOAK_DURATION) is not a duration such as 10m, 90s or 1h30m"; exit 2; }; \
	KEEP_INFRA='$(KEEP_INFRA)' bash $(INFRA)/with-servers.sh $(GO) test -v -count=1 -run '^TestSoak$$' -timeout $${secs}s \
		./test/soak -soak.duration=$(SOAK_DURATION) $(if $(SOAK_SEED),-soak.seed=$(SOAK_SEED))

infra-up:
	rm -f $(OWNED)
	bash $(INFRA)/up.sh

infra-down:
	bash $(INFRA)/down.sh

# Benchmarks that need the servers run when .cache/env exists (make infra-up).
bench:
	@if [ -f $(ENVFILE) ]; then set -a; . ./$(ENVFILE); set +a; fi; \
	$(GO) test -run '^$$' -bench . -benchmem $(PKGS)

# The end-to-end benchmark (test/bench/e2e; method and results in
# BENCHMARKS.md) with bin/cdcd, servers as for `make test`
# (test/infra/with-servers.sh); BENCH_E2E_FLAGS='-big 2GB' for the large run.
BENCH_E2E_FLAGS ?=
bench-e2e: build
	KEEP_INFRA='$(KEEP_INFRA)' bash $(INFRA)/with-servers.sh $(GO) run ./test/bench/e2e -cdcd bin/cdcd $(BENCH_E2E_FLAGS)

# go test -fuzz takes one target of one package, so the fuzz targets run one
# after another. New inputs that widen coverage stay in the Go build cache;
# a failing input is written to the package's testdata/fuzz/FuzzXxx, where
# plain go test replays it: commit it with the fix.
fuzz:
	@$(MAKE) --no-print-directory fuzz-run FUZZ_FOR=$(FUZZTIME)

fuzz-short:
	@$(MAKE) --no-print-directory fuzz-run FUZZ_FOR=$(FUZZ_SHORT)

fuzz-run:
	@$(MAKE) --no-print-directory -s fuzz-targets | while read -r pkg target; do \
		echo "go test -fuzz $$target -fuzztime $(FUZZ_FOR) $$pkg"; \
		$(GO) test -run '^$$' -fuzz "^$$target\$$" -fuzztime $(FUZZ_FOR) \
			-fuzzminimizetime $(FUZZ_MINIMIZE) -parallel $(FUZZ_PARALLEL) $$pkg </dev/null; \
	done

# "package FuzzTarget" for every fuzz target in PKGS. Only packages whose
# tests declare a Fuzz function are compiled and listed, which is quick and
# runs no TestMain that wants the servers; go test -list then confirms each
# target, so a new one is picked up without editing this file.
fuzz-targets:
	@fuzzdirs=$$({ grep -rl --include='*_test.go' --exclude-dir=.cache --exclude-dir=.git --exclude-dir=testdata '^func Fuzz' . || true; } | \
		xargs -r -n1 dirname | sort -u); \
	[ -n "$$fuzzdirs" ] || exit 0; \
	pkgs=$$(comm -12 <($(GO) list $(PKGS) | sort) <($(GO) list $$fuzzdirs | sort)); \
	[ -n "$$pkgs" ] || exit 0; \
	$(GO) test -list '^Fuzz' $$pkgs | awk '/^Fuzz/ { names[n++] = $$1 } \
		/^ok / { for (i = 0; i < n; i++) print $$2, names[i]; n = 0 }'

fmt:
	$(GO) fmt $(PKGS)

# Every Go file in the tree, including test-only packages and testdata.
fmt-check:
	@echo "gofmt -l"; out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go' -not -path './.cache/*')); \
	if [ -n "$$out" ]; then echo "gofmt needed (make fmt):"; echo "$$out"; exit 1; fi

# go.mod and go.sum list exactly what the code imports.
tidy-check:
	@echo "go mod tidy -diff"; if ! out=$$($(GO) mod tidy -diff 2>&1); then echo "go.mod/go.sum are not tidy (run go mod tidy):"; echo "$$out"; exit 1; fi

vet:
	$(GO) vet $(PKGS)

# What is not Go: the workflow and the systemd unit. actionlint runs without
# shellcheck and pyflakes so that its verdict does not depend on what the
# machine has installed; -mod=mod because a -mod=vendor in GOFLAGS would
# stop `go run pkg@version`.
lint:
	@echo "actionlint"; GOFLAGS="$${GOFLAGS:-} -mod=mod" $(GO) run $(ACTIONLINT) -shellcheck= -pyflakes=
	@bash contrib/systemd/verify.sh

docker:
	docker build --build-arg VERSION=$(VERSION) --build-arg REVISION=$(shell git rev-parse HEAD 2>/dev/null || echo unknown) -t cdcd:$(VERSION) .

clean:
	rm -rf bin dist

# Stops the servers and removes everything test/infra installed or built.
distclean: clean
	bash $(INFRA)/down.sh
	rm -rf .cache
