// Package layers holds no code, only a test: it reads the module's import
// graph (go list -deps) and fails on an import that breaks the layering the
// design promises (domain packages free of HTTP, the API free of etcd wire
// types, test harnesses out of production, no package importing one above it).
// The layering itself is written down in layers_test.go.
package layers
