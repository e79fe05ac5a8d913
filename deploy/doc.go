// Package deploy holds no code: its test checks the deployment files of
// this directory (the Kubernetes manifests and their kustomize overlays,
// the Prometheus alert rules, the Grafana dashboard) against the real
// Kubernetes API types, the configuration loader and the metrics a running
// Verdict exports. See docs/deploy.md.
package deploy
