# facegan: the three stages and the chores around them. `make help` lists the targets.
# Everything builds in release (tests too), so Burn runs at full speed and one build serves all.

SHELL := /bin/bash
CARGO ?= cargo
BIN := target/release/facegan
CUDA_BIN := target/cuda/release/facegan
CUDARC_CUDA_VERSION ?= 13000

DATA ?=
SHARD ?= data/faces.shard
SIZE ?= 96x80
CROP ?= none
RUN ?= runs/default
PRESET ?=
EPOCHS ?=
MINUTES ?=
DEVICE ?= auto
N ?= 10000

# A CUDA device needs the binary built with the `cuda` feature (kept in target/cuda).
ifeq ($(DEVICE),cuda)
  FACEGAN := $(CUDA_BIN)
  BUILD := build-cuda
else
  FACEGAN := $(BIN)
  BUILD := build
endif

.PHONY: help build build-cuda test check check-seed check-fid check-export fuzz fmt preprocess train eval demo bench-preprocess bench-train bench-presets bench-swd bench-fid bench-parallel clean-demo quality-runs quality-report

help:
	@echo "make build                      release build (CPU)"
	@echo "make build-cuda                 release build with burn-cuda (target/cuda)"
	@echo "make test                       the whole test suite"
	@echo "make check                      rustfmt and clippy (the cuda feature on), as CI runs them"
	@echo "make preprocess DATA=DIR [SHARD=$(SHARD)] [SIZE=$(SIZE)] [CROP=$(CROP)]"
	@echo "make train [SHARD=..] [RUN=$(RUN)] [PRESET=..] [EPOCHS=..] [MINUTES=..] [DEVICE=$(DEVICE)]"
	@echo "                                 PRESET defaults to the recommended preset for the shard's size"
	@echo "make eval [RUN=$(RUN)] [DEVICE=$(DEVICE)]"
	@echo "make demo                       synth -> preprocess -> train (CPU, minutes) -> eval"
	@echo "make check-fid                   FID/KID/precision-recall against pytorch-fid and clean-fid (PyPI)"
	@echo "make bench-fid                   Inception features img/s, facegan vs pytorch-fid (after check-fid)"
	@echo "make check-export [EXPORT_CHECK_RUN=runs/demo]  the exported generator in PyTorch (tools/facegan_torch.py) against facegan sample"
	@echo "make fuzz [FUZZ_SECONDS=600]     coverage-guided fuzzing of the shard, state.json, config and image parsers and the cluster messages"
	@echo "make check-seed                 the seed step against the tutorial's Keras code (tensorflow-cpu)"
	@echo "make quality-runs [JOBS=..] [THREADS=..] [JOBFILE=..]  the long CPU runs behind docs/results.md, resumable (experiments/)"
	@echo "make quality-report [JOBFILE=..]          facegan eval of each finished run, then the chart and grids (experiments/)"
	@echo "make bench-preprocess | bench-train [DEVICE=cpu|cuda] | bench-presets | bench-swd | bench-parallel [PRESET=..] [DEVICES=cpu:2]"

build:
	$(CARGO) build --release -p facegan

build-cuda:
	CUDARC_CUDA_VERSION=$(CUDARC_CUDA_VERSION) CARGO_TARGET_DIR=target/cuda $(CARGO) build --release -p facegan --features cuda

test:
	$(CARGO) test --release --workspace

fmt:
	$(CARGO) fmt --all

# Coverage-guided fuzzing of everything facegan parses from disk or from its cluster ports (the
# orchestrator's and the nodes' messages), on stable Rust: LLVM's
# SanitizerCoverage counters (a separate build in target/fuzz), FUZZ_SECONDS per target.
# Crashing, aborting and hanging inputs are kept in data/fuzz/crashes/TARGET/.
FUZZ_SECONDS ?= 600
FUZZ_TARGETS ?= all
SANCOV := -Cpasses=sancov-module -Cllvm-args=-sanitizer-coverage-level=3 -Cllvm-args=-sanitizer-coverage-inline-8bit-counters
# (--target keeps the flags off build scripts and proc macros, which would not link.)
HOST := $(shell rustc -vV | sed -n 's/^host: //p')
fuzz:
	RUSTFLAGS="$(SANCOV)" CARGO_TARGET_DIR=target/fuzz $(CARGO) build --release -p facegan-fuzz --target $(HOST)
	target/fuzz/$(HOST)/release/facegan-fuzz --seconds $(FUZZ_SECONDS) $(FUZZ_TARGETS)

# The seed preset against the tutorial's own Keras code (tensorflow-cpu from PyPI, into .venv on
# first use): forward outputs, losses and weights after 3 steps; one JSON line.
SEED_CHECK_DIR ?= data/seed-check
check-seed:
	$(CARGO) run --release -q -p facegan-bench --example seed_check_dump -- $(SEED_CHECK_DIR)
	"$$(bash tools/venv.sh tensorflow-cpu)" tools/keras_seed_oracle.py $(SEED_CHECK_DIR)

# FID, KID and precision/recall against pytorch-fid and clean-fid (torch, torchvision,
# pytorch-fid, clean-fid and scipy from PyPI, into .venv on first use): pytorch-fid's network with
# seeded weights saved like its real file, facegan loading that file; one JSON line.
FID_FACES ?= ../shared/datasets/celeba-8k
FID_CHECK_DIR ?= data/fid-check
FID_CHECK_N ?= 64
FID_CHECK_E2E ?= 2100
# The exported generator in PyTorch (torch, safetensors, numpy and pillow from PyPI, into .venv on
# first use): tools/facegan_torch.py against facegan sample on the same latents; one JSON line.
EXPORT_CHECK_RUN ?= runs/demo
EXPORT_CHECK_DIR ?= data/export-check
check-export: build
	"$$(bash tools/venv.sh torch safetensors numpy pillow)" tools/check_export.py $(BIN) $(EXPORT_CHECK_RUN) $(EXPORT_CHECK_DIR)

check-fid:
	$(CARGO) build --release -q -p facegan-inception --example fid_check
	"$$(bash tools/venv.sh torch torchvision pytorch-fid clean-fid scipy)" tools/check_fid.py $(FID_FACES) $(FID_CHECK_DIR) target/release/examples/fid_check $(FID_CHECK_N) $(FID_CHECK_E2E)

# Inception features per second, facegan against pytorch-fid's network on the same faces
# (after make check-fid, which makes the test network and the PNG faces).
BENCH_FID_N ?= 256
bench-fid:
	$(CARGO) build --release -q -p facegan-inception --example fid_check
	"$$(bash tools/venv.sh torch torchvision pytorch-fid clean-fid scipy)" tools/bench_fid.py $(FID_CHECK_DIR) target/release/examples/fid_check $(BENCH_FID_N)

# clippy with the `cuda` feature on: the CPU code and the CUDA backend's code both type-check and
# lint, without build-cuda's separate release build of every crate (target/cuda).
check:
	$(CARGO) fmt --all -- --check
	CUDARC_CUDA_VERSION=$(CUDARC_CUDA_VERSION) $(CARGO) clippy --release --workspace --all-targets --features facegan/cuda -- -D warnings

preprocess: build
	@if [ -z "$(DATA)" ]; then echo "usage: make preprocess DATA=path/to/img_align_celeba [SHARD=$(SHARD)] [SIZE=$(SIZE)]"; exit 2; fi
	$(BIN) preprocess --input "$(DATA)" --output "$(SHARD)" --size $(SIZE) --crop $(CROP)

train: $(BUILD)
	$(FACEGAN) train --data "$(SHARD)" --run "$(RUN)" $(if $(PRESET),--preset $(PRESET)) --device $(DEVICE) $(if $(EPOCHS),--epochs $(EPOCHS)) $(if $(MINUTES),--minutes $(MINUTES))

eval: $(BUILD)
	$(FACEGAN) eval --run "$(RUN)" --device $(DEVICE) --n $(N)

demo: build
	@bash tools/demo.sh

bench-preprocess: build
	@bash tools/bench-preprocess.sh

bench-train: $(BUILD)
	@DEVICE=$(if $(filter auto,$(DEVICE)),cpu,$(DEVICE)) FACEGAN_BIN=$(FACEGAN) bash tools/bench-train.sh

# Quiet-machine training speed of each preset (img/s; a growing preset also per phase): what turns images shown into minutes
# when runs that shared the CPU are compared (docs/results.md).
bench-presets: build
	@for p in $(or $(PRESETS),seed seed48 celeba48 faces48 faces96 grow96 demo); do \
	  $(BIN) bench-train --preset $$p --warmup 2 --steps 15 2>/dev/null | python3 -c 'import json,sys; d=json.load(sys.stdin); print(json.dumps({"preset": d["preset"], "batch": d["batch"], "img_per_s": round(d["img_per_s"], 1), **({"phases": [{"size": p["size"], "fading": p["fading"], "img_per_s": round(p["img_per_s"], 1)} for p in d["phases"]]} if "phases" in d else {})}))'; \
	done

bench-swd: build
	$(BIN) bench-swd --n 10000

# Data-parallel training (docs/parallel.md): img/s of one device, then of 1 and N peers of
# --devices, with the all-reduce time per step, in the same run.
bench-parallel: build
	@for d in single cpu:1 $(or $(DEVICES),cpu:2); do \
	  if [ $$d = single ]; then args="--device cpu"; else args="--devices $$d"; fi; \
	  $(BIN) bench-train $(if $(PRESET),--preset $(PRESET)) $$args --warmup 2 --steps 10 2>/dev/null \
	  | python3 -c 'import json,sys; d=json.load(sys.stdin); print(json.dumps({k: (round(v, 3) if isinstance(v, float) else v) for k, v in d.items() if k in ("preset", "peers", "batch", "img_per_s", "ms_per_step_mean", "all_reduce_ms_per_step", "all_reduce_share", "gradient_bytes_per_step")} | {"devices": "'$$d'"}))'; \
	done

# The long CPU runs behind docs/results.md (the 48x40 curves and ablations, the 96x80
# comparison): a queue that resumes where it stopped; see experiments/README.md.
quality-runs: build
	FACEGAN_BIN=$(BIN) bash experiments/quality-runs.sh $(JOBFILE)

# Then: score each run that reached its count, draw docs/results' chart and grids, print the rows.
quality-report: build
	FACEGAN_BIN=$(BIN) $$(tools/venv.sh matplotlib pillow) experiments/quality_report.py $(JOBFILE)

clean-demo:
	rm -rf data/demo runs/demo
