package grpcapi

import (
	"context"
	"strings"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"go.opentelemetry.io/otel/attribute"
	otelcodes "go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
)

// tracerName is the instrumentation scope of the gRPC server spans.
const tracerName = "github.com/verdictpdp/verdict/grpcapi"

// tracePropagator reads W3C Trace Context.
var tracePropagator = propagation.TraceContext{}

// newTracer is tp's tracer, nil when tracing is off (no provider, or a
// no-op one): the interceptor then starts no span.
func newTracer(tp trace.TracerProvider) trace.Tracer {
	if _, off := tp.(noop.TracerProvider); tp == nil || off {
		return nil
	}
	return tp.Tracer(tracerName)
}

// traceCarrier finds a call's trace context: the call's own metadata
// (Envoy's gRPC client sends its span's traceparent there when Envoy
// traces), else, for a Check, the original request's headers (the trace of
// the end user's request).
type traceCarrier struct {
	md      metadata.MD
	headers map[string]string
}

func (c traceCarrier) Get(key string) string {
	if v := c.md.Get(key); len(v) > 0 {
		return v[0]
	}
	return c.headers[strings.ToLower(key)]
}
func (traceCarrier) Set(string, string) {}
func (traceCarrier) Keys() []string     { return tracePropagator.Fields() }

// startSpan starts the server span of a call (named for its method, e.g.
// envoy.service.auth.v3.Authorization/Check) continuing the trace the
// call carries; the decision's verdict.decide span is its child. end
// records the call's code and ends it.
func (s *Server) startSpan(ctx context.Context, method, requestID string, req any) (context.Context, func(err error, c codes.Code)) {
	if s.tracer == nil {
		return ctx, func(error, codes.Code) {}
	}
	md, _ := metadata.FromIncomingContext(ctx)
	carrier := traceCarrier{md: md}
	if cr, ok := req.(*authv3.CheckRequest); ok {
		carrier.headers = cr.GetAttributes().GetRequest().GetHttp().GetHeaders()
	}
	ctx = tracePropagator.Extract(ctx, carrier)
	service, rpc, _ := strings.Cut(strings.TrimPrefix(method, "/"), "/")
	ctx, span := s.tracer.Start(ctx, strings.TrimPrefix(method, "/"), trace.WithSpanKind(trace.SpanKindServer),
		trace.WithAttributes(attribute.String("rpc.system", "grpc"), attribute.String("rpc.service", service),
			attribute.String("rpc.method", rpc), attribute.String("verdict.request_id", requestID)))
	return ctx, func(err error, c codes.Code) {
		span.SetAttributes(attribute.Int("rpc.grpc.status_code", int(c)))
		if err != nil {
			span.SetStatus(otelcodes.Error, c.String())
		}
		span.End()
	}
}
