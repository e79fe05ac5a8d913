// Package telemetry builds Verdict's OpenTelemetry tracer provider from the
// telemetry.traces section of the configuration: no exporter (a no-op
// provider, the default), OTLP over HTTP or gRPC, or stdout. It sets no
// global OpenTelemetry state; callers pass the provider on (server.New's
// WithTracerProvider).
package telemetry
