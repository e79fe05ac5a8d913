package telemetry

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"strings"

	"github.com/verdictpdp/verdict/internal/pemutil"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/exporters/stdout/stdouttrace"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"
	"google.golang.org/grpc/credentials"
)

// Exporters of telemetry.traces.exporter.
const (
	ExporterNone     = "none"
	ExporterOTLPHTTP = "otlp-http"
	ExporterOTLPGRPC = "otlp-grpc"
	ExporterStdout   = "stdout"
)

// Config is the telemetry section.
type Config struct {
	// Traces configures OpenTelemetry traces.
	Traces Traces `yaml:"traces"`
}

// Traces configures where spans go and how many are kept.
type Traces struct {
	// Exporter is none (no spans are made: a no-op provider), otlp-http,
	// otlp-grpc or stdout (one JSON span a line on standard output, for
	// debugging).
	Exporter string `yaml:"exporter"`
	// Endpoint is the OTLP collector: host:port, or a URL (http:// or
	// https://; for otlp-http it may carry the path, /v1/traces by
	// default). Empty means the exporter's default (localhost:4318 for
	// HTTP, localhost:4317 for gRPC) or OTEL_EXPORTER_OTLP_ENDPOINT.
	Endpoint string `yaml:"endpoint"`
	// Insecure sends spans without TLS (an http:// endpoint URL implies it).
	Insecure bool `yaml:"insecure"`
	// CAFile is a PEM file of CA certificates: the only roots the
	// collector's certificate is verified against, in place of the system
	// roots (a collector of a private PKI). "" means the system roots.
	// The certificate is always verified over TLS; CAFile with Insecure
	// or an http:// endpoint is a contradiction and invalid. The file must
	// hold at least one CERTIFICATE; it is read when the exporter is made.
	CAFile string `yaml:"ca_file"`
	// SampleRatio is the share of new traces kept, 0 to 1. A request that
	// continues a caller's trace follows the caller's sampling decision
	// (parent-based sampler).
	SampleRatio float64 `yaml:"sample_ratio"`
	// ServiceName is the service.name resource attribute.
	ServiceName string `yaml:"service_name"`
}

// Default returns no exporter, every trace sampled once one is set, and
// service name verdict.
func Default() Config {
	return Config{Traces: Traces{Exporter: ExporterNone, SampleRatio: 1, ServiceName: "verdict"}}
}

// Validate reports every problem with c, joined.
func (c Config) Validate() error {
	t := c.Traces
	var errs []error
	switch t.Exporter {
	case ExporterNone, ExporterOTLPHTTP, ExporterOTLPGRPC, ExporterStdout:
	default:
		errs = append(errs, fmt.Errorf("telemetry traces.exporter %q: must be %s, %s, %s or %s",
			t.Exporter, ExporterNone, ExporterOTLPHTTP, ExporterOTLPGRPC, ExporterStdout))
	}
	if t.SampleRatio < 0 || t.SampleRatio > 1 || t.SampleRatio != t.SampleRatio {
		errs = append(errs, fmt.Errorf("telemetry traces.sample_ratio %v: must be between 0 and 1", t.SampleRatio))
	}
	if strings.TrimSpace(t.ServiceName) == "" {
		errs = append(errs, errors.New("telemetry traces.service_name must not be empty"))
	}
	if t.Endpoint != "" && strings.Contains(t.Endpoint, "://") &&
		!strings.HasPrefix(t.Endpoint, "http://") && !strings.HasPrefix(t.Endpoint, "https://") {
		errs = append(errs, fmt.Errorf("telemetry traces.endpoint %q: a URL must be http:// or https://", t.Endpoint))
	}
	if t.CAFile != "" {
		if t.Insecure || strings.HasPrefix(t.Endpoint, "http://") {
			errs = append(errs, errors.New("telemetry traces.ca_file: spans go without TLS (traces.insecure: true or an http:// endpoint), so no certificate is verified: drop one or the other"))
		}
		if _, err := pemutil.LoadCAs(t.CAFile); err != nil {
			errs = append(errs, fmt.Errorf("telemetry traces.ca_file: %w", err))
		}
	}
	return errors.Join(errs...)
}

// tlsConfig is the client TLS configuration of t's ca_file, nil without
// one (the exporter's default: TLS against the system roots).
func (t Traces) tlsConfig() (*tls.Config, error) {
	if t.CAFile == "" {
		return nil, nil
	}
	roots, err := pemutil.LoadCAs(t.CAFile)
	if err != nil {
		return nil, fmt.Errorf("ca_file: %w", err)
	}
	return &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12}, nil
}

// NewTracerProvider builds the provider cfg asks for. With exporter none it
// is a no-op provider and shutdown does nothing. Otherwise spans are
// batched to the exporter; shutdown flushes them and stops it (call it once,
// on exit, with a deadline). It fails on an invalid cfg or an exporter that
// cannot be built; exporters connect lazily, so an unreachable collector
// is no error here (spans are dropped and the exporter logs through
// OpenTelemetry's error handler).
func NewTracerProvider(ctx context.Context, cfg Config) (trace.TracerProvider, func(context.Context) error, error) {
	if err := cfg.Validate(); err != nil {
		return nil, nil, err
	}
	t := cfg.Traces
	if t.Exporter == ExporterNone {
		return noop.NewTracerProvider(), func(context.Context) error { return nil }, nil
	}
	exp, err := newExporter(ctx, t)
	if err != nil {
		return nil, nil, fmt.Errorf("telemetry traces: %s exporter: %w", t.Exporter, err)
	}
	tp := sdktrace.NewTracerProvider(
		sdktrace.WithBatcher(exp),
		sdktrace.WithSampler(Sampler(t.SampleRatio)),
		sdktrace.WithResource(resource.NewSchemaless(attribute.String("service.name", t.ServiceName))),
	)
	return tp, tp.Shutdown, nil
}

// Sampler is the sampler of sample_ratio: parent-based, so that a trace a
// gateway started and sampled continues here, with ratio for new traces.
func Sampler(ratio float64) sdktrace.Sampler {
	return sdktrace.ParentBased(sdktrace.TraceIDRatioBased(ratio))
}

func newExporter(ctx context.Context, t Traces) (sdktrace.SpanExporter, error) {
	isURL := strings.Contains(t.Endpoint, "://")
	tc, err := t.tlsConfig()
	if err != nil {
		return nil, err
	}
	switch t.Exporter {
	case ExporterOTLPHTTP:
		var opts []otlptracehttp.Option
		switch {
		case isURL:
			opts = append(opts, otlptracehttp.WithEndpointURL(httpTracesURL(t.Endpoint)))
		case t.Endpoint != "":
			opts = append(opts, otlptracehttp.WithEndpoint(t.Endpoint))
		}
		if t.Insecure {
			opts = append(opts, otlptracehttp.WithInsecure())
		}
		if tc != nil {
			opts = append(opts, otlptracehttp.WithTLSClientConfig(tc))
		}
		return otlptracehttp.New(ctx, opts...)
	case ExporterOTLPGRPC:
		var opts []otlptracegrpc.Option
		switch {
		case isURL:
			opts = append(opts, otlptracegrpc.WithEndpointURL(t.Endpoint))
		case t.Endpoint != "":
			opts = append(opts, otlptracegrpc.WithEndpoint(t.Endpoint))
		}
		if t.Insecure {
			opts = append(opts, otlptracegrpc.WithInsecure())
		}
		if tc != nil {
			opts = append(opts, otlptracegrpc.WithTLSCredentials(credentials.NewTLS(tc)))
		}
		return otlptracegrpc.New(ctx, opts...)
	default:
		return stdouttrace.New()
	}
}

// httpTracesURL is u with the OTLP traces path when u has no path: the
// exporter would post to "/" otherwise, which collectors refuse.
func httpTracesURL(u string) string {
	scheme, rest, _ := strings.Cut(u, "://")
	if !strings.Contains(strings.TrimSuffix(rest, "/"), "/") {
		return scheme + "://" + strings.TrimSuffix(rest, "/") + "/v1/traces"
	}
	return u
}
