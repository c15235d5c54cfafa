# amlsim — the two commands a user needs are `make run` and `make test`;
# both prepare the host (packages, libvirt daemons, guest image) first.

GO      ?= go
BIN     := bin/amlsim
HOME_DIR ?= $(or $(AMLSIM_HOME),$(HOME)/.amlsim)
E2E_TIMEOUT ?= 70m

.PHONY: all build test unit clients e2e studio-assets image host run run-fake bench vet cgo-free clean

all: build

build:
	$(GO) build -o $(BIN) ./cmd/amlsim

# host installs what amlsim needs and starts libvirt (see fixtures/host/setup.sh).
host:
	bash fixtures/host/setup.sh

# image builds the default guest image once per recipe (cached by its hash).
image: build
	./$(BIN) image build

vet: cgo-free
	$(GO) vet ./...

# cgo-free checks that amlsim builds without cgo, for Linux and macOS, and
# that the CLI's tests pass in that build: only hypervisor/libvirt needs
# cgo (it is empty without), and such a build lacks that driver.
cgo-free:
	CGO_ENABLED=0 $(GO) vet ./...
	GOOS=darwin CGO_ENABLED=0 $(GO) build -o /dev/null ./cmd/amlsim
	CGO_ENABLED=0 $(GO) test -short -count=1 ./cmd/amlsim/ ./hypervisor/...

unit:
	$(GO) test -short -count=1 ./...

# AMLSIM_E2E_REQUIRED turns "no image" or "no libvirtd" into failures: the
# prerequisites have just provided them.
e2e: host image
	AMLSIM_E2E_REQUIRED=1 $(GO) test -count=1 -timeout $(E2E_TIMEOUT) -v ./e2e/...

# clients runs the tests that drive real client programs (Debian's az,
# the shells' completion) against a server on the fake driver, requiring
# the programs the set-up installed (unit skips them where missing).
clients: host
	AMLSIM_E2E_REQUIRED=1 $(GO) test -count=1 -run '^(TestAz|TestCLICompletion)' ./cmd/amlsim/

test: host vet unit clients e2e

# studio-assets re-vendors the studio's JavaScript from npm: npm ci checks
# the package against the lockfile's integrity, then the file is copied in
# and its sum recorded for the test that guards it. Needs npm and the
# registry; make test does not run it.
studio-assets:
	cd sim/studio/assets && npm ci --ignore-scripts --no-audit --no-fund
	cp sim/studio/assets/node_modules/htmx.org/dist/htmx.min.js sim/studio/assets/static/
	cp sim/studio/assets/node_modules/htmx.org/LICENSE sim/studio/assets/static/LICENSE.htmx
	sha256sum sim/studio/assets/static/htmx.min.js | cut -d' ' -f1 > sim/studio/assets/static/htmx.min.js.sha256
	rm -rf sim/studio/assets/node_modules

run: host image
	./$(BIN) serve --home $(HOME_DIR)

run-fake: build
	./$(BIN) serve --home $(HOME_DIR) --driver fake

# bench reports API latency, then create/start/restart times with and
# without fast create on real VMs (BENCH_ROUNDS creates of each, medians),
# idle RSS and disk per instance: about 10 minutes under TCG.
BENCH_ROUNDS ?= 3
bench: host image
	$(GO) test -run '^$$' -bench . -benchtime 2000x ./sim/api/ ./cmd/amlsim/
	AMLSIM_E2E_REQUIRED=1 AMLSIM_E2E_BENCH=$(BENCH_ROUNDS) $(GO) test -count=1 -timeout 60m -v -run 'TestCreateTimeFastVersusBoot' ./e2e/

clean:
	rm -rf bin
