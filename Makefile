# Developer entry points. The build itself is tools/build_inplace.sh (or pip install -e .).
.PHONY: docs test build

build:
	tools/build_inplace.sh

test:
	scripts/test.sh

docs:
	scripts/docs.sh
