# The helpdesk gateway. `make run` starts it with a local database; `make test`
# is what CI runs.
GO ?= go
BIN := bin

.PHONY: all build run test test-short fuzz bench lint db-stop clean

all: build

build:
	$(GO) build -o $(BIN)/helpdesk ./cmd/helpdesk
	$(GO) build -o $(BIN)/devdb ./cmd/devdb

# Starts (or reuses) the PostgreSQL cluster under ./.data/pg unless
# HELPDESK_DATABASE_URL is set, then serves with the demo department.
run: build
	@url="$${HELPDESK_DATABASE_URL:-}"; \
	if [ -z "$$url" ]; then url=$$($(BIN)/devdb) || exit 1; fi; \
	echo "database: $$url"; \
	HELPDESK_DATABASE_URL="$$url" exec $(BIN)/helpdesk serve --demo

# Stops the local cluster `make run` started.
db-stop: build
	$(BIN)/devdb -stop

test:
	$(GO) vet ./...
	$(GO) test -race -shuffle=on -timeout 15m ./...

lint:
	$(GO) vet ./...
	$(GO) run honnef.co/go/tools/cmd/staticcheck@v0.8.2 ./...

test-short:
	$(GO) test -short ./...

# Runs each fuzz target for FUZZTIME (default 30s).
FUZZTIME ?= 30s
fuzz:
	$(GO) test ./mailin -run '^$$' -fuzz '^FuzzParse$$' -fuzztime $(FUZZTIME)
	$(GO) test ./mailin -run '^$$' -fuzz '^FuzzMediaType$$' -fuzztime $(FUZZTIME)
	$(GO) test ./mailin -run '^$$' -fuzz '^FuzzStripQuoted$$' -fuzztime $(FUZZTIME) -fuzzminimizetime 3s
	$(GO) test ./mailin -run '^$$' -fuzz '^FuzzParseDeliveryReport$$' -fuzztime $(FUZZTIME) -fuzzminimizetime 3s
	$(GO) test ./mailin -run '^$$' -fuzz '^FuzzTrustedResults$$' -fuzztime $(FUZZTIME) -fuzzminimizetime 3s
	$(GO) test ./mailin -run '^$$' -fuzz '^FuzzAuthCheck$$' -fuzztime $(FUZZTIME) -fuzzminimizetime 3s
	$(GO) test ./tickets -run '^$$' -fuzz '^FuzzSuggestTerms$$' -fuzztime $(FUZZTIME) -fuzzminimizetime 3s
	$(GO) test ./internal/markdown -run '^$$' -fuzz '^FuzzText$$' -fuzztime $(FUZZTIME) -fuzzminimizetime 3s

# Each writes its table to bench/RESULTS*.md.
bench:
	$(GO) run ./bench/ingest
	$(GO) run ./bench/imap
	$(GO) run ./bench/mailboxes
	$(GO) run ./bench/web
	HELPDESK_BENCH_RESULTS=$(CURDIR)/bench/RESULTS-classify.md $(GO) test ./mailin -run '^$$' -bench '^BenchmarkClassifyCorpus$$' -benchtime 20x
	$(GO) run ./bench/load

# The fault suite: PostgreSQL, the gateway, the relay, Dovecot and the spool
# directory failing under mail, each followed by an exact reconciliation;
# its section of bench/RESULTS.md. About 12 minutes (a killed gateway's
# claimed mail waits out its lease); the disk-full scenario needs root.
.PHONY: faults
faults:
	$(GO) run ./bench/faults

# Pictures every page of the web portal in Spanish and English, and two at
# phone width, into docs/screenshots/ (the README shows them). Needs Chromium;
# Debian's chromium-l10n gives the browser's own words in Spanish.
.PHONY: screenshots
screenshots:
	HELPDESK_SCREENSHOTS=docs/screenshots $(GO) test ./cmd/helpdesk -run '^TestScreenshots$$' -count=1

clean:
	rm -rf $(BIN)
