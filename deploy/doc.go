// Package deploy holds no code: its tests check the deployment files (the
// repository's Dockerfile and, in this directory, the Kubernetes manifests
// and their kustomize overlays, the Prometheus alert rules, the Grafana
// dashboard) against the real Kubernetes API types, the configuration
// loader, the metrics a running Verdict exports and, with
// VERDICT_IMAGE_CHECK=1 (.ci/deploy-check), the image's file system run
// read-only and non-root. See docs/deploy.md.
package deploy
