# Entry points: `make demo` (set up, build the LFW benchmark, embed it) and `make test`.
PYTHON ?= python3.11
VENVS := .venvs
SERVICES := insightface dlib facenet vggface2 align
INVOKE := $(VENVS)/tasks/bin/invoke
WORKSPACE ?= workspace

.PHONY: setup images demo test bench clean-venvs

setup: $(VENVS)/tasks/.ready $(SERVICES:%=$(VENVS)/%/.ready)

# One virtualenv per service, rebuilt when its pinned requirements change.
$(VENVS)/tasks/.ready: requirements.txt
	rm -rf $(VENVS)/tasks && $(PYTHON) -m venv $(VENVS)/tasks
	$(VENVS)/tasks/bin/pip install -q -r requirements.txt
	touch $@

$(VENVS)/%/.ready: services/%/requirements.txt
	rm -rf $(VENVS)/$* && $(PYTHON) -m venv $(VENVS)/$*
	$(VENVS)/$*/bin/pip install -q -r services/$*/requirements.txt
	touch $@

# Every service's Docker image (docker/<service>.Dockerfile). Needs a Docker engine (as root,
# docker/start-engine.sh starts one); base images are made offline where no registry answers.
images: $(VENVS)/tasks/.ready
	$(INVOKE) images.build

demo: setup
	$(INVOKE) data.benchmark --workspace $(WORKSPACE)
	$(INVOKE) align.prealigned --workspace $(WORKSPACE)
	$(INVOKE) embed.run --models model4_insightface,model5_dlib --workspace $(WORKSPACE)

test: setup
	$(VENVS)/tasks/bin/python -m pytest -q tests

bench: setup
	$(INVOKE) bench.lfw-pairs --model model4_insightface --workspace $(WORKSPACE)
	$(INVOKE) bench.lfw-pairs --model model5_dlib --workspace $(WORKSPACE)
	$(INVOKE) bench.lfw-pairs --model model5_dlib_chip --workspace $(WORKSPACE)

clean-venvs:
	rm -rf $(VENVS)
