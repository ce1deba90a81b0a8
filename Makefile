# walship — see README.md.
#
#   make demo    archive WAL from a throwaway PostgreSQL into a file:// repository
#   make test    install what the tests need (PostgreSQL 15, MinIO, Kubernetes, the region images), then vet and run every test
#   make images  build the images a region runs (scripts/images.sh): walship, pause, CoreDNS, the provisioner
#   make region  start a region (scripts/region.sh up $(REGION) --nodes $(NODES)); scripts/region.sh down a stops it
#   make generate  regenerate deepcopy, CRDs and RBAC from api/v1 and controllers/ (controller-gen)
#   make bench   compare walship with pgBackRest and barman-cloud: WAL archive and restore
#                (bench/run.sh), then full backup and restore (bench/backup.sh)

SHELL := /bin/bash
.SHELLFLAGS := -euo pipefail -c
.DEFAULT_GOAL := build

GO          ?= go
BIN         := bin
WALSHIP     := $(BIN)/walship
TEST_FLAGS  ?=
TEST_TIMEOUT ?= 25m
PKGS        ?= ./...
BENCH_PARTS ?= wal backup

.PHONY: build tools generate test demo bench fmt vet clean images region

# Two binaries: walship, and walship-k8s with the Kubernetes code, which
# would triple the start-up CPU of every archive_command call (cmd/walship/kube.go).
build:
	CGO_ENABLED=0 $(GO) build -o $(WALSHIP) ./cmd/walship
	CGO_ENABLED=0 $(GO) build -o $(BIN)/walship-k8s ./cmd/walship-k8s

# tools installs PostgreSQL 15 (apt) and builds MinIO, etcd, kube-apiserver and
# controller-gen (Go module proxy) when missing.
tools:
	bash scripts/install-deps.sh
	bash scripts/ensure-minio.sh >/dev/null
	bash scripts/ensure-kube.sh >/dev/null
	bash scripts/ensure-controller-gen.sh >/dev/null

REGION ?= a
NODES  ?= 1

images: build
	bash scripts/images.sh >/dev/null

region: images
	bash scripts/region.sh up $(REGION) --nodes $(NODES)

# generate rewrites api/v1/zz_generated.deepcopy.go, config/crd/bases and
# config/rbac/role.yaml; a test fails when they are stale.
generate:
	bash scripts/generate.sh

test: tools build images
	$(GO) vet $(PKGS)
	minio="$$(bash scripts/ensure-minio.sh)"; \
	kube="$$(bash scripts/ensure-kube.sh)"; \
	cg="$$(bash scripts/ensure-controller-gen.sh)"; \
	AWS_EC2_METADATA_DISABLED=true WALSHIP_MINIO="$$minio" KUBEBUILDER_ASSETS="$$kube" CONTROLLER_GEN="$$cg" \
		$(GO) test $(PKGS) -count=1 -timeout $(TEST_TIMEOUT) $(TEST_FLAGS)

demo: build
	bash scripts/install-deps.sh
	bash scripts/demo.sh

# BENCH_PARTS: wal (bench/run.sh) and/or backup (bench/backup.sh), run in the order given.
bench: build
	bash scripts/install-deps.sh --bench
	minio="$$(bash scripts/ensure-minio.sh)"; \
	for part in $(BENCH_PARTS); do \
		case $$part in \
		wal) AWS_EC2_METADATA_DISABLED=true WALSHIP_MINIO="$$minio" bash bench/run.sh ;; \
		backup) AWS_EC2_METADATA_DISABLED=true WALSHIP_MINIO="$$minio" bash bench/backup.sh ;; \
		*) echo "make bench: unknown part '$$part' in BENCH_PARTS (wal, backup)" >&2; exit 2 ;; \
		esac; \
	done

fmt:
	gofmt -s -w $$($(GO) list -f '{{.Dir}}' ./...)

vet:
	$(GO) vet $(PKGS)

clean:
	rm -f $(WALSHIP) $(BIN)/walship-k8s
	$(GO) clean -testcache
