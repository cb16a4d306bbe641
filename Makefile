# Shortcuts for the scripts the README gives.
.PHONY: demo test sample-data model screenshots benchmarks

demo:
	scripts/demo

test:
	scripts/test

sample-data:
	scripts/setup.sh && .venv/bin/python scripts/make_sample_data.py

model:
	scripts/setup.sh && .venv/bin/python scripts/train_default_model.py

screenshots:
	scripts/setup.sh --test && xvfb-run -a -s "-screen 0 1920x1200x24" .venv/bin/python scripts/make_screenshots.py
