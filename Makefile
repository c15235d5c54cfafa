# amlsim — the two commands a user needs are `make run` and `make test`;
# both prepare the host (packages, libvirt daemons, guest image) first.

GO      ?= go
BIN     := bin/amlsim
HOME_DIR ?= $(or $(AMLSIM_HOME),$(HOME)/.amlsim)
E2E_TIMEOUT ?= 70m

.PHONY: all build test unit e2e image host run run-fake bench vet clean

all: build

build:
	$(GO) build -o $(BIN) ./cmd/amlsim

# host installs what amlsim needs and starts libvirt (see fixtures/host/setup.sh).
host:
	bash fixtures/host/setup.sh

# image builds the default guest image once per recipe (cached by its hash).
image: build
	./$(BIN) image build

vet:
	$(GO) vet ./...

unit:
	$(GO) test -short -count=1 ./...

# AMLSIM_E2E_REQUIRED turns "no image" or "no libvirtd" into failures: the
# prerequisites have just provided them.
e2e: host image
	AMLSIM_E2E_REQUIRED=1 $(GO) test -count=1 -timeout $(E2E_TIMEOUT) -v ./e2e/...

test: host vet unit e2e

run: host image
	./$(BIN) serve --home $(HOME_DIR)

run-fake: build
	./$(BIN) serve --home $(HOME_DIR) --driver fake

bench:
	$(GO) test -run '^$$' -bench . -benchtime 2000x ./sim/api/ ./cmd/amlsim/

clean:
	rm -rf bin
