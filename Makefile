# Shortcuts for the scripts; each target is one command the README also gives.
.PHONY: demo test chaos chaos-smoke

demo:
	bash scripts/demo

test:
	bash scripts/test

# Every experiment of chaos/, each its own `repeat` times, on a lab of their own
# (block 70, /tmp/drd-chaos-70); results in chaos/results/.
chaos:
	bash scripts/setup
	.venv/bin/drd chaos run --all

chaos-smoke:
	bash scripts/setup
	.venv/bin/drd chaos run --smoke
