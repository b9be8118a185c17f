# The two commands a new user needs (README.md): `make demo` and `make test`; `make lint` for contributors.
# Each creates .venv and installs the package with the pinned, tested versions of constraints.txt.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DEMO := runs/demo

.PHONY: install demo test lint clean gpu-check

install: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -c constraints.txt -e '.[test,coco]'
	touch $@

# A user's whole first run on the generated SynthVOC default (CPU): pretrain a context encoder with the mini
# recipe and the random baseline, fine-tune FCN-32s segmentation on both, print the table and the margin
# beside the seed-to-seed spread of the one mini table's runs (results/mini/parts: the same recipes, 3 seeds).
demo: install
	rm -rf $(DEMO)/records
	$(BIN)/bench pretrain --method context_encoder --profile mini --out $(DEMO)/context_encoder --overwrite
	$(BIN)/bench show $(DEMO)/context_encoder
	$(BIN)/bench pretrain --method random --profile mini --out $(DEMO)/random --overwrite
	$(BIN)/bench eval --task seg --profile mini --weights $(DEMO)/context_encoder/encoder.pt --out $(DEMO)/records
	$(BIN)/bench eval --task seg --profile mini --weights $(DEMO)/random/encoder.pt --out $(DEMO)/records
	$(BIN)/bench table --results $(DEMO)/records --tasks seg
	$(BIN)/bench compare --results $(DEMO)/records --task seg --spread-from results/mini/parts

test: install
	$(BIN)/python -m pytest -q --durations=15

# ruff, then the layer and no-cycle contracts of pyproject.toml's [tool.importlinter] (no cache folder left).
lint: install
	$(BIN)/ruff check ssl_bench tests
	$(BIN)/lint-imports --no-cache

clean:
	rm -rf $(VENV) runs .pytest_cache

# The one GPU check (README, Performance): the gpu-marked tests, bench speed on CUDA (bf16, channels_last,
# compile, the loader at the machine's worker count) and the paper schedules projected to hours on that GPU;
# one record, one table, a few minutes. Stops with a message where there is no GPU.
gpu-check: install
	$(BIN)/bench speed --gpu-report
