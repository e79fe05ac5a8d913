package server

import (
	"context"
	"slices"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/gofiber/fiber/v2/utils"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"

	"github.com/verdictpdp/verdict/engine"
	"github.com/verdictpdp/verdict/pdp"
)

// tracerName is the instrumentation scope of Verdict's spans.
const tracerName = "github.com/verdictpdp/verdict/server"

// Span names and attributes of Verdict's own spans (docs/operations.md
// "Traces"). Attributes never hold subject or resource ids, tokens or
// input values.
const (
	spanDecide       = "verdict.decide"
	spanToken        = "verdict.token.issue"
	attrRequestID    = "verdict.request_id"
	attrRevision     = "verdict.revision"
	attrOutcome      = "verdict.outcome"
	attrReason       = "verdict.reason"
	attrCache        = "verdict.cache"
	attrEndpoint     = "verdict.endpoint"
	attrGrantType    = "verdict.grant_type"
	attrHTTPMethod   = "http.request.method"
	attrHTTPRoute    = "http.route"
	attrHTTPStatus   = "http.response.status_code"
	spanNameFallback = "HTTP"
)

// WithTracerProvider makes the server trace requests with tp: a server span
// per request, continuing a trace given in the W3C traceparent and
// tracestate headers, and a verdict.decide span per decision. A nil or
// no-op provider (telemetry exporter none) turns tracing off: the
// middleware is not even installed.
func WithTracerProvider(tp trace.TracerProvider) Option {
	return func(s *Server) {
		if _, off := tp.(noop.TracerProvider); tp == nil || off {
			s.tracer = nil
			return
		}
		s.tracer = tp.Tracer(tracerName)
	}
}

// tracePropagator reads the W3C Trace Context headers.
var tracePropagator = propagation.TraceContext{}

// headerCarrier reads a request's headers for the propagator; values are
// copied, since the span context outlives Fiber's buffers.
type headerCarrier struct{ c *fiber.Ctx }

func (h headerCarrier) Get(key string) string { return utils.CopyString(h.c.Get(key)) }
func (h headerCarrier) Set(string, string)    {}
func (h headerCarrier) Keys() []string        { return tracePropagator.Fields() }

// traceRequest is the middleware that makes the server span of a request,
// named for the route template it matched (never the raw path). Like
// observe, it runs the error handler itself, so that the status it records
// is the one sent.
func (s *Server) traceRequest(c *fiber.Ctx) error {
	ctx := tracePropagator.Extract(c.UserContext(), headerCarrier{c})
	ctx, span := s.tracer.Start(ctx, spanNameFallback, trace.WithSpanKind(trace.SpanKindServer))
	defer span.End()
	c.SetUserContext(ctx)
	if err := c.Next(); err != nil {
		if herr := s.app.ErrorHandler(c, err); herr != nil {
			_ = c.SendStatus(fiber.StatusInternalServerError)
		}
	}
	route := c.Route().Path
	if !s.paths[route] {
		route = unmatchedRoute
	}
	code := c.Response().StatusCode()
	span.SetName(route)
	span.SetAttributes(
		attribute.String(attrHTTPMethod, methodLabel(c.Method())),
		attribute.String(attrHTTPRoute, route),
		attribute.Int(attrHTTPStatus, code),
		attribute.String(attrRequestID, requestID(c)),
	)
	if code >= 500 {
		span.SetStatus(codes.Error, "")
	}
	return nil
}

// observer reports the decision service's decisions to the server's
// metrics and spans.
type observer struct{ s *Server }

var _ pdp.Observer = observer{}

// DecisionStarted starts the span of one decision, when tracing is on.
func (o observer) DecisionStarted(ctx context.Context, _ pdp.Endpoint) context.Context {
	if o.s.tracer == nil {
		return ctx
	}
	ctx, _ = o.s.tracer.Start(ctx, spanDecide)
	return ctx
}

// DecisionFinished ends the decision's span (DecisionStarted's, in ctx)
// with what the decision was, and counts the decision.
func (o observer) DecisionFinished(ctx context.Context, e pdp.Endpoint, d engine.Decision, cache pdp.CacheOutcome) {
	if o.s.tracer != nil {
		span := trace.SpanFromContext(ctx)
		span.SetAttributes(attribute.String(attrCache, string(cache)))
		endDecide(span, e, d)
	}
	o.s.metrics.recordDecision(e, d)
	o.s.rates.count(d)
}

func (o observer) Evaluated(took time.Duration) { o.s.metrics.observeEvaluation(took) }
func (o observer) Counted(e pdp.Endpoint, d engine.Decision) {
	o.s.metrics.recordDecision(e, d)
	o.s.rates.count(d)
}
func (o observer) InvalidItem(e pdp.Endpoint) { o.s.metrics.recordInvalid(e) }

// PlanFinished counts a query plan.
func (o observer) PlanFinished(_ pdp.Endpoint, outcome string, cache pdp.CacheOutcome) {
	o.s.metrics.plans.WithLabelValues(outcome, string(cache)).Inc()
}

var _ pdp.PlanObserver = observer{}

// endDecide ends span with what d was: revision, outcome, Verdict's own
// reason code and the endpoint, never policy-defined reasons (a policy may
// put ids in them) or anything of the input.
func endDecide(span trace.Span, e pdp.Endpoint, d engine.Decision) {
	outcome := "deny"
	switch {
	case d.Err != nil:
		outcome = "error"
		span.SetStatus(codes.Error, engine.ClassifyErr(d.Err))
	case d.Allow:
		outcome = "allow"
	}
	attrs := []attribute.KeyValue{
		attribute.String(attrRevision, d.Revision),
		attribute.String(attrOutcome, outcome),
		attribute.String(attrEndpoint, e.String()),
	}
	if r := ownReason(d); r != "" {
		attrs = append(attrs, attribute.String(attrReason, r))
	}
	span.SetAttributes(attrs...)
	span.End()
}

// ownReason is the first of Verdict's own reason codes d carries, or the
// class of its error.
func ownReason(d engine.Decision) string {
	for _, r := range d.Reasons {
		for _, own := range metricReasons {
			if r == own {
				return r
			}
		}
	}
	if d.Err != nil {
		return engine.ClassifyErr(d.Err)
	}
	return ""
}

// startTokenSpan starts the span of one token issuance, when tracing is
// on, with the grant type if it is one the service knows ("other" if not:
// the form value is the caller's). End it with endSpan.
func (s *Server) startTokenSpan(ctx context.Context, grant string) (context.Context, trace.Span) {
	if s.tracer == nil {
		return ctx, nil
	}
	if !slices.Contains(s.tokens.GrantTypes(), grant) {
		grant = labelOther
	}
	return s.tracer.Start(ctx, spanToken, trace.WithAttributes(attribute.String(attrGrantType, grant)))
}

// endSpan ends span, marking it failed when err is not nil (the error's
// type only: messages may name clients).
func endSpan(span trace.Span, err error) {
	if span == nil {
		return
	}
	if err != nil {
		span.SetStatus(codes.Error, "")
	}
	span.End()
}
