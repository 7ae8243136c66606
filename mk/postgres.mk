# PostgreSQL for the operations suite (tests/operations start and stop their own server as an unprivileged
# user): the distribution's server packages. The single-machine stack needs none of it (SQLite by default).
SETUP_TARGETS += $(VENV)/.postgres-installed

$(VENV)/.postgres-installed: | $(VENV)/.installed
	@if ! command -v initdb >/dev/null 2>&1 && ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then \
		if [ "$$(id -u)" = 0 ]; then apt-get update -qq && apt-get install -y -qq postgresql; \
		else sudo apt-get update -qq && sudo apt-get install -y -qq postgresql; fi; \
	fi
	touch $@
