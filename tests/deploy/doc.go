// Package deploy holds the structural checks of the deployment artefacts at
// the repository root (Dockerfile, .dockerignore, docker-compose*.yml,
// .env.example, deploy/): there is no Docker engine in CI, so the tests parse
// these files and check that they describe the topology Catalyst implements
// and name only variables its configuration reads.
package deploy
