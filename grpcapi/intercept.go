package grpcapi

import (
	"context"
	"net"
	"net/netip"
	"runtime/debug"
	"strings"
	"time"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/protoadapt"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/verdictpdp/verdict/oauth"
	"github.com/verdictpdp/verdict/pdp"
)

// requestIDKey is the metadata key of a call's request id, echoed in the
// response header.
const requestIDKey = "x-request-id"

// intercept runs around every unary call: it traces it (tracing.go), gives the call a request id
// (a well-formed x-request-id from the call's metadata or, for a Check,
// the original request's, else a new one), sheds it
// when server.max_in_flight calls are being answered, turns a panic into
// INTERNAL (never an allow) and counts the call in the gRPC metrics.
func (s *Server) intercept(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (resp any, err error) {
	start := time.Now()
	id := firstMD(ctx, requestIDKey)
	if cr, ok := req.(*authv3.CheckRequest); ok && id == "" {
		// Envoy's own request id: the decision log and Envoy's access
		// log name the same id.
		id = cr.GetAttributes().GetRequest().GetHttp().GetHeaders()["x-request-id"]
	}
	if !pdp.ValidRequestID(id) {
		id = uuid.NewString()
	}
	_ = grpc.SetHeader(ctx, metadata.Pairs(requestIDKey, id))
	ctx = oauth.WithRequestID(ctx, id)
	ctx, endSpan := s.startSpan(ctx, info.FullMethod, id, req)
	defer func() {
		if r := recover(); r != nil {
			s.metrics.panicked()
			s.log.Error("panic in gRPC handler", "method", info.FullMethod, "request_id", id, "panic", r, "stack", string(debug.Stack()))
			resp, err = nil, status.Error(codes.Internal, "internal error")
		}
		s.metrics.record(info.FullMethod, status.Code(err), time.Since(start))
		endSpan(err, status.Code(err))
	}()
	if !s.isHealth(info.FullMethod) {
		done, ok := s.host.Admit()
		if !ok {
			return nil, withDetails(codes.Unavailable, "overloaded",
				"the server is answering as many requests as it may at once (server.max_in_flight); retry", 1)
		}
		defer done()
	}
	return handler(ctx, req)
}

func (s *Server) isHealth(method string) bool {
	return strings.HasPrefix(method, "/grpc.health.v1.") || strings.HasPrefix(method, "/grpc.reflection.")
}

// refuse is the gRPC status of an error of the Host or the decision
// service: the code of its HTTP status, an ErrorInfo detail whose reason
// is Verdict's error code (the "code" of HTTP's error body), and RetryInfo
// when the caller may retry.
func (s *Server) refuse(err error) error {
	httpStatus, code, msg, retry := s.cfg.Refusal(err)
	if httpStatus >= 500 && httpStatus != 503 {
		s.log.Error("gRPC call failed", "error", err)
	}
	return withDetails(grpcCode(httpStatus), code, msg, retry)
}

// withDetails is a status of c with Verdict's error code in an ErrorInfo
// and, when retry > 0, a RetryInfo of that many seconds.
func withDetails(c codes.Code, code, msg string, retry int) error {
	st := status.New(c, code+": "+msg)
	details := []protoadapt.MessageV1{&errdetails.ErrorInfo{Reason: code, Domain: "verdict"}}
	if retry > 0 {
		details = append(details, &errdetails.RetryInfo{RetryDelay: durationpb.New(time.Duration(retry) * time.Second)})
	}
	if withD, err := st.WithDetails(details...); err == nil {
		st = withD
	}
	return st.Err()
}

// grpcCode is the gRPC code of an HTTP status, as the gRPC-HTTP mapping
// and Envoy use them.
func grpcCode(httpStatus int) codes.Code {
	switch httpStatus {
	case 400, 413, 415:
		return codes.InvalidArgument
	case 401:
		return codes.Unauthenticated
	case 403:
		return codes.PermissionDenied
	case 404:
		return codes.NotFound
	case 409, 412, 422:
		return codes.FailedPrecondition
	case 429:
		return codes.ResourceExhausted
	case 503:
		return codes.Unavailable
	case 504:
		return codes.DeadlineExceeded
	}
	if httpStatus >= 200 && httpStatus < 300 {
		return codes.OK
	}
	return codes.Internal
}

// firstMD is the first value of metadata key in the call, "" for none.
func firstMD(ctx context.Context, key string) string {
	md, _ := metadata.FromIncomingContext(ctx)
	if v := md.Get(key); len(v) > 0 {
		return v[0]
	}
	return ""
}

// peerString is the connection's other end as host:port, for the decision
// log's requested_by ("" when unknown).
func peerString(ctx context.Context) string {
	if p, ok := peer.FromContext(ctx); ok && p.Addr != nil {
		return p.Addr.String()
	}
	return ""
}

// peerAddr is the address of the connection's other end (the gateway, or
// the caller).
func peerAddr(ctx context.Context) netip.Addr {
	p, ok := peer.FromContext(ctx)
	if !ok || p.Addr == nil {
		return netip.Addr{}
	}
	if ta, ok := p.Addr.(*net.TCPAddr); ok {
		a, _ := netip.AddrFromSlice(ta.IP)
		return a.Unmap()
	}
	ap, err := netip.ParseAddrPort(p.Addr.String())
	if err != nil {
		return netip.Addr{}
	}
	return ap.Addr().Unmap()
}

// metrics are the gRPC calls' series; nil when metrics are off.
type metrics struct {
	requests *prometheus.CounterVec
	duration *prometheus.HistogramVec
	panics   prometheus.Counter
}

func newMetrics(reg *prometheus.Registry) *metrics {
	if reg == nil {
		return nil
	}
	m := &metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "verdict_grpc_requests_total",
			Help: "gRPC calls answered, by full method and status code."}, []string{"method", "code"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "verdict_grpc_request_duration_seconds",
			Help:    "Time to answer a gRPC call, by full method.",
			Buckets: []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10}}, []string{"method"}),
		panics: prometheus.NewCounter(prometheus.CounterOpts{Name: "verdict_grpc_panics_total",
			Help: "Panics recovered in gRPC handlers (each answered INTERNAL)."}),
	}
	reg.MustRegister(m.requests, m.duration, m.panics)
	return m
}

func (m *metrics) record(method string, c codes.Code, d time.Duration) {
	if m == nil {
		return
	}
	m.requests.WithLabelValues(method, c.String()).Inc()
	m.duration.WithLabelValues(method).Observe(d.Seconds())
}

func (m *metrics) panicked() {
	if m != nil {
		m.panics.Inc()
	}
}
