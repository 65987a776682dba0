# Catalyst — common tasks. `make run` starts Catalyst with embedded defaults;
# `make test` runs the whole test suite (installing what it needs).

.PHONY: run build test setup ui

run:
	go run ./cmd/catalyst serve

build:
	CGO_ENABLED=0 go build -o bin/catalyst ./cmd/catalyst

test:
	scripts/test.sh

# Generate .env, backend/.env and frontend/.env from config.yaml (as in the original guide).
setup:
	@test -f config.yaml || cp config.example.yaml config.yaml
	go run ./cmd/catalyst config env --config config.yaml

ui:
	cd web && npm ci && npm run build
