# Two commands do all the set-up on a fresh machine:
#   make demo   # creates .venv, installs movierec, benchmarks every model on ML-100K
#   make test   # creates .venv, installs movierec[dev,torch], runs the test suite
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

# Use the team's local copies of the releases when they are beside the checkout; elsewhere
# movierec downloads them from GroupLens, verifies the checksum and caches them.
ifneq ($(wildcard ../shared/datasets/ml-100k/u.data),)
export MOVIEREC_DATA_DIR ?= $(abspath ../shared/datasets)
endif

.PHONY: demo test lint docs serve clean

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[dev,torch,numba,ann,serve,plots,graph,tune,store,docs,slim,rank]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/movierec benchmark --dataset ml-100k --models all --valid-size 0.1 --out runs/ml-100k

# The default model for a movie site (docs/serving.md, "Which model to serve"): EASE on ML-100K.
models/ease/model.json: | $(STAMP)
	$(BIN)/movierec train --dataset ml-100k --model ease --param lambda=500 --out models/ease

serve: models/ease/model.json
	$(BIN)/movierec serve models/ease

test: $(STAMP)
	$(BIN)/python -m pytest -q -n 2

# ruff (style, imports, bugbear, docstrings: Google convention) and mypy on src/movierec
# (pyproject.toml's [tool.mypy] names the files).
lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/mypy

# The documentation site (mkdocs.yml, docs/) into site/; --strict fails on a broken link or reference.
docs: $(STAMP)
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict --site-dir site

clean:
	rm -rf $(VENV) runs models .pytest_cache .mypy_cache
